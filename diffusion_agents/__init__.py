"""Diffusion models for offline multi-agent RL: MADiff policies and EAQ augmentation.

Imports point down: this package uses ``wrappers`` and never ``benchmarks``.

Public names (imported lazily, so ``import diffusion_agents`` stays cheap)::

    from diffusion_agents import MADiffPolicy, MADiffConfig, eaq
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "MADiffPolicy": "diffusion_agents.madiff.policy",
    "MADiffConfig": "diffusion_agents.madiff.config",
    "GaussianDiffusion": "diffusion_agents.diffusion",
    "TemporalUNet": "diffusion_agents.networks",
}
_SUBMODULES = ("eaq", "madiff", "diffusion", "networks", "checkpoint")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"diffusion_agents.{name}")
    raise AttributeError(f"module 'diffusion_agents' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY, *_SUBMODULES])


__all__ = ["MADiffConfig", "MADiffPolicy", "__version__", "eaq"]
