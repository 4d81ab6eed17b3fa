"""Typed configs for behaviour policies and their dataset tiers (no heavy imports)."""

from __future__ import annotations

import dataclasses
from typing import Any

TIERS: tuple[str, ...] = ("expert", "medium", "poor", "random", "medium-replay")


@dataclasses.dataclass(frozen=True, kw_only=True)
class PPOConfig:
    """Shared-parameter PPO (Schulman et al. 2017, arXiv 1707.06347; parameter sharing as in
    Gupta et al. 2017 / Terry et al. 2020, arXiv 2005.13625) for behaviour policies.

    One policy ``pi_theta(a | o_i, onehot(i))`` acts for every agent ``i``; each agent's
    transition is a sample of the clipped surrogate
    ``L = E[min(r_t A_t, clip(r_t, 1 - eps, 1 + eps) A_t)] - c_v L_V + c_H H[pi]`` with GAE
    advantages ``A_t`` (``gamma``, ``gae_lambda``) computed from the agent's own reward.

    Attributes:
        total_timesteps: agent-steps of training (env steps times agents).
        n_envs: env copies run side by side (each adds ``num_agents`` vector slots).
        n_steps: steps per slot per rollout; a rollout holds ``n_steps * n_envs * agents``.
        batch_size, n_epochs, learning_rate, ent_coef, gamma, gae_lambda, clip_range: PPO's.
        net_arch: hidden sizes of the (separate) policy and value MLPs.
        num_snapshots: at most this many policy snapshots are kept (the untrained policy,
            then geometrically spaced rollouts); they make the ``medium``/``poor`` tiers
            and ``medium-replay``.
    """

    total_timesteps: int = 200_000
    n_envs: int = 8
    n_steps: int = 100
    batch_size: int = 600
    n_epochs: int = 5
    learning_rate: float = 1e-3
    ent_coef: float = 0.0
    gamma: float = 0.95
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    net_arch: tuple[int, ...] = (64, 64)
    num_snapshots: int = 12

    def __post_init__(self) -> None:
        for name in (
            "total_timesteps",
            "n_envs",
            "n_steps",
            "batch_size",
            "n_epochs",
            "num_snapshots",
        ):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"PPOConfig.{name} must be >= 1, got {getattr(self, name)}."
                )
        if not self.net_arch or any(int(h) < 1 for h in self.net_arch):
            raise ValueError(
                f"PPOConfig.net_arch must be positive sizes, got {self.net_arch}."
            )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["net_arch"] = list(self.net_arch)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PPOConfig:
        d = dict(d)
        if "net_arch" in d:
            d["net_arch"] = tuple(d["net_arch"])
        return cls(**d)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DatasetConfig:
    """How the dataset tiers of one env are made from one PPO training run.

    Scores are normalized as ``100 * (R - R_random) / (R_expert - R_random)`` with
    ``R_random`` / ``R_expert`` the mean team returns of the uniform random policy and of the
    final PPO policy over ``ref_episodes`` episodes (D4RL's convention, Fu et al. 2020,
    arXiv 2004.07219). Tiers:

    - ``expert``: the final policy; ``random``: uniform random actions (masks respected).
    - ``medium`` / ``poor``: the trained snapshot whose measured normalized score (over
      ``eval_episodes`` episodes) is closest to ``medium_target`` / ``poor_target``
      (``poor`` is picked among snapshots no later than ``medium``).
    - ``medium-replay``: the behaviour policy's training data up to the medium policy:
      episodes from every snapshot from the untrained one to ``medium``, in training
      order, each snapshot's share proportional to the rollouts it collected (PPO's
      training data at a rollout is sampled from that rollout's weights).

    Attributes:
        episodes: episodes recorded per tier.
        ppo: the training run's :class:`PPOConfig`.
        eval_episodes: episodes per snapshot when measuring its score (tier selection).
        ref_episodes: episodes for each reference score. On simple_spread_v3 the random
            policy's team return has std ~8 against an expert-random gap of ~7.5, so 100
            episodes left ~10 normalized points of noise in ``ref_min_score``.
        deterministic: record and evaluate with the policy's most likely action instead of
            sampling (sampling, the default, is what the behaviour policy did in training).
    """

    episodes: int = 500
    ppo: PPOConfig = dataclasses.field(default_factory=PPOConfig)
    medium_target: float = 50.0
    poor_target: float = 20.0
    eval_episodes: int = 50
    ref_episodes: int = 300
    deterministic: bool = False

    def __post_init__(self) -> None:
        for name in ("episodes", "eval_episodes", "ref_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"DatasetConfig.{name} must be >= 1, got {getattr(self, name)}."
                )
        if not 0.0 <= self.poor_target <= self.medium_target <= 100.0:
            raise ValueError(
                "DatasetConfig needs 0 <= poor_target <= medium_target <= 100, got "
                f"poor_target={self.poor_target}, medium_target={self.medium_target}."
            )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["ppo"] = self.ppo.to_dict()
        return d

    @classmethod
    def for_env(cls, env_id: str, **overrides: Any) -> DatasetConfig:
        """The default settings for an env family, with ``overrides``.

        SMAX/SMACv2 battles last 30-100 steps and pay the win bonus at the end, so their
        PPO uses gamma 0.99 (MAPPO's SMAC setting) instead of the MPE-tuned 0.95, 1M
        agent-steps and 16 vmapped env copies (cheap under ``jax.vmap``). ``overrides`` may
        hold a ``ppo`` dict of PPO fields that replace those defaults one by one.
        """
        ppo = PPOConfig()
        if env_id.startswith(("smax/", "smacv2/")):
            ppo = dataclasses.replace(ppo, total_timesteps=1_000_000, gamma=0.99, n_envs=16)
        opts = dict(overrides)
        if "ppo" in opts:
            given = opts.pop("ppo")
            given = given.to_dict() if isinstance(given, PPOConfig) else dict(given)
            ppo = PPOConfig.from_dict({**ppo.to_dict(), **given})
        return cls(ppo=ppo, **opts)
