"""Shared pieces of the learned baselines: agent-step tables and a parameter-shared policy.

All agents share one network; its input is the agent's flat observation (zero-padded to the
widest agent) concatenated with a one-hot agent id, so heterogeneous agents fit one model.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from wrappers import EpisodeBatch
from wrappers.spaces import action_mask, flatten_obs


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a torch generator for minibatch sampling."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def mlp(inp: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(inp, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Linear(hidden, out),
    )


def action_kind(batch: EpisodeBatch, algorithm: str) -> str:
    """``"discrete"`` or ``"continuous"``; ValueError naming the agents for mixed/other spaces."""
    kinds = {}
    for a in batch.agents:
        s = batch.action_spaces[a]
        kinds[a] = (
            "discrete" if isinstance(s, spaces.Discrete)
            else "continuous" if isinstance(s, spaces.Box) else type(s).__name__
        )
    if len(set(kinds.values())) != 1 or next(iter(kinds.values())) not in (
        "discrete", "continuous",
    ):
        raise ValueError(
            f"{algorithm} needs all agents to have Discrete or all Box action spaces; "
            f"dataset {batch.dataset_id!r} has {kinds}."
        )
    return next(iter(kinds.values()))


def legal_table(batch: EpisodeBatch) -> np.ndarray:
    """``(A, N)`` True for the action indices each agent's Discrete space has."""
    n_max = max(batch.n_actions)
    legal = np.zeros((batch.num_agents, n_max), bool)
    for i, n in enumerate(batch.n_actions):
        legal[i, :n] = True
    return legal


def agent_inputs(obs: np.ndarray, agent_idx: np.ndarray, num_agents: int) -> np.ndarray:
    """``(N, D + A)``: observations ``(N, D)`` concatenated with one-hot agent ids."""
    onehot = np.eye(num_agents, dtype=np.float32)[agent_idx]
    return np.concatenate([obs.astype(np.float32), onehot], axis=1)


class SharedNetPolicy:
    """Policy from a parameter-shared network over (observation, agent id).

    Discrete: ``argmax`` of the outputs over legal actions (the action mask in the
    observation and the agent's own action count), or, with ``sample_seed`` set, a draw
    from ``softmax`` over the legal outputs (seeded; :meth:`reset` does not reseed).
    Continuous: the outputs squashed into the Box bounds
    (``low + (tanh(z) + 1) / 2 * (high - low)``).
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        agents: tuple[str, ...],
        observation_spaces: dict[str, spaces.Space],
        action_spaces: dict[str, spaces.Space],
        obs_width: int,
        kind: str,
        bounds: tuple[np.ndarray, np.ndarray] | None = None,
        name: str = "shared-net",
        sample_seed: int | None = None,
    ) -> None:
        self.net = net.eval()
        self.rng = None if sample_seed is None else np.random.default_rng(sample_seed)
        self.agents = tuple(agents)
        self.observation_spaces = observation_spaces
        self.action_spaces = action_spaces
        self.obs_width = obs_width
        self.kind = kind
        self.bounds = bounds
        self.name = name

    def reset(self) -> None:
        pass

    @torch.no_grad()
    def act(self, obs: dict[str, Any]) -> dict[str, Any]:
        unknown = [a for a in obs if a not in self.agents]
        if unknown:
            raise KeyError(f"{self.name}: unknown agent(s) {unknown}; known {list(self.agents)}")
        present = list(obs)
        if not present:
            return {}
        x = np.zeros((len(present), self.obs_width), np.float32)
        idx = np.array([self.agents.index(a) for a in present])
        for row, a in enumerate(present):
            flat = flatten_obs(self.observation_spaces[a], obs[a])
            x[row, : flat.shape[0]] = flat
        out = self.net(torch.from_numpy(agent_inputs(x, idx, len(self.agents)))).numpy()
        actions: dict[str, Any] = {}
        for row, a in enumerate(present):
            space = self.action_spaces[a]
            if self.kind == "discrete":
                legal = np.zeros(out.shape[1], bool)
                legal[: space.n] = True
                mask = action_mask(self.observation_spaces[a], obs[a])
                if mask is not None and mask.any():
                    legal[: space.n] &= mask[: space.n]
                scores = np.where(legal, out[row], -np.inf)
                if self.rng is None:
                    choice = int(np.argmax(scores))
                else:
                    p = np.exp(scores - scores.max())
                    choice = int(self.rng.choice(len(p), p=p / p.sum()))
                actions[a] = np.int64(space.start + choice)
            else:
                low, high = self.bounds
                i = idx[row]
                k = int(np.prod(space.shape))
                z = np.tanh(out[row, :k])
                act = low[i, :k] + (z + 1.0) / 2.0 * (high[i, :k] - low[i, :k])
                actions[a] = act.astype(space.dtype).reshape(space.shape)
        return actions
