"""Small PettingZoo parallel envs written for the wrapper tests.

Each factory is importable through ``make_env``'s ``"package.module:factory"`` form, e.g.
``make_env("tests.wrappers.toy_envs:make_hetero_env")``. All envs are deterministic given the
``reset`` seed and the actions, so a recorded dataset can be checked against an independent
replay.

- :class:`HeteroEnv`: agents with different observation sizes *and* different action spaces
  (``Discrete(3)``, ``Discrete(5)``, ``Box(2,)``), with ``state()``.
- :class:`MaskedEnv`: discrete agents whose observations carry an ``action_mask`` that changes
  every step; an illegal action raises, so a policy that ignores masks fails loudly.
- :class:`DyingEnv`: agents leave mid-episode at different steps, the PettingZoo way
  (``terminated=True`` on their last step, then gone from ``env.agents``), with ``state()``.
- :class:`ChaseEnv` + :class:`ChasePolicy`: a deterministic cooperative task with a
  deterministic scripted behaviour policy (for tests that must reproduce a behaviour policy).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo.utils.env import ParallelEnv


class _ToyBase(ParallelEnv):
    """Shared bookkeeping: cached spaces, seeding, ``max_cycles`` truncation."""

    metadata = {"render_modes": [], "name": "toy", "is_parallelizable": True}

    def __init__(self, max_cycles: int) -> None:
        if max_cycles < 1:
            raise ValueError(f"max_cycles must be >= 1, got {max_cycles}.")
        self.max_cycles = max_cycles
        self.agents: list[str] = []
        self.np_random = np.random.default_rng(0)
        self.t = 0

    @functools.cache  # noqa: B019 - PettingZoo wants the same object back
    def observation_space(self, agent: str) -> spaces.Space:
        return self._obs_spaces[agent]

    @functools.cache  # noqa: B019
    def action_space(self, agent: str) -> spaces.Space:
        return self._act_spaces[agent]

    def _seed(self, seed: int | None) -> None:
        if seed is not None:
            self.np_random = np.random.default_rng(seed)


class HeteroEnv(_ToyBase):
    """Three agents, each with its own observation size and action space.

    ``scout`` (obs 3, Discrete(3)), ``worker`` (obs 5, Discrete(5)), ``pilot`` (obs 4,
    Box(-1, 1, (2,))). Each agent has a hidden float state; its action nudges it; the reward
    is minus the distance of its state from a target drawn at reset. With
    ``mask_worker=True`` only ``worker`` observes ``{"observation", "action_mask"}`` (action
    ``t % 5`` forbidden at step ``t``; illegal actions raise): masked and unmasked agents mixed.
    """

    metadata = {"render_modes": [], "name": "hetero_v0", "is_parallelizable": True}

    def __init__(self, max_cycles: int = 8, mask_worker: bool = False) -> None:
        super().__init__(max_cycles)
        self.possible_agents = ["scout", "worker", "pilot"]
        self.mask_worker = mask_worker
        self._dims = {"scout": 3, "worker": 5, "pilot": 4}
        self._obs_spaces: dict[str, spaces.Space] = {
            a: spaces.Box(-np.inf, np.inf, (d,), np.float32) for a, d in self._dims.items()
        }
        if mask_worker:
            self._obs_spaces["worker"] = spaces.Dict(
                {"observation": self._obs_spaces["worker"], "action_mask": spaces.MultiBinary(5)}
            )
        self._act_spaces = {
            "scout": spaces.Discrete(3),
            "worker": spaces.Discrete(5),
            "pilot": spaces.Box(-1.0, 1.0, (2,), np.float32),
        }
        self.state_space = spaces.Box(-np.inf, np.inf, (6,), np.float32)

    def _worker_mask(self) -> np.ndarray:
        m = np.ones(5, np.int8)
        m[self.t % 5] = 0
        return m

    def _obs(self, agent: str) -> Any:
        i = self.possible_agents.index(agent)
        d = self._dims[agent]
        base = np.array([self.pos[i], self.target[i], self.t / self.max_cycles], np.float32)
        extra = np.arange(d - 3, dtype=np.float32) * self.pos[i]
        o = np.concatenate([base, extra]).astype(np.float32)
        if agent == "worker" and self.mask_worker:
            return {"observation": o, "action_mask": self._worker_mask()}
        return o

    def state(self) -> np.ndarray:
        return np.concatenate([self.pos, self.target]).astype(np.float32)

    def reset(self, seed: int | None = None, options: dict | None = None):
        self._seed(seed)
        self.t = 0
        self.agents = list(self.possible_agents)
        self.pos = self.np_random.uniform(-1, 1, 3).astype(np.float32)
        self.target = self.np_random.uniform(-1, 1, 3).astype(np.float32)
        return {a: self._obs(a) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]):
        if self.mask_worker and not self._worker_mask()[int(actions["worker"])]:
            raise ValueError(f"worker took illegal action {actions['worker']} at step {self.t}.")
        deltas = {
            "scout": (int(actions["scout"]) - 1) * 0.2,
            "worker": (int(actions["worker"]) - 2) * 0.1,
            "pilot": float(np.sum(np.asarray(actions["pilot"], np.float32))) * 0.1,
        }
        for i, a in enumerate(self.possible_agents):
            self.pos[i] += np.float32(deltas[a])
        self.t += 1
        rewards = {
            a: -float(abs(self.pos[i] - self.target[i]))
            for i, a in enumerate(self.possible_agents)
        }
        trunc = self.t >= self.max_cycles
        obs = {a: self._obs(a) for a in self.agents}
        terms = {a: False for a in self.agents}
        truncs = {a: trunc for a in self.agents}
        infos = {a: {} for a in self.agents}
        if trunc:
            self.agents = []
        return obs, rewards, terms, truncs, infos


class MaskedEnv(_ToyBase):
    """Discrete agents with ``{"observation", "action_mask"}`` observations.

    ``n_agents`` agents with ``Discrete(n_actions)``. At step ``t`` agent ``i`` may not use
    action ``(t + i) % n_actions``, and at even steps not action ``(t + i + 1) % n_actions``
    either, so masks change over time and differ between agents. An illegal action raises
    ``ValueError`` (``strict=True``) or is a no-op worth 0 (``strict=False``, for checkers
    that sample unmasked actions). Reward: the chosen action index divided by ``n_actions``.
    """

    metadata = {"render_modes": [], "name": "masked_v0", "is_parallelizable": True}

    def __init__(
        self, n_agents: int = 2, n_actions: int = 4, max_cycles: int = 7, strict: bool = True
    ) -> None:
        super().__init__(max_cycles)
        self.strict = strict
        if n_actions < 3:
            raise ValueError(f"n_actions must be >= 3, got {n_actions}.")
        self.n_actions = n_actions
        self.possible_agents = [f"unit_{i}" for i in range(n_agents)]
        self._obs_spaces = {
            a: spaces.Dict(
                {
                    "observation": spaces.Box(-np.inf, np.inf, (3,), np.float32),
                    "action_mask": spaces.MultiBinary(n_actions),
                }
            )
            for a in self.possible_agents
        }
        self._act_spaces = {a: spaces.Discrete(n_actions) for a in self.possible_agents}

    def mask(self, i: int) -> np.ndarray:
        m = np.ones(self.n_actions, np.int8)
        m[(self.t + i) % self.n_actions] = 0
        if self.t % 2 == 0:
            m[(self.t + i + 1) % self.n_actions] = 0
        return m

    def _obs(self, i: int) -> dict[str, np.ndarray]:
        o = np.array([self.value[i], self.t, i], np.float32)
        return {"observation": o, "action_mask": self.mask(i)}

    def reset(self, seed: int | None = None, options: dict | None = None):
        self._seed(seed)
        self.t = 0
        self.agents = list(self.possible_agents)
        self.value = self.np_random.normal(size=len(self.possible_agents)).astype(np.float32)
        obs = {a: self._obs(i) for i, a in enumerate(self.possible_agents)}
        return obs, {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]):
        rewards = {}
        for i, a in enumerate(self.possible_agents):
            act = int(actions[a])
            if not self.mask(i)[act]:
                if self.strict:
                    raise ValueError(f"{a} took illegal action {act} at step {self.t}.")
                rewards[a] = 0.0
                continue
            self.value[i] += np.float32(act - 1)
            rewards[a] = act / self.n_actions
        self.t += 1
        trunc = self.t >= self.max_cycles
        obs = {a: self._obs(i) for i, a in enumerate(self.possible_agents)}
        terms = {a: False for a in self.agents}
        truncs = {a: trunc for a in self.agents}
        infos = {a: {"legal": int(self.mask(i).sum())} for i, a in enumerate(self.agents)}
        if trunc:
            self.agents = []
        return obs, rewards, terms, truncs, infos


class DyingEnv(_ToyBase):
    """Agents leave the episode at different steps.

    Agent ``i`` terminates on step ``deaths[i]`` (1-based; ``None``: never), plus a delay
    drawn from ``0..jitter`` at each reset (so episodes differ in length). On that step it
    still gets its observation, reward and ``terminated=True``; afterwards it is gone from
    ``agents`` and from every returned dict. The episode is truncated at ``max_cycles`` if
    anyone is left. Agents have mixed action spaces (``Discrete(3, start=action_start)`` and
    ``Box(1,)``) and the
    env has ``state()`` (every agent's position, frozen once dead).
    """

    metadata = {"render_modes": [], "name": "dying_v0", "is_parallelizable": True}

    def __init__(
        self,
        deaths: tuple[int | None, ...] = (2, 4, None),
        max_cycles: int = 6,
        jitter: int = 0,
        action_start: int = 0,
    ) -> None:
        super().__init__(max_cycles)
        self.action_start = action_start
        self.base_deaths = tuple(deaths)
        self.deaths = tuple(deaths)
        self.jitter = jitter
        for d in self.deaths:
            if d is not None and d < 1:
                raise ValueError(f"death steps must be >= 1 or None, got {d}.")
        self.possible_agents = [f"bot_{i}" for i in range(len(self.deaths))]
        self._obs_spaces = {
            a: spaces.Box(-np.inf, np.inf, (2,), np.float32) for a in self.possible_agents
        }
        self._act_spaces = {
            a: spaces.Box(-1.0, 1.0, (1,), np.float32)
            if i == 1
            else spaces.Discrete(3, start=action_start)
            for i, a in enumerate(self.possible_agents)
        }
        self.state_space = spaces.Box(
            -np.inf, np.inf, (len(self.deaths) + 1,), np.float32
        )

    def _obs(self, i: int) -> np.ndarray:
        return np.array([self.pos[i], self.t], np.float32)

    def state(self) -> np.ndarray:
        return np.concatenate([self.pos, [self.t]]).astype(np.float32)

    def reset(self, seed: int | None = None, options: dict | None = None):
        self._seed(seed)
        self.t = 0
        self.agents = list(self.possible_agents)
        self.pos = self.np_random.uniform(-1, 1, len(self.deaths)).astype(np.float32)
        delays = self.np_random.integers(0, self.jitter + 1, len(self.deaths))
        self.deaths = tuple(
            None if d is None else int(d + k) for d, k in zip(self.base_deaths, delays)
        )
        obs = {a: self._obs(i) for i, a in enumerate(self.possible_agents)}
        return obs, {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]):
        extra = set(actions) - set(self.agents)
        if extra:
            raise ValueError(f"actions for agents not in the episode: {sorted(extra)}")
        self.t += 1
        idx = {a: self.possible_agents.index(a) for a in self.agents}
        for a, i in idx.items():
            move = np.asarray(actions[a], np.float32).reshape(-1)[0]
            if isinstance(self._act_spaces[a], spaces.Discrete):
                move = move - 1 - self.action_start
            self.pos[i] += np.float32(0.5 * move)
        obs = {a: self._obs(i) for a, i in idx.items()}
        rewards = {a: float(-abs(self.pos[i]) + 0.1 * i) for a, i in idx.items()}
        terms = {a: self.deaths[i] == self.t for a, i in idx.items()}
        truncs = {a: (self.t >= self.max_cycles) and not terms[a] for a in idx}
        infos = {a: {"hits": float(i)} for a, i in idx.items()}
        self.agents = [a for a in self.agents if not (terms[a] or truncs[a])]
        return obs, rewards, terms, truncs, infos


class SpawnEnv(_ToyBase):
    """Agents that join mid-episode: ``late_i`` appears after step ``spawn_at + i``.

    ``first`` is present from the start; every agent leaves by truncation at ``max_cycles``.
    Before joining an agent is in ``possible_agents`` but not in ``agents``.
    """

    metadata = {"render_modes": [], "name": "spawn_v0", "is_parallelizable": True}

    def __init__(self, n_late: int = 2, spawn_at: int = 2, max_cycles: int = 6) -> None:
        super().__init__(max_cycles)
        self.spawn_at = spawn_at
        self.possible_agents = ["first"] + [f"late_{i}" for i in range(n_late)]
        self._obs_spaces = {
            a: spaces.Box(-np.inf, np.inf, (2,), np.float32) for a in self.possible_agents
        }
        self._act_spaces = {a: spaces.Discrete(2) for a in self.possible_agents}

    def _obs(self, a: str) -> np.ndarray:
        return np.array([self.score[a], self.t], np.float32)

    def reset(self, seed: int | None = None, options: dict | None = None):
        self._seed(seed)
        self.t = 0
        self.agents = ["first"]
        self.score = {a: float(self.np_random.normal()) for a in self.possible_agents}
        return {"first": self._obs("first")}, {"first": {}}

    def step(self, actions: dict[str, Any]):
        for a in self.agents:
            self.score[a] += float(actions[a])
        self.t += 1
        trunc = self.t >= self.max_cycles
        rewards = {a: float(actions[a]) for a in self.agents}
        if not trunc:  # newcomers get their first observation (and a 0 reward) now
            for i, a in enumerate(self.possible_agents[1:]):
                if self.t == self.spawn_at + i:
                    self.agents.append(a)
                    rewards[a] = 0.0
        obs = {a: self._obs(a) for a in self.agents}
        terms = {a: False for a in self.agents}
        truncs = {a: trunc for a in self.agents}
        infos = {a: {} for a in self.agents}
        if trunc:
            self.agents = []
        return obs, rewards, terms, truncs, infos


class OddSpacesEnv(_ToyBase):
    """Less common spaces: Discrete / MultiBinary / 2-D Box observations, and
    ``MultiDiscrete``, ``Discrete(3, start=1)`` and 2-D ``Box`` actions."""

    metadata = {"render_modes": [], "name": "odd_spaces_v0", "is_parallelizable": True}

    def __init__(self, max_cycles: int = 4) -> None:
        super().__init__(max_cycles)
        self.possible_agents = ["disc", "bits", "grid"]
        self._obs_spaces = {
            "disc": spaces.Discrete(4),
            "bits": spaces.MultiBinary(3),
            "grid": spaces.Box(-5.0, 5.0, (2, 2), np.float32),
        }
        self._act_spaces = {
            "disc": spaces.MultiDiscrete([3, 2]),
            "bits": spaces.Discrete(3, start=1),
            "grid": spaces.Box(-1.0, 1.0, (2, 2), np.float32),
        }

    def _obs(self) -> dict[str, Any]:
        return {
            "disc": np.int64(self.k % 4),
            "bits": np.array([(self.k >> j) & 1 for j in range(3)], np.int8),
            "grid": np.clip(self.g, -5, 5).astype(np.float32),
        }

    def reset(self, seed: int | None = None, options: dict | None = None):
        self._seed(seed)
        self.t = 0
        self.agents = list(self.possible_agents)
        self.k = int(self.np_random.integers(8))
        self.g = self.np_random.normal(size=(2, 2)).astype(np.float32)
        return self._obs(), {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]):
        md = np.asarray(actions["disc"])
        self.k = int(self.k + md[0] + 3 * md[1] + int(actions["bits"]))
        self.g = self.g + np.asarray(actions["grid"], np.float32)
        self.t += 1
        rewards = {"disc": float(md.sum()), "bits": float(actions["bits"]),
                   "grid": float(np.asarray(actions["grid"]).sum())}
        trunc = self.t >= self.max_cycles
        obs = self._obs()
        terms = {a: False for a in self.agents}
        truncs = {a: trunc for a in self.agents}
        infos = {a: {} for a in self.agents}
        if trunc:
            self.agents = []
        return obs, rewards, terms, truncs, infos


class ChaseEnv(_ToyBase):
    """Deterministic cooperative chase on a line: each agent walks to its own landmark.

    ``n_agents`` agents with ``Discrete(3)`` actions (left, stay, right; step 0.25). Obs:
    ``[own position, own landmark, other agents' positions...]``. Team-style reward: minus the
    distance to the landmark. ``reset(seed)`` draws the start and landmark positions.
    """

    metadata = {"render_modes": [], "name": "chase_v0", "is_parallelizable": True}

    def __init__(self, n_agents: int = 2, max_cycles: int = 10) -> None:
        super().__init__(max_cycles)
        self.n = n_agents
        self.possible_agents = [f"runner_{i}" for i in range(n_agents)]
        self._obs_spaces = {
            a: spaces.Box(-np.inf, np.inf, (n_agents + 1,), np.float32)
            for a in self.possible_agents
        }
        self._act_spaces = {a: spaces.Discrete(3) for a in self.possible_agents}
        self.state_space = spaces.Box(-np.inf, np.inf, (2 * n_agents,), np.float32)

    def _obs(self, i: int) -> np.ndarray:
        others = np.delete(self.pos, i)
        return np.concatenate([[self.pos[i], self.goal[i]], others]).astype(np.float32)

    def state(self) -> np.ndarray:
        return np.concatenate([self.pos, self.goal]).astype(np.float32)

    def reset(self, seed: int | None = None, options: dict | None = None):
        self._seed(seed)
        self.t = 0
        self.agents = list(self.possible_agents)
        self.pos = self.np_random.uniform(-1, 1, self.n).astype(np.float32)
        self.goal = self.np_random.uniform(-1, 1, self.n).astype(np.float32)
        return {a: self._obs(i) for i, a in enumerate(self.possible_agents)}, {
            a: {} for a in self.agents
        }

    def step(self, actions: dict[str, Any]):
        for i, a in enumerate(self.possible_agents):
            self.pos[i] += np.float32(0.25 * (int(actions[a]) - 1))
        self.t += 1
        rewards = {
            a: -float(abs(self.pos[i] - self.goal[i]))
            for i, a in enumerate(self.possible_agents)
        }
        trunc = self.t >= self.max_cycles
        obs = {a: self._obs(i) for i, a in enumerate(self.possible_agents)}
        terms = {a: False for a in self.agents}
        truncs = {a: trunc for a in self.agents}
        infos = {a: {} for a in self.agents}
        if trunc:
            self.agents = []
        return obs, rewards, terms, truncs, infos


class ChasePolicy:
    """Deterministic scripted expert for :class:`ChaseEnv`: step towards the landmark."""

    name = "chase-greedy"

    def reset(self) -> None:
        pass

    def act(self, obs: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for agent, o in obs.items():
            gap = float(o[1] - o[0])
            out[agent] = np.int64(1 if abs(gap) < 0.125 else (2 if gap > 0 else 0))
        return out


def make_hetero_env(max_cycles: int = 8, mask_worker: bool = False) -> HeteroEnv:
    return HeteroEnv(max_cycles=max_cycles, mask_worker=mask_worker)


def make_masked_env(
    n_agents: int = 2, n_actions: int = 4, max_cycles: int = 7, strict: bool = True
) -> MaskedEnv:
    return MaskedEnv(
        n_agents=n_agents, n_actions=n_actions, max_cycles=max_cycles, strict=strict
    )


def make_dying_env(
    deaths: tuple[int | None, ...] | list[int | None] = (2, 4, None),
    max_cycles: int = 6,
    jitter: int = 0,
    action_start: int = 0,
) -> DyingEnv:
    # JSON round trips (env specs in dataset metadata) turn tuples into lists.
    return DyingEnv(
        deaths=tuple(deaths), max_cycles=max_cycles, jitter=jitter, action_start=action_start
    )


def make_spawn_env(n_late: int = 2, spawn_at: int = 2, max_cycles: int = 6) -> SpawnEnv:
    return SpawnEnv(n_late=n_late, spawn_at=spawn_at, max_cycles=max_cycles)


def make_odd_spaces_env(max_cycles: int = 4) -> OddSpacesEnv:
    return OddSpacesEnv(max_cycles=max_cycles)


def make_chase_env(n_agents: int = 2, max_cycles: int = 10) -> ChaseEnv:
    return ChaseEnv(n_agents=n_agents, max_cycles=max_cycles)


def family_factory(scenario: str, **kwargs: Any) -> ParallelEnv:
    """A ``register_family`` factory: ``"<prefix>/hetero"``, ``"<prefix>/masked"``, ..."""
    makers = {"hetero": make_hetero_env, "masked": make_masked_env,
              "odd": make_odd_spaces_env,
              "dying": make_dying_env, "chase": make_chase_env}
    if scenario not in makers:
        raise ValueError(f"Unknown toy scenario {scenario!r}; known: {sorted(makers)}.")
    return makers[scenario](**kwargs)


def make_not_an_env() -> object:
    """A factory that returns something that is not a ParallelEnv (for error tests)."""
    return object()
