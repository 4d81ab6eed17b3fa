"""MADiff training: dataset tensors, batch sampling, and the training loop as a generator.

``fit(...)`` yields ``(step, metrics)`` after every gradient step (d3rlpy style), so that the
caller drives progress bars, checkpoints and early stopping.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import torch
from einops import rearrange
from ema_pytorch import EMA

from diffusion_agents.diffusion import training_autocast
from diffusion_agents.flat_training import FlatEMA, FlatParameters
from diffusion_agents.madiff.config import MADiffConfig
from diffusion_agents.madiff.model import MADiffModel, known_mask


@dataclasses.dataclass
class MADiffData:
    """Training tensors. ``E`` episodes, ``T`` steps, ``A`` agents, ``D`` padded obs width.

    obs: ``(E, T + 1, A, D)`` normalized observations; lengths ``(E,)``;
    alive ``(E, T + 1, A)``; actions ``(E, T, A, K)``; acted ``(E, T, A)``;
    masks ``(E, T + 1, A, N)`` or None; returns ``(E, T + 1)`` scaled return-to-go.
    """

    obs: torch.Tensor
    lengths: torch.Tensor
    alive: torch.Tensor
    actions: torch.Tensor
    acted: torch.Tensor
    masks: torch.Tensor | None
    returns: torch.Tensor


def _finite_or(x: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(x), x, fallback)


def fit_statistics(model: MADiffModel, batch) -> None:
    """Set the model's normalization buffers from an ``EpisodeBatch``."""
    e, t1, a, d = batch.obs.shape
    valid = np.zeros((e, t1), bool)
    for i, n in enumerate(batch.lengths):
        valid[i, : int(n) + 1] = True
    obs = batch.obs[valid]  # (n, A, D)
    low, high = obs.min(axis=0), obs.max(axis=0)
    k = batch.actions.shape[-1]
    act_low = -np.ones((a, k), np.float32)
    act_high = np.ones((a, k), np.float32)
    acted = batch.acted
    from gymnasium import spaces

    for i, agent in enumerate(batch.agents):
        space = batch.action_spaces[agent]
        kd = batch.act_dims[i]
        if isinstance(space, spaces.Discrete):
            continue
        data = batch.actions[:, :, i, :kd][acted[:, :, i]]
        dlo = data.min(axis=0) if len(data) else np.full(kd, -1.0)
        dhi = data.max(axis=0) if len(data) else np.full(kd, 1.0)
        if isinstance(space, spaces.Box):
            slo = space.low.reshape(-1).astype(np.float64)
            shi = space.high.reshape(-1).astype(np.float64)
            lo, hi = _finite_or(slo, dlo), _finite_or(shi, dhi)
        elif isinstance(space, spaces.MultiDiscrete):
            lo, hi = np.zeros(kd), space.nvec.reshape(-1) - 1.0
        else:  # MultiBinary
            lo, hi = np.zeros(kd), np.ones(kd)
        act_low[i, :kd], act_high[i, :kd] = lo, np.where(hi > lo, hi, lo + 1.0)
    rtg = batch.return_to_go(model.config.gamma)  # (E, T + 1)
    steps = np.arange(t1)[None, :]
    in_ep = steps <= batch.lengths[:, None]
    r_lo = np.where(in_ep, rtg, np.inf).min(axis=0)
    r_hi = np.where(in_ep, rtg, -np.inf).max(axis=0)
    r_lo = np.where(np.isfinite(r_lo), r_lo, 0.0)
    r_hi = np.where(np.isfinite(r_hi), r_hi, 0.0)
    dev = model.obs_low.device
    with torch.no_grad():
        model.obs_low.copy_(torch.as_tensor(low, device=dev))
        model.obs_high.copy_(torch.as_tensor(high, device=dev))
        model.act_low.copy_(torch.as_tensor(act_low, device=dev))
        model.act_high.copy_(torch.as_tensor(act_high, device=dev))
        model.rtg_low.copy_(torch.as_tensor(r_lo, device=dev))
        model.rtg_high.copy_(torch.as_tensor(r_hi, device=dev))
        if model.config.plan_deltas:
            # largest normalized change between consecutive observations of a living agent
            o = model.normalize_obs(torch.as_tensor(batch.obs, device=dev))
            both = torch.as_tensor(
                batch.alive[:, 1:] & batch.alive[:, :-1] & valid[:, 1:, None], device=dev
            )
            change = (o[:, 1:] - o[:, :-1]).abs() * both[..., None]
            big = change.amax(dim=(0, 1))  # (A, D)
            model.delta_scale.copy_(
                torch.where(big > 1e-6, 1.0 / big.clamp(min=1e-6), torch.ones_like(big))
            )


