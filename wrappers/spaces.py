"""Per-agent space helpers: flat observation vectors, action masks, action encodings.

An agent's observation space is either a plain space (``Box``, ``Discrete``, ...) or the
PettingZoo action-mask form ``Dict({"observation": space, "action_mask": MultiBinary(n)})``.
Every reader in this project goes through these helpers so that all of them see the same
flat ``float32`` vector per agent.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

MASK_KEY = "action_mask"
OBS_KEY = "observation"


def has_action_mask(space: spaces.Space) -> bool:
    """True for the PettingZoo ``{"observation", "action_mask"}`` observation form."""
    return isinstance(space, spaces.Dict) and MASK_KEY in space.spaces


def core_obs_space(space: spaces.Space) -> spaces.Space:
    """The observation part of an agent's space (without the action mask)."""
    if has_action_mask(space):
        if OBS_KEY not in space.spaces:
            raise ValueError(
                f"Observation space {space} has an 'action_mask' but no 'observation' key."
            )
        return space.spaces[OBS_KEY]
    return space


def obs_dim(space: spaces.Space) -> int:
    """Length of the flat observation vector of an agent (action mask excluded)."""
    return int(spaces.flatdim(core_obs_space(space)))


def flatten_obs(space: spaces.Space, obs: Any) -> np.ndarray:
    """Flat ``float32`` observation vector ``(obs_dim,)`` of one agent (mask dropped)."""
    core = core_obs_space(space)
    part = obs[OBS_KEY] if has_action_mask(space) else obs
    return np.asarray(spaces.flatten(core, part), dtype=np.float32).reshape(-1)


def action_mask(space: spaces.Space, obs: Any) -> np.ndarray | None:
    """The agent's boolean action mask ``(n_actions,)``, or None if it has none."""
    if not has_action_mask(space):
        return None
    return np.asarray(obs[MASK_KEY]).astype(bool).reshape(-1)


def is_discrete(space: spaces.Space) -> bool:
    return isinstance(space, spaces.Discrete)


def action_dim(space: spaces.Space) -> int:
    """Width of an action in the padded action array: 1 for Discrete (the index), else flat size."""
    if isinstance(space, spaces.Discrete):
        return 1
    if isinstance(space, spaces.Box):
        return int(np.prod(space.shape))
    if isinstance(space, (spaces.MultiDiscrete, spaces.MultiBinary)):
        return int(np.prod(space.shape))
    raise TypeError(
        f"Unsupported action space {space}: use Discrete, Box, MultiDiscrete or MultiBinary."
    )


def n_actions(space: spaces.Space) -> int:
    """Number of discrete choices (Discrete) or 0 for other action spaces."""
    return int(space.n) if isinstance(space, spaces.Discrete) else 0


def zero_like(space: spaces.Space) -> Any:
    """An all-zero sample of ``space`` (what an absent agent observes)."""
    if isinstance(space, spaces.Dict):
        return {k: zero_like(s) for k, s in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(zero_like(s) for s in space.spaces)
    if isinstance(space, spaces.Discrete):
        return np.int64(space.start)
    if space.shape is None:
        raise TypeError(f"Cannot build a zero observation for space {space}.")
    return np.zeros(space.shape, dtype=space.dtype)


def action_to_vector(space: spaces.Space, action: Any) -> np.ndarray:
    """Encode one action as a float vector ``(action_dim(space),)``."""
    return np.asarray(action, dtype=np.float32).reshape(-1)


def vector_to_action(space: spaces.Space, vec: np.ndarray) -> Any:
    """Decode a vector from :func:`action_to_vector` back to the space's action type.

    Discrete, MultiDiscrete and MultiBinary values are rounded and clipped into the space
    (generated actions may fall slightly outside it); Box values are passed through.
    """
    vec = np.asarray(vec).reshape(-1)[: action_dim(space)]
    if isinstance(space, spaces.Discrete):
        lo = int(space.start)
        return np.int64(np.clip(np.rint(vec[0]), lo, lo + int(space.n) - 1))
    if isinstance(space, spaces.Box):
        return vec.astype(space.dtype).reshape(space.shape)
    vec = np.rint(vec).reshape(space.shape)
    if isinstance(space, spaces.MultiDiscrete):
        vec = np.clip(vec, space.start, space.start + space.nvec - 1)
    elif isinstance(space, spaces.MultiBinary):
        vec = np.clip(vec, 0, 1)
    return vec.astype(space.dtype)


class MaskedDiscreteAgents:
    """Shared parts of the SMAC-family adapters (SMAX, SMACv2).

    Every agent observes ``{"observation": Box, "action_mask": Box(0, 1, int8)}`` and acts in
    ``Discrete(n_actions)``. Subclasses set ``possible_agents``, ``agents``, ``n_actions``,
    ``_obs_spaces`` and ``_act_spaces`` (built with :meth:`_build_spaces`).
    """

    possible_agents: list[str]
    agents: list[str]
    n_actions: int

    def _build_spaces(self, obs_box: spaces.Box) -> None:
        mask = spaces.Box(0, 1, (self.n_actions,), np.int8)
        self._obs_spaces = {
            a: spaces.Dict({OBS_KEY: obs_box, MASK_KEY: mask})
            for a in self.possible_agents
        }
        self._act_spaces = {
            a: spaces.Discrete(self.n_actions) for a in self.possible_agents
        }

    def observation_space(self, agent: str) -> spaces.Space:
        try:
            return self._obs_spaces[agent]
        except KeyError:
            raise KeyError(
                f"Unknown agent {agent!r}; agents: {self.possible_agents}."
            ) from None

    def action_space(self, agent: str) -> spaces.Space:
        try:
            return self._act_spaces[agent]
        except KeyError:
            raise KeyError(
                f"Unknown agent {agent!r}; agents: {self.possible_agents}."
            ) from None

    def _checked_actions(self, actions: Any) -> dict[str, int]:
        """``{agent: action}`` for exactly the present agents, each one integer in range.

        Agents that already left (their last observation came with terminated=True) may
        still get an action from ``env.step(policy.act(obs))``: it is dropped. Unknown
        agents, missing present agents and non-integer or out-of-range actions raise.
        """
        if not isinstance(actions, dict):
            raise TypeError(
                f"actions must be a dict {{agent: int}}, got {type(actions).__name__}."
            )
        unknown = [a for a in actions if a not in self._act_spaces]
        if unknown:
            raise KeyError(
                f"Actions given for agent(s) {unknown} that are not in the episode "
                f"(unknown agents); present: {self.agents}."
            )
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise KeyError(f"No action for present agent(s) {missing}.")
        out: dict[str, int] = {}
        for a in self.agents:
            v = actions[a]
            arr = np.asarray(v)
            integral = arr.size == 1 and (
                np.issubdtype(arr.dtype, np.integer)
                or (
                    np.issubdtype(arr.dtype, np.floating)
                    and float(arr.flat[0]).is_integer()
                )
            )
            if not integral:
                raise ValueError(
                    f"Action of {a!r} must be one integer in [0, {self.n_actions}), got {v!r}."
                )
            k = int(arr.flat[0])
            if not 0 <= k < self.n_actions:
                raise ValueError(
                    f"Action {k} of {a!r} is out of range [0, {self.n_actions})."
                )
            out[a] = k
        return out
