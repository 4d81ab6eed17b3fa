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
    if q_weight is not None:
        kwargs["q_weight"] = q_weight
    fields = {f.name for f in dataclasses.fields(EAQConfig)}
    if "seed" in fields:
        kwargs.setdefault("seed", ctx.config.seed)
    unknown = sorted(set(kwargs) - fields)
    if unknown:
        raise ValueError(f"EAQConfig has no field(s) {unknown}; fields: {sorted(fields)}.")
    return eaq.augment(
        ctx.source_id, config=EAQConfig(**kwargs), dataset_id=ctx.output_id,
        **dict(ctx.config.augment),
    )


def apply_eaq(ctx: TransformContext) -> Any:
    return _apply(ctx, None)


def apply_eaq_noq(ctx: TransformContext) -> Any:
    return _apply(ctx, 0.0)