def prepare_data(model: MADiffModel, batch) -> MADiffData:
    """Normalized training tensors from an ``EpisodeBatch`` (statistics must be set)."""
    dev = model.obs_low.device
    with torch.no_grad():
        obs = model.normalize_obs(torch.as_tensor(batch.obs, device=dev))
        rtg = torch.as_tensor(batch.return_to_go(model.config.gamma), device=dev)
        t = torch.arange(rtg.shape[1], device=dev)
        returns = model.scale_returns(rtg.reshape(-1), t.repeat(rtg.shape[0])).reshape(
            rtg.shape
        )
    masks = None
    if batch.action_masks is not None:
        masks = torch.as_tensor(batch.action_masks, device=dev)
    actions = torch.as_tensor(batch.actions, device=dev).clone()
    for i, agent in enumerate(batch.agents):
        start = getattr(batch.action_spaces[agent], "start", None)
        if batch.n_actions[i] and start is not None and int(start) != 0:
            # Discrete(n, start=s): the stored value minus s is the class index
            actions[:, :, i, 0] -= float(start) * torch.as_tensor(batch.acted[:, :, i])
    return MADiffData(
        obs=obs,
        lengths=torch.as_tensor(batch.lengths, device=dev),
        alive=torch.as_tensor(batch.alive, device=dev),
        actions=actions,
        acted=torch.as_tensor(batch.acted, device=dev),
        masks=masks,
        returns=returns,
    )


