"""Adapters: MADiff-D, MADiff-C and independent diffusers as harness algorithms.

They call the public API only: ``MADiffPolicy.train(dataset, MADiffConfig(...))`` returns a
policy with ``act``/``reset``. The three variants differ in the mode keys set here; the
rest of ``MADiffConfig`` comes from ``[algorithm_options.<name>].config`` in the TOML.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from benchmarks.algorithms import TrainContext
from benchmarks.algorithms.options import MADiffAdapterConfig

# mode keys per variant: MADiff-D (decentralized execution, attention across agents),
# MADiff-C (centralized control of all agents), independent diffusers (no attention).
VARIANTS: dict[str, dict[str, Any]] = {
    "madiff_d": {"mode": "decentralized", "agent_attention": True},
    "madiff_c": {"mode": "centralized", "agent_attention": True},
    "independent_diffuser": {"mode": "decentralized", "agent_attention": False},
}


def _madiff():
    try:
        from diffusion_agents.madiff import MADiffConfig, MADiffPolicy
    except ImportError as exc:
        raise ImportError(
            f"The MADiff algorithms need diffusion_agents.madiff ({exc})."
        ) from exc
    return MADiffConfig, MADiffPolicy


def make_madiff_config(variant: str, options: MADiffAdapterConfig, seed: int) -> Any:
    """``MADiffConfig`` for ``variant`` with the user's options; ValueError on conflicts."""
    MADiffConfig, _ = _madiff()
    fields = {f.name for f in dataclasses.fields(MADiffConfig)}
    kwargs = dict(options.config)
    for key, value in VARIANTS[variant].items():
        if key in kwargs and kwargs[key] != value:
            raise ValueError(
                f"{variant}: option {key}={kwargs[key]!r} contradicts the variant ({value!r})."
            )
        kwargs[key] = value
    if "seed" in fields:
        kwargs["seed"] = seed
    unknown = sorted(set(kwargs) - fields)
    if unknown:
        raise ValueError(
            f"{variant}: MADiffConfig has no field(s) {unknown}; fields: {sorted(fields)}."
        )
    return MADiffConfig(**kwargs)


def _train(variant: str, ctx: TrainContext) -> Any:
    _, MADiffPolicy = _madiff()
    cfg = make_madiff_config(variant, ctx.config, ctx.seed)
    return MADiffPolicy.train(
        ctx.dataset_id, cfg, seed=ctx.seed, show_progress=ctx.show_progress
    )


def train_madiff_d(ctx: TrainContext) -> Any:
    return _train("madiff_d", ctx)


def train_madiff_c(ctx: TrainContext) -> Any:
    return _train("madiff_c", ctx)


def train_independent_diffuser(ctx: TrainContext) -> Any:
    return _train("independent_diffuser", ctx)
