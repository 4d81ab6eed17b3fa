"""Algorithms that do not learn: uniform random, and the dataset's own behaviour policy."""

from __future__ import annotations

import importlib
from typing import Any

from benchmarks.algorithms import TrainContext
from wrappers import RandomPolicy

# Metadata keys (in the dataset's "multiagent" block) under which a behaviour policy file
# may be recorded, and the loader that rebuilds it: benchmarks.behaviour owns the format.
BEHAVIOUR_PATH_KEYS = ("behaviour_policy_path", "behaviour_policy_file", "policy_path")
BEHAVIOUR_LOADER = "benchmarks.behaviour:load_behaviour_policy"


def train_random(ctx: TrainContext) -> RandomPolicy:
    """Uniform random legal actions, seeded by the run seed."""
    return RandomPolicy(ctx.make_env(), seed=ctx.seed)


def _dataset_meta(dataset_id: str) -> dict[str, Any]:
    import minari

    return dict(minari.load_dataset(dataset_id).storage.metadata.get("multiagent") or {})


def train_behaviour(ctx: TrainContext) -> Any:
    """The policy that recorded the (source) dataset, reloaded from its metadata.

    ``behaviour_policy == "random"`` gives :class:`wrappers.RandomPolicy`; otherwise the
    metadata must name a saved policy file, which ``benchmarks.behaviour`` loads.
    """
    meta = _dataset_meta(ctx.source_dataset_id)
    name = meta.get("behaviour_policy")
    path = next((meta[k] for k in BEHAVIOUR_PATH_KEYS if meta.get(k)), None)
    if path is None and str(name).lower().startswith("random"):
        return RandomPolicy(ctx.make_env(), seed=ctx.seed)
    if path is None:
        raise ValueError(
            f"Dataset {ctx.source_dataset_id!r} records behaviour policy {name!r} but no "
            f"saved policy file (metadata keys {list(BEHAVIOUR_PATH_KEYS)}); rebuild it with "
            "`diffusion-agents datasets` to evaluate the 'behaviour' algorithm."
        )
    module_name, _, attr = BEHAVIOUR_LOADER.partition(":")
    loader = getattr(importlib.import_module(module_name), attr)
    return loader(path, env=ctx.make_env(), seed=ctx.seed)
