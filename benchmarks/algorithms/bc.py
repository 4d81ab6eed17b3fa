"""Behaviour cloning, parameter-shared across agents (see :class:`BCConfig` for the loss)."""

from __future__ import annotations

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
from benchmarks.algorithms.options import BCConfig
from wrappers import EpisodeBatch


def box_bounds(batch: EpisodeBatch) -> tuple[np.ndarray, np.ndarray]:
    """``(A, K)`` lower/upper action bounds; infinite bounds fall back to the data range."""
    A, K = batch.num_agents, batch.actions.shape[-1]
    low, high = np.full((A, K), -1.0, np.float32), np.full((A, K), 1.0, np.float32)
    for i, a in enumerate(batch.agents):
        space = batch.action_spaces[a]
        k = batch.act_dims[i]
        acts = batch.actions[:, :, i, :k][batch.acted[:, :, i]]
        lo, hi = space.low.reshape(-1), space.high.reshape(-1)
        dmin = acts.min(0) if len(acts) else -np.ones(k)
        dmax = acts.max(0) if len(acts) else np.ones(k)
        low[i, :k] = np.where(np.isfinite(lo), lo, dmin)
        high[i, :k] = np.where(np.isfinite(hi), hi, dmax)
    return low, high


def train_bc(ctx: TrainContext) -> SharedNetPolicy:
    """Fit BC on ``ctx.batch()`` and return its greedy policy."""
    cfg: BCConfig = ctx.config
    gen = seed_everything(ctx.seed)
    batch = ctx.batch()
    kind = action_kind(batch, "bc")
    e, t, i = np.nonzero(batch.acted)
    if len(e) == 0:
        raise ValueError(f"Dataset {batch.dataset_id!r} has no agent steps to clone.")
    A, D = batch.num_agents, batch.obs.shape[-1]
    x = torch.from_numpy(agent_inputs(batch.obs[e, t, i], i, A))
    if kind == "discrete":
        legal = legal_table(batch)[i]
        if batch.action_masks is not None:
            legal &= batch.action_masks[e, t, i, : legal.shape[1]]
        starts = np.array([batch.action_spaces[a].start for a in batch.agents])
        y = torch.from_numpy((batch.actions[e, t, i, 0] - starts[i]).astype(np.int64))
        legal_t = torch.from_numpy(legal)
        out_dim, bounds = legal.shape[1], None
    else:
        low, high = box_bounds(batch)
        bounds = (low, high)
        K = batch.actions.shape[-1]
        y = torch.from_numpy(batch.actions[e, t, i])
        width = np.zeros((A, K), np.float32)
        for j, k in enumerate(batch.act_dims):
            width[j, :k] = 1.0
        dim_mask = torch.from_numpy(width[i])
        low_t, high_t = torch.from_numpy(low[i]), torch.from_numpy(high[i])
        out_dim = K
    net = mlp(D + A, cfg.hidden, out_dim)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    n = len(e)
    bar = tqdm(range(cfg.steps), desc="bc", disable=not ctx.show_progress, leave=False)
    for step in bar:
        idx = torch.randint(n, (min(cfg.batch_size, n),), generator=gen)
        out = net(x[idx])
        if kind == "discrete":
            logits = out.masked_fill(~legal_t[idx], -1e9)
            loss = torch.nn.functional.cross_entropy(logits, y[idx])
        else:
            pred = low_t[idx] + (torch.tanh(out) + 1) / 2 * (high_t[idx] - low_t[idx])
            loss = (((pred - y[idx]) ** 2) * dim_mask[idx]).sum() / dim_mask[idx].sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    return SharedNetPolicy(
        net, agents=batch.agents, observation_spaces=batch.observation_spaces,
        action_spaces=batch.action_spaces, obs_width=D, kind=kind, bounds=bounds,
        name="bc_sampled" if cfg.sample else "bc",
        sample_seed=ctx.seed if cfg.sample else None,
    )