def sample_batch(
    data: MADiffData,
    config: MADiffConfig,
    generator: torch.Generator,
    dim_valid: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """One training batch: windows, known mask, loss weights, returns, inverse-dynamics rows."""
    dev = data.obs.device
    b = config.batch_size
    h, big_h = config.history, config.horizon
    lengths = data.lengths
    ep = torch.multinomial(
        lengths.float().cpu(), b, replacement=True, generator=generator
    )
    ep = ep.to(dev)
    n = lengths[ep]
    t = (torch.rand(b, generator=generator).to(dev) * n).long().clamp(max=n - 1)
    offs = torch.arange(-h, big_h + 1, device=dev)
    raw = t[:, None] + offs[None, :]  # (B, L)
    idx = torch.minimum(raw.clamp(min=0), n[:, None])
    win = data.obs[ep[:, None], idx]  # (B, L, A, D)
    tau = rearrange(win, "b l a d -> b a d l")
    in_ep = (raw <= n[:, None])[:, None, None, :]  # (B, 1, 1, L)
    if config.mode == "decentralized":
        alive_t = data.alive[ep, t].float() + 1e-6  # (B, A)
        vis = (
            torch.multinomial(alive_t.cpu(), 1, generator=generator).squeeze(1).to(dev)
        )
    else:
        vis = None
    known = known_mask(dim_valid, vis, b, tau.shape[-1], h)
    weights = (~known & in_ep).float()
    drop = torch.rand(b, generator=generator).to(dev) < config.condition_dropout
    returns = data.returns[ep, t]
    # inverse dynamics rows: every agent that acted at t
    acted = data.acted[ep, t]  # (B, A)
    rows_b, rows_a = acted.nonzero(as_tuple=True)
    e_r, t_r = ep[rows_b], t[rows_b]
    out = {
        "tau": tau,
        "known": known,
        "weights": weights,
        "returns": returns,
        "drop": drop,
        "inv_o": data.obs[e_r, t_r, rows_a],
        "inv_next": data.obs[e_r, t_r + 1, rows_a],
        "inv_agent": rows_a,
        "inv_actions": data.actions[e_r, t_r, rows_a],
        "inv_masks": None if data.masks is None else data.masks[e_r, t_r, rows_a],
    }
    if vis is not None:
        out["visible"] = vis
    return out


def make_optimizer(
    flat: FlatParameters, config: MADiffConfig, model: MADiffModel | None = None
) -> torch.optim.Optimizer:
    """Fused AdamW over the one flat parameter tensor; with ``config.inverse_learning_rate``
    over its parts, the inverse-dynamics ranges (``model`` required) in a group of their own
    at that rate (views of the flat tensor, so clipping and the EMA still see one tensor)."""
    kw = {"lr": config.learning_rate, "weight_decay": config.weight_decay, "fused": True}
    if config.inverse_learning_rate is None:
        return torch.optim.AdamW([flat.param], **kw)
    if model is None:
        raise ValueError("make_optimizer: inverse_learning_rate needs the model.")
    inv = inverse_ranges(model, flat)
    rest, off = [], 0
    for a, b in inv:
        if a > off:
            rest.append(flat.part(off, a))
        off = b
    if off < flat.data.numel():
        rest.append(flat.part(off, flat.data.numel()))
    return torch.optim.AdamW(
        [{"params": rest},
         {"params": [flat.part(a, b) for a, b in inv], "lr": config.inverse_learning_rate}],
        **kw,
    )


def make_ema(model: MADiffModel, flat: FlatParameters, config: MADiffConfig) -> FlatEMA:
    return FlatEMA(
        model,
        flat,
        beta=config.ema_decay,
        update_after_step=config.ema_start,
        update_every=config.ema_update_every,
        include_online_model=False,
    )


def fit(
    model: MADiffModel,
    data: MADiffData,
    config: MADiffConfig,
    *,
    flat: FlatParameters,
    optimizer: torch.optim.Optimizer,
    ema: EMA,
    generator: torch.Generator,
    start_step: int = 0,
) -> Iterator[tuple[int, dict[str, float]]]:
    """Gradient steps ``start_step + 1 .. config.n_steps``; yields ``(step, metrics)``.

    With ``config.compile`` the U-Net's forward (and, through AOTAutograd, its backward) is
    compiled for the training shapes; the module, its state dict and the EMA copy are
    untouched, and the eager forward is restored when the generator ends.
    """
    model.train()
    if config.compile:
        # an instance attribute shadows nn.Module.forward for this module only (not the EMA
        # copy the policy acts with, made before); state_dict() does not see it. The
        # channels-last layout is 1.7x faster compiled (networks.TemporalUNet.forward).
        model.unet.channels_last_training = True
        model.unet.forward = torch.compile(model.unet.forward, dynamic=False)
    try:
        yield from _steps(model, data, config, flat, optimizer, ema, generator, start_step)
    finally:
        if config.compile:
            del model.unet.forward
            model.unet.channels_last_training = False


@dataclasses.dataclass
class TrainingRun:
    """Everything one training run updates, built by :meth:`start`; :meth:`steps` runs
    :func:`fit` on it. ``MADiffPolicy.train`` and the training benchmarks share this set-up."""

    model: MADiffModel
    data: MADiffData
    config: MADiffConfig
    flat: FlatParameters
    optimizer: torch.optim.Optimizer
    ema: FlatEMA
    generator: torch.Generator

    @classmethod
    def start(cls, model: MADiffModel, batch, config: MADiffConfig) -> TrainingRun:
        """Normalization statistics and tensors from an ``EpisodeBatch``, flat parameters,
        fused AdamW, EMA, and the batch generator seeded with ``config.seed``."""
        fit_statistics(model, batch)
        flat = FlatParameters(model)
        return cls(
            model=model,
            data=prepare_data(model, batch),
            config=config,
            flat=flat,
            optimizer=make_optimizer(flat, config, model),
            ema=make_ema(model, flat, config),
            generator=torch.Generator().manual_seed(config.seed),
        )

    def steps(self, start_step: int = 0) -> Iterator[tuple[int, dict[str, float]]]:
        return fit(
            self.model,
            self.data,
            self.config,
            flat=self.flat,
            optimizer=self.optimizer,
            ema=self.ema,
            generator=self.generator,
            start_step=start_step,
        )


def inverse_ranges(model: MADiffModel, flat: FlatParameters) -> list[tuple[int, int]]:
    """``(start, end)`` ranges of the inverse-dynamics parameters inside ``flat.data``."""
    ids = {id(p) for p in model.inverse_module.parameters()}
    ranges, off = [], 0
    for p in model.parameters():
        n = p.numel()
        if id(p) in ids:
            if ranges and ranges[-1][1] == off:
                ranges[-1] = (ranges[-1][0], off + n)
            else:
                ranges.append((off, off + n))
        off += n
    if off != flat.data.numel():
        raise ValueError("inverse_ranges: the model's parameters do not match the flat tensor.")
    return ranges


def _steps(model, data, config, flat, optimizer, ema, generator, start_step):
    frozen = None  # (ranges, values) of the inverse dynamics once it stops training
    autocast = training_autocast(config.precision, flat.data.device)
    for step in range(start_step, config.n_steps):
        train_inv = config.inverse_steps is None or step < config.inverse_steps
        if not train_inv and frozen is None:
            ranges = inverse_ranges(model, flat)
            frozen = (ranges, [flat.data[a:b].clone() for a, b in ranges])
        batch = sample_batch(data, config, generator, model.dim_valid)
        with autocast:
            diff_loss = model.diffusion_loss(
                batch["tau"],
                batch["known"],
                batch["weights"],
                batch["returns"],
                batch["drop"],
                generator=generator,
            )
            loss = diff_loss
            if train_inv:
                inv_loss = model.inverse_loss(
                    batch["inv_o"],
                    batch["inv_next"],
                    batch["inv_agent"],
                    batch["inv_actions"],
                    batch["inv_masks"],
                )
                loss = diff_loss + config.inv_loss_weight * inv_loss
        # backward outside autocast, as torch.amp recommends: it follows the forward's dtypes
        flat.zero_grad()
        loss.backward()
        if config.grad_clip:
            flat.clip_grad_norm_(config.grad_clip)
        optimizer.step()
        if frozen is not None:
            # AdamW's momentum would still move the untrained slice: put it back
            with torch.no_grad():
                for (a, b), v in zip(*frozen):
                    flat.data[a:b].copy_(v)
        ema.update()
        yield step + 1, {
            "loss": diff_loss.item(),
            "inv_loss": inv_loss.item() if train_inv else float("nan"),
        }


__all__ = [
    "MADiffData",
    "TrainingRun",
    "fit",
    "fit_statistics",
    "inverse_ranges",
    "make_ema",
    "make_optimizer",
    "prepare_data",
    "sample_batch",
]
