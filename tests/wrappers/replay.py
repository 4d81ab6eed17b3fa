"""Independent ground truth for the round-trip tests.

:class:`LoggingPolicy` is a seeded, deterministic policy (re-seeded per episode, masks
respected) that logs every observation it was shown and every action it returned.
:func:`replay` steps the raw PettingZoo env itself, without ``JointEnv`` or any ``wrappers``
helper, and writes down what the convention says a dataset must hold. The tests compare
``load_episodes`` output against both.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import numpy as np
from gymnasium import spaces

from wrappers import make_env


class LoggingPolicy:
    """Per-episode seeded random actions; ``log[e]`` lists ``(obs, actions)`` per step."""

    name = "logging-test-policy"

    def __init__(self, env: Any, seed: int = 0) -> None:
        self.action_spaces = {a: env.action_space(a) for a in env.possible_agents}
        self.seed = seed
        self.episode = -1
        self.log: list[list[tuple[dict, dict]]] = []
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        self.episode += 1
        self.rng = np.random.default_rng([self.seed, self.episode])
        self.log.append([])

    def act(self, obs: dict[str, Any]) -> dict[str, Any]:
        acts: dict[str, Any] = {}
        for agent in sorted(obs):
            space = self.action_spaces[agent]
            o = obs[agent]
            if isinstance(space, spaces.Discrete):
                legal = np.arange(space.n)
                if isinstance(o, dict) and "action_mask" in o:
                    legal = np.flatnonzero(o["action_mask"])
                acts[agent] = np.int64(space.start + legal[self.rng.integers(len(legal))])
            elif isinstance(space, spaces.MultiDiscrete):
                acts[agent] = (space.start + self.rng.integers(space.nvec)).astype(space.dtype)
            else:
                acts[agent] = self.rng.uniform(space.low, space.high).astype(space.dtype)
        self.log[-1].append((copy.deepcopy(obs), copy.deepcopy(acts)))
        return acts


@dataclasses.dataclass
class Truth:
    """What one episode must look like in an EpisodeBatch, built by hand."""

    agents: list[str]
    obs: np.ndarray  # (T + 1, A, D) zero where absent
    masks: np.ndarray | None  # (T + 1, A, N)
    actions: np.ndarray  # (T, A, K) zero where the agent did not act
    acted: np.ndarray  # (T, A)
    rewards: np.ndarray  # (T, A)
    team: np.ndarray  # (T,)
    alive: np.ndarray  # (T + 1, A)
    states: np.ndarray | None  # (T + 1, S)
    terminated: bool
    truncated: bool

    @property
    def length(self) -> int:
        return len(self.team)


def _flat(space: spaces.Space, o: Any) -> np.ndarray:
    """Gymnasium's own flattening (one-hot for Discrete), mask dropped."""
    if isinstance(o, dict) and "action_mask" in o:
        space, o = space["observation"], o["observation"]
    return np.asarray(spaces.flatten(space, o), np.float32).reshape(-1)


def replay(
    env_id: str, env_kwargs: dict[str, Any], policy: LoggingPolicy, num_episodes: int,
    seed: int,
) -> list[Truth]:
    env = make_env(env_id, **env_kwargs)
    agents = list(env.possible_agents)
    out = []
    for ep in range(num_episodes):
        obs, _ = env.reset(seed=seed + ep)
        policy.reset()
        o_rows: list[dict] = []
        m_rows: list[dict] = []
        alive_rows: list[list[bool]] = []
        st_rows: list[np.ndarray] = []
        a_rows: list[dict] = []
        acted_rows: list[list[bool]] = []
        r_rows: list[list[float]] = []
        team: list[float] = []
        has_state = getattr(env, "state_space", None) is not None

        def snap(obs, o_rows=o_rows, m_rows=m_rows, alive_rows=alive_rows,
                 st_rows=st_rows, has_state=has_state):
            o_rows.append({
                a: _flat(env.observation_space(a), obs[a]) if a in obs else None
                for a in agents
            })
            m_rows.append({
                a: np.asarray(obs[a]["action_mask"]).astype(bool)
                if a in obs and isinstance(obs[a], dict) else None
                for a in agents
            })
            alive_rows.append([a in obs for a in agents])
            if has_state:
                st_rows.append(np.asarray(env.state(), np.float32).reshape(-1))

        snap(obs)
        term = trunc = {}
        while env.agents:
            acts = policy.act({a: obs[a] for a in env.agents})
            obs, rew, term, trunc, _ = env.step(acts)
            a_rows.append({a: np.asarray(acts[a], np.float32).reshape(-1) if a in acts else None
                           for a in agents})
            acted_rows.append([a in acts for a in agents])
            r_rows.append([float(rew.get(a, 0.0)) for a in agents])
            team.append(float(np.mean([rew[a] for a in acts])))
            snap(obs)
        T, A = len(team), len(agents)
        D = max(len(x) for row in o_rows for x in row.values() if x is not None)
        K = max(len(x) for row in a_rows for x in row.values() if x is not None)
        obs_arr = np.zeros((T + 1, A, D), np.float32)
        for t, row in enumerate(o_rows):
            for i, a in enumerate(agents):
                if row[a] is not None:
                    obs_arr[t, i, : len(row[a])] = row[a]
        M = None
        if any(m is not None for row in m_rows for m in row.values()):
            N = max(len(m) for row in m_rows for m in row.values() if m is not None)
            M = np.zeros((T + 1, A, N), bool)
            for t, row in enumerate(m_rows):
                for i, a in enumerate(agents):
                    if row[a] is not None:
                        M[t, i, : len(row[a])] = row[a]
        Ac = np.zeros((T, A, K), np.float32)
        for t, row in enumerate(a_rows):
            for i, a in enumerate(agents):
                if row[a] is not None:
                    Ac[t, i, : len(row[a])] = row[a]
        last_actors = [a for a, acted in zip(agents, acted_rows[-1]) if acted]
        truncated = any(bool(trunc.get(a, False)) for a in last_actors)
        out.append(Truth(
            agents=agents,
            obs=obs_arr,
            masks=M,
            actions=Ac,
            acted=np.asarray(acted_rows, bool),
            rewards=np.asarray(r_rows, np.float64),
            team=np.asarray(team, np.float64),
            alive=np.asarray(alive_rows, bool),
            states=np.stack(st_rows) if has_state else None,
            terminated=not truncated,
            truncated=truncated,
        ))
    return out
