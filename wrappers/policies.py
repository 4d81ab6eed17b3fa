"""Minimal policies speaking the ``act(obs_dict) -> action_dict`` protocol."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
from gymnasium import spaces
from pettingzoo.utils.env import ParallelEnv

from wrappers.spaces import action_mask


@runtime_checkable
class MultiAgentPolicy(Protocol):
    """Anything with ``act(obs) -> actions`` for the agents present; ``reset()`` is optional."""

    def act(self, obs: dict[str, Any]) -> dict[str, Any]: ...


class RandomPolicy:
    """Uniform random actions that respect action masks (``obs[agent]["action_mask"]``)."""

    name = "random"

    def __init__(self, env: ParallelEnv, seed: int | None = None) -> None:
        self.action_spaces = {a: env.action_space(a) for a in env.possible_agents}
        self.observation_spaces = {a: env.observation_space(a) for a in env.possible_agents}
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        pass

    def act(self, obs: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for agent, o in obs.items():
            space = self.action_spaces[agent]
            mask = action_mask(self.observation_spaces[agent], o)
            if isinstance(space, spaces.Discrete) and mask is not None and mask.any():
                out[agent] = np.int64(space.start + self.rng.choice(np.flatnonzero(mask)))
            elif isinstance(space, spaces.Discrete):
                out[agent] = np.int64(space.start + self.rng.integers(space.n))
            elif isinstance(space, spaces.Box):
                low = np.where(np.isfinite(space.low), space.low, -1.0)
                high = np.where(np.isfinite(space.high), space.high, 1.0)
                out[agent] = self.rng.uniform(low, high).astype(space.dtype)
            else:
                space.seed(int(self.rng.integers(2**31)))
                out[agent] = space.sample()
        return out
