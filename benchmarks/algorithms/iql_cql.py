"""Independent Q-learning + CQL with a parameter-shared Q-network (see :class:`IQLCQLConfig`).

Discrete actions only; legal actions (the agent's action count and the recorded action
masks) bound every max, argmax and logsumexp.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmarks.algorithms import TrainContext
from benchmarks.algorithms.common import (
    SharedNetPolicy,
    action_kind,
    agent_inputs,
    legal_table,
    mlp,
    seed_everything,
)
from benchmarks.algorithms.options import IQLCQLConfig

NEG = -1e9


def train_iql_cql(ctx: TrainContext) -> SharedNetPolicy:
    """Fit IQL+CQL on ``ctx.batch()`` and return the greedy policy of the learned Q."""
    cfg: IQLCQLConfig = ctx.config
    gen = seed_everything(ctx.seed)
    batch = ctx.batch()
    if action_kind(batch, "iql_cql") != "discrete":
        raise ValueError(
            f"iql_cql needs Discrete action spaces; dataset {batch.dataset_id!r} has Box "
            "actions (use bc or a MADiff variant)."
        )
    e, t, i = np.nonzero(batch.acted)
    if len(e) == 0:
        raise ValueError(f"Dataset {batch.dataset_id!r} has no agent transitions.")
    A, D = batch.num_agents, batch.obs.shape[-1]
    legal_n = legal_table(batch)
    N = legal_n.shape[1]

    def legal_at(tt: np.ndarray) -> np.ndarray:
        legal = legal_n[i].copy()
        if batch.action_masks is not None:
            legal &= batch.action_masks[e, tt, i, :N]
        # an agent with no legal action left (dead) keeps all: its value is masked anyway
        legal[~legal.any(1)] = True
        return legal

    starts = np.array([batch.action_spaces[a].start for a in batch.agents])
    x = torch.from_numpy(agent_inputs(batch.obs[e, t, i], i, A))
    x_next = torch.from_numpy(agent_inputs(batch.obs[e, t + 1, i], i, A))
    act = torch.from_numpy((batch.actions[e, t, i, 0] - starts[i]).astype(np.int64))
    rew = torch.from_numpy(batch.team_rewards[e, t].astype(np.float32) * cfg.reward_scale)
    last = t + 1 >= batch.lengths[e]
    acted_next = np.where(
        last, batch.alive[e, np.minimum(t + 1, batch.alive.shape[1] - 1), i],
        batch.acted[e, np.minimum(t + 1, batch.acted.shape[1] - 1), i],
    )
    nonterm = torch.from_numpy((acted_next & ~batch.terminations[e, t]).astype(np.float32))
    legal = torch.from_numpy(legal_at(t))
    legal_next = torch.from_numpy(legal_at(t + 1))

    q_net = mlp(D + A, cfg.hidden, N)
    target = copy.deepcopy(q_net)
    for p in target.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam(q_net.parameters(), lr=cfg.lr)
    n = len(e)
    bar = tqdm(range(cfg.steps), desc="iql_cql", disable=not ctx.show_progress, leave=False)
    for step in bar:
        idx = torch.randint(n, (min(cfg.batch_size, n),), generator=gen)
        q_all = q_net(x[idx]).masked_fill(~legal[idx], NEG)
        q_taken = q_all.gather(1, act[idx, None]).squeeze(1)
        with torch.no_grad():
            q_next_online = q_net(x_next[idx]).masked_fill(~legal_next[idx], NEG)
            a_star = q_next_online.argmax(1, keepdim=True)
            q_next = target(x_next[idx]).gather(1, a_star).squeeze(1)
            y = rew[idx] + cfg.gamma * nonterm[idx] * q_next
        td_loss = ((q_taken - y) ** 2).mean()
        cql_loss = (torch.logsumexp(q_all, dim=1) - q_taken).mean()
        loss = td_loss + cfg.cql_alpha * cql_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            for p, tp in zip(q_net.parameters(), target.parameters()):
                tp.mul_(1 - cfg.tau).add_(p, alpha=cfg.tau)
        if step % 100 == 0:
            bar.set_postfix(td=f"{td_loss.item():.3f}", cql=f"{cql_loss.item():.3f}")
    return SharedNetPolicy(
        q_net, agents=batch.agents, observation_spaces=batch.observation_spaces,
        action_spaces=batch.action_spaces, obs_width=D, kind="discrete", name="iql_cql",
    )
