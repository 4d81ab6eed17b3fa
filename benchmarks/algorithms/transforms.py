"""Dataset transforms: EAQ and EAQ without Q-total guidance, through ``eaq.augment``."""

from __future__ import annotations

import dataclasses
from typing import Any

from benchmarks.algorithms import TransformContext


def _eaq():
    try:
        from diffusion_agents import eaq
        from diffusion_agents.eaq import EAQConfig
    except ImportError as exc:
        raise ImportError(f"The EAQ transforms need diffusion_agents.eaq ({exc}).") from exc
    return eaq, EAQConfig


def _apply(ctx: TransformContext, q_weight: float | None) -> Any:
    eaq, EAQConfig = _eaq()
    kwargs = dict(ctx.config.config)
    fields = {f.name for f in dataclasses.fields(EAQConfig)}
    unknown = sorted(set(kwargs) - fields)
    if unknown:
        raise ValueError(f"EAQConfig has no field(s) {unknown}; fields: {sorted(fields)}.")
    extra = dict(ctx.config.augment)
    if q_weight is not None:
        extra["q_weight"] = q_weight
    return eaq.augment(
        ctx.source_id, config=EAQConfig(**kwargs), new_dataset_id=ctx.output_id,
        seed=ctx.seed, show_progress=ctx.show_progress, **extra,
    )


def apply_eaq(ctx: TransformContext) -> Any:
    return _apply(ctx, None)


def apply_eaq_noq(ctx: TransformContext) -> Any:
    return _apply(ctx, 0.0)
