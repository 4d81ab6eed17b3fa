"""``JointEnv``: a single-agent Gymnasium view of a PettingZoo parallel env.

The observation and action spaces are ``Dict({agent: space})`` over ``possible_agents`` in
order. Agents that are not present (not yet spawned, or gone) observe zeros and their actions
are ignored. The reward is the team reward: the mean over the agents that acted this step.
``info`` always holds the same keys, so episodes stack into fixed-shape arrays:

- ``info["rewards"]``: ``{agent: float}`` per-agent rewards (0 for absent agents),
- ``info["alive"]``: ``{agent: bool}``, True when the agent has a real observation now,
- ``info["state"]``: the global state, when the env has ``state()``,
- ``info[key]`` for each of ``info_keys`` (e.g. ``"battle_won"``), max over agents' infos.

An agent that dies at step ``t`` gets its last observation at ``t`` (alive) and zeros after.
It acted at step ``t`` exactly when ``alive[t] and alive[t + 1]``.

The episode ends when no agent is left; it is *truncated* if any agent was truncated at the
final step, else *terminated*. Registered as ``diffusion-agents/JointEnv-v0`` so that
``gymnasium.make("diffusion-agents/JointEnv-v0", env_id=..., env_kwargs=...)`` and Minari's
``recover_environment()`` rebuild it.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import EnvSpec
from pettingzoo.utils.env import ParallelEnv

from wrappers.registry import make_env
from wrappers.spaces import zero_like

JOINT_ENV_ID = "diffusion-agents/JointEnv-v0"


class JointEnv(gym.Env):
    """Gymnasium env over the joint observation/action of a PettingZoo ``ParallelEnv``.

    Args:
        env_id: a :func:`wrappers.make_env` id; with ``env_kwargs`` it rebuilds the env.
        env_kwargs: keyword arguments for ``make_env``.
        env: an already built ``ParallelEnv`` (then ``env_id`` is only a label).
        info_keys: scalar info keys to copy from the agents' infos into ``info``.
        render_mode: passed to the env factory (``make_env(env_id, render_mode=...)``) when
            given, so ``gymnasium.make(..., render_mode="rgb_array")`` and Minari's
            ``recover_environment(render_mode=...)`` work; ``render()`` forwards to the env.
    """

    # gymnasium.make checks render_mode against the class metadata before building the env;
    # each instance then lists what its PettingZoo env really supports.
    metadata = {"render_modes": ["human", "rgb_array", "ansi"]}

    def __init__(
        self,
        env_id: str | None = None,
        env_kwargs: dict[str, Any] | None = None,
        *,
        env: ParallelEnv | None = None,
        info_keys: Sequence[str] = (),
        render_mode: str | None = None,
    ) -> None:
        if env is None:
            if env_id is None:
                raise ValueError("JointEnv needs env_id (with env_kwargs) or env=.")
            build_kwargs = dict(env_kwargs or {})
            if render_mode is not None:
                build_kwargs["render_mode"] = render_mode
            env = make_env(env_id, **build_kwargs)
        self.render_mode = render_mode if render_mode is not None else getattr(
            env, "render_mode", None
        )
        env_meta = getattr(env, "metadata", None) or {}
        self.metadata = {
            **type(self).metadata,
            "render_modes": list(env_meta.get("render_modes", [])),
        }
        if "render_fps" in env_meta:
            self.metadata["render_fps"] = env_meta["render_fps"]
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})
        self.parallel_env = env
        self.possible_agents: list[str] = list(env.possible_agents)
        if not self.possible_agents:
            raise ValueError(f"Env {env_id!r} has no possible_agents.")
        self.info_keys = tuple(info_keys)
        # OrderedDict: gymnasium sorts the keys of a plain dict; keep possible_agents order.
        self.observation_space = spaces.Dict(
            OrderedDict((a, env.observation_space(a)) for a in self.possible_agents)
        )
        self.action_space = spaces.Dict(
            OrderedDict((a, env.action_space(a)) for a in self.possible_agents)
        )
        self.has_state = callable(getattr(env, "state", None)) and (
            getattr(env, "state_space", None) is not None
        )
        self._zero_obs = {a: zero_like(s) for a, s in self.observation_space.items()}
        self.agents: list[str] = []

    # -- helpers -----------------------------------------------------------------------
    def _joint_obs(self, obs: dict[str, Any]) -> dict[str, Any]:
        return {a: obs[a] if a in obs else self._zero_obs[a] for a in self.possible_agents}

    def _info(
        self, obs: dict[str, Any], rewards: dict[str, float], infos: dict[str, Any]
    ) -> dict[str, Any]:
        info: dict[str, Any] = {
            "rewards": {a: float(rewards.get(a, 0.0)) for a in self.possible_agents},
            "alive": {a: a in obs for a in self.possible_agents},
        }
        if self.has_state:
            info["state"] = np.asarray(self.parallel_env.state(), dtype=np.float32)
        for key in self.info_keys:
            vals = [
                float(i[key]) for i in infos.values() if isinstance(i, dict) and key in i
            ]
            info[key] = max(vals) if vals else 0.0
        return info

    def agent_obs(self, joint_obs: dict[str, Any]) -> dict[str, Any]:
        """The PettingZoo observation dict of the agents acting now (for ``policy.act``)."""
        return {a: joint_obs[a] for a in self.agents}

    # -- gymnasium API -----------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        obs, infos = self.parallel_env.reset(seed=seed, options=options)
        self.agents = list(self.parallel_env.agents)
        return self._joint_obs(obs), self._info(obs, {}, infos or {})

    def step(
        self, action: dict[str, Any]
    ) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        if not self.agents:
            raise RuntimeError("JointEnv.step() called after the episode ended; call reset().")
        acting = {a: action[a] for a in self.agents if a in action}
        missing = [a for a in self.agents if a not in action]
        if missing:
            raise KeyError(f"JointEnv.step(): no action for present agent(s) {missing}.")
        obs, rewards, terms, truncs, infos = self.parallel_env.step(acting)
        present = [a for a in rewards if a in acting] or list(rewards)
        team = float(np.mean([rewards[a] for a in present])) if present else 0.0
        self.agents = list(self.parallel_env.agents)
        done = not self.agents
        truncated = done and any(bool(truncs.get(a, False)) for a in acting)
        terminated = done and not truncated
        return (
            self._joint_obs(obs),
            team,
            terminated,
            truncated,
            self._info(obs, rewards, infos or {}),
        )

    def state(self) -> np.ndarray:
        return np.asarray(self.parallel_env.state(), dtype=np.float32)

    def render(self) -> Any:
        return self.parallel_env.render()

    def close(self) -> None:
        self.parallel_env.close()


def register_joint_env() -> None:
    """Register :class:`JointEnv` with Gymnasium (idempotent)."""
    if JOINT_ENV_ID not in gym.registry:
        gym.register(id=JOINT_ENV_ID, entry_point="wrappers.joint:JointEnv")


def joint_env_spec(
    env_id: str, env_kwargs: dict[str, Any] | None = None, info_keys: Sequence[str] = ()
) -> EnvSpec:
    """The ``EnvSpec`` that rebuilds ``JointEnv(env_id, env_kwargs)`` via ``gymnasium.make``."""
    register_joint_env()
    kwargs: dict[str, Any] = {"env_id": env_id, "env_kwargs": dict(env_kwargs or {})}
    if info_keys:
        kwargs["info_keys"] = list(info_keys)
    return dataclasses.replace(gym.spec(JOINT_ENV_ID), kwargs=kwargs)
