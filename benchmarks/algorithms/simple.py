"""Algorithms that do not learn: uniform random, and the dataset's own behaviour policy."""

from __future__ import annotations

from typing import Any

from benchmarks.algorithms import TrainContext
from wrappers import RandomPolicy


def train_random(ctx: TrainContext) -> RandomPolicy:
    """Uniform random legal actions, seeded by the run seed."""
    return RandomPolicy(ctx.make_env(), seed=ctx.seed)


def _dataset_meta(dataset_id: str) -> dict[str, Any]:
    import minari

    return dict(minari.load_dataset(dataset_id).storage.metadata.get("multiagent") or {})


def train_behaviour(ctx: TrainContext) -> Any:
    """The policy that recorded the (source) dataset, reloaded from its metadata.

    Datasets built by ``benchmarks.behaviour`` name their saved policy files there
    (``behaviour_build``); a dataset recorded with the random policy gives
    :class:`wrappers.RandomPolicy`.
    """
    meta = _dataset_meta(ctx.source_dataset_id)
    if "behaviour_build" in meta:
        from benchmarks.behaviour import load_behaviour_policy

        return load_behaviour_policy(ctx.source_dataset_id, seed=ctx.seed)
    name = str(meta.get("behaviour_policy", ""))
    if name.lower().startswith("random"):
        return RandomPolicy(ctx.make_env(), seed=ctx.seed)
    raise ValueError(
        f"Dataset {ctx.source_dataset_id!r} records behaviour policy {name!r} but no saved "
        "policy (its metadata has no 'behaviour_build' entry); build it with "
        "`diffusion-agents datasets` to evaluate the 'behaviour' algorithm."
    )
