"""Option dataclasses of the built-in algorithms and transforms (TOML-facing, import-light).

Each is filled from the config's ``[algorithm_options.<name>]`` or
``[transform_options.<name>]`` table; unknown keys are refused at validation.
"""

from __future__ import annotations

import dataclasses
from typing import Any


def _positive(obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class BCConfig:
    """Behaviour cloning with one MLP shared by all agents (input: observation ‖ one-hot id).

    Discrete actions: cross-entropy over the legal actions (illegal logits set to -inf)::

        L = - E_(o, i, a) log softmax(f(o, e_i) + log m)_a

    Continuous (Box) actions: mean squared error of ``tanh``-squashed outputs rescaled to
    the action bounds. Only steps where the agent acted enter the loss.

    Attributes:
        steps: gradient steps; batch_size: agent-steps per gradient step.
        hidden: width of the two hidden layers; lr: Adam learning rate.
        sample: discrete actions drawn from ``softmax`` over the legal actions instead of
            the arg-max. On data from a stochastic behaviour policy the arg-max can lose
            the randomness the policy relied on: on MPE spread ``medium-v0`` (data 43.4),
            BC at 5,000 steps scored 34.2 / 12.4 greedy vs 47.4 / 41.5 sampled (seeds 0 / 1,
            100 episodes each). Registered as the ``bc_sampled`` algorithm.
    """

    steps: int = 2000
    batch_size: int = 256
    hidden: int = 128
    lr: float = 1e-3
    sample: bool = False

    def __post_init__(self) -> None:
        _positive(self, "steps", "batch_size", "hidden", "lr")


@dataclasses.dataclass(frozen=True, kw_only=True)
class SampledBCConfig(BCConfig):
    """:class:`BCConfig` with ``sample=True`` (the ``bc_sampled`` algorithm)."""

    sample: bool = True


@dataclasses.dataclass(frozen=True, kw_only=True)
class IQLCQLConfig:
    """Independent Q-learning with a conservative (CQL) penalty, one Q-net shared by agents.

    As OG-MARL's IQL+CQL baseline (Formanek et al. 2023), each agent learns
    ``Q(o_i, e_i, a)`` from the team reward with double-Q targets over its legal actions::

        y   = r_t + gamma * (1 - done_i) * Q'(o'_i, argmax_{a legal} Q(o'_i, a))
        L   = E (Q(o_i, a_i) - y)^2
              + cql_alpha * E [ logsumexp_{a legal} Q(o_i, a) - Q(o_i, a_i) ]     (Kumar 2020)

    Attributes:
        steps: gradient steps; batch_size: agent-transitions per step.
        hidden: width of the two hidden layers; lr: Adam learning rate.
        gamma: discount; cql_alpha: weight of the CQL penalty.
        tau: Polyak rate of the target network.
        reward_scale: multiplies the rewards before learning.
    """

    steps: int = 3000
    batch_size: int = 256
    hidden: int = 128
    lr: float = 3e-4
    gamma: float = 0.99
    cql_alpha: float = 1.0
    tau: float = 0.005
    reward_scale: float = 1.0

    def __post_init__(self) -> None:
        _positive(self, "steps", "batch_size", "hidden", "lr", "tau")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must lie in [0, 1], got {self.gamma!r}")
        if self.cql_alpha < 0:
            raise ValueError(f"cql_alpha must be >= 0, got {self.cql_alpha!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class MADiffAdapterConfig:
    """Options handed to ``MADiffConfig``; the adapter sets the mode (D, C, independent).

    Attributes:
        config: keyword arguments for ``diffusion_agents.MADiffConfig`` (e.g.
            ``{n_steps = 2000, horizon = 8}``); ``mode`` and ``agent_attention`` are set by
            the variant (MADiff-D, MADiff-C, independent diffusers), ``seed`` by the run.
    """

    config: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_fields("diffusion_agents.madiff", "MADiffConfig", self.config)


def _check_fields(module: str, cls_name: str, options: dict) -> None:
    """Build ``cls_name(**options)`` when its module imports, so bad keys fail validation."""
    if not isinstance(options, dict):
        raise ValueError(f"config must be a table of {cls_name} fields, got {options!r}")
    try:
        import importlib

        cls = getattr(importlib.import_module(module), cls_name)
    except (ImportError, AttributeError):
        return  # the plug-in itself reports the missing module
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ValueError(f"{cls_name} has no field(s) {unknown}; fields: {sorted(fields)}")
    cls(**options)


@dataclasses.dataclass(frozen=True, kw_only=True)
class EAQTransformConfig:
    """Options of the EAQ dataset transforms.

    Attributes:
        config: keyword arguments for ``diffusion_agents.eaq.EAQConfig`` (``q_weight`` is
            set to 0 by ``eaq_noq``).
        augment: further keyword arguments for ``eaq.augment``: ``num_episodes`` or
            ``ratio`` (synthetic episodes), ``n_steps``, ``synthetic_only``.
        seed: the transform's seed; the augmented dataset is built once per (dataset,
            transform) and shared by every learner and seed that trains on it.
    """

    config: dict = dataclasses.field(default_factory=dict)
    augment: dict = dataclasses.field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        _check_fields("diffusion_agents.eaq", "EAQConfig", self.config)
        allowed = {"num_episodes", "ratio", "n_steps", "synthetic_only"}
        unknown = sorted(set(self.augment) - allowed)
        if unknown:
            raise ValueError(f"augment has unknown key(s) {unknown}; allowed: {sorted(allowed)}")
