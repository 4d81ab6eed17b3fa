"""EAQ networks and losses: the episode U-Net ``f_theta``, the Q-total estimator ``Q_phi``.

Shapes: episode tensors are ``(batch, features, horizon)``, normalized to ``[-1, 1]`` by
:class:`diffusion_agents.eaq.encode.RowNormalizer`; ``step_mask`` is ``(batch, horizon)``
True on the columns that hold a step (``t < n``). The diffusion core (schedules,
``q_sample``, samplers, x0 clipping) is :mod:`diffusion_agents.diffusion`; the U-Net is
:class:`diffusion_agents.networks.TemporalUNet`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.func import functional_call

from diffusion_agents.diffusion import GaussianDiffusion
from diffusion_agents.eaq.config import EAQConfig
from diffusion_agents.eaq.encode import EpisodeLayout
from diffusion_agents.networks import MLP, TemporalUNet


def rows_of(layout: EpisodeLayout, kinds: tuple[str, ...]) -> list[int]:
    """Rows of every segment whose kind is in ``kinds``, in layout order (a plain list, which
    indexes a tensor on any device)."""
    return [r for s in layout.segments if s.kind in kinds for r in range(s.start, s.stop)]


def q_input_rows(layout: EpisodeLayout) -> list[int]:
    """Rows ``Q_phi`` reads: every agent's observation, alive flag and action block."""
    return rows_of(layout, ("obs", "alive", "action_onehot", "action"))


def change_std(change: torch.Tensor) -> torch.Tensor:
    """Per-row standard deviation of real one-step changes ``(transitions, rows)``; 1 for a
    row whose changes are constant or not finite, and for fewer than two transitions."""
    s = change.std(dim=0) if change.shape[0] > 1 else change.new_ones(change.shape[-1])
    return torch.where(torch.isfinite(s) & (s > 1e-6), s, torch.ones_like(s))


class QTotal(nn.Module):
    """Q-total estimator ``Q_phi(o_t, a_t, t)`` over the joint observation-action.

    ``forward(x (batch, features, horizon)) -> (batch, horizon)``: an MLP applied to each
    column's observation/alive/action rows plus the normalized time ``2 t / (H - 1) - 1``
    (the return-to-go of a fixed-length task depends on the time left). Its target is the
    normalized Q-total row (return-to-go) of the real episodes, which lies in ``[-1, 1]``.
    ``EAQModel.losses`` caps it at 1 inside ``L_Qtot``: uncapped, the generator learned to
    exploit ``Q_phi``'s extrapolation (on SMAX, 870 feature rows, ``L_Qtot`` ran from -0.7 to
    -24 within 150 steps after the warm-up while the diffusion loss rose from 0.24 to 1.46).
    A ``tanh``-bounded ``Q_phi`` also stopped that, but its flat gradient near the best
    returns lost the guidance effect in ``tests/.../test_eaq_qtotal.py``.

    With ``padding_row`` (``EAQConfig(q_time_left=True)``) it also reads the steps left in
    the episode, ``2 left / H - 1`` with ``left`` the number of columns from this one on
    whose padding flag is off (the flag thresholded, so no gradient flows through it). Where
    episodes vary in length, the return-to-go depends on the time left more than on the
    time elapsed; without it ``Q_phi`` reads the time left off the observations (on SMAX
    2s3z, from the units' health and positions), and ``L_Qtot`` then moves the generated
    observations towards those of an episode's start instead of towards better play
    (docs/eaq.md, "2s3z: what Q guidance changes").
    """

    def __init__(
        self, *, rows: list[int], horizon: int, hidden: int = 256, padding_row: int | None = None
    ) -> None:
        super().__init__()
        self.register_buffer("rows", torch.as_tensor(rows, dtype=torch.long), persistent=False)
        self.register_buffer(
            "time", torch.linspace(-1.0, 1.0, horizon), persistent=False
        )
        self.horizon = horizon
        self.padding_row = padding_row
        extra = 1 if padding_row is None else 2
        self.mlp = MLP(len(rows) + extra, 1, hidden=(hidden, hidden))

    def time_left(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, horizon)`` steps left from each column on, in ``[-1, 1]``: the padding
        row (normalized ``-1`` inside the episode, ``+1`` past its end) thresholded at 0."""
        inside = (x[:, self.padding_row, :] < 0).to(x.dtype)
        left = inside.flip(-1).cumsum(-1).flip(-1)
        return 2.0 * left / self.horizon - 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = rearrange(x[:, self.rows, :], "b f h -> b h f")
        time = [self.time.expand(x.shape[0], -1)[..., None]]
        if self.padding_row is not None:
            time.append(self.time_left(x)[..., None])
        return self.mlp(torch.cat([feats, *time], dim=-1)).squeeze(-1)


class Dynamics(nn.Module):
    """One-step model of the observation rows: ``D(column t) -> o_{t+1} - o_t``.

    ``forward(x (batch, features, horizon)) -> (batch, obs rows, horizon - 1)``: an MLP on each
    column's observation/alive/action rows (as :class:`QTotal` reads them) predicting the
    change of every agent's observation rows to the next column, in the tensor's normalized
    units. Fitted on the real episodes; frozen inside ``L_dyn``, which asks consecutive
    generated columns to follow it (docs/eaq.md, "Dynamics consistency").
    """

    def __init__(self, *, rows: list[int], obs_rows: list[int], hidden: int = 256) -> None:
        super().__init__()
        self.register_buffer("rows", torch.as_tensor(rows, dtype=torch.long), persistent=False)
        self.register_buffer(
            "obs_rows", torch.as_tensor(obs_rows, dtype=torch.long), persistent=False
        )
        self.mlp = MLP(len(rows), len(obs_rows), hidden=(hidden, hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = rearrange(x[:, self.rows, :-1], "b f h -> b h f")
        return rearrange(self.mlp(feats), "b h f -> b f h")

    def change(self, x: torch.Tensor) -> torch.Tensor:
        """The observation rows' one-step change in ``x``: ``(batch, obs rows, horizon - 1)``."""
        obs = x[:, self.obs_rows, :]
        return obs[..., 1:] - obs[..., :-1]


class InverseDynamics(nn.Module):
    """Per-agent inverse dynamics ``g_i(o^i_t, o^i_(t+1)) -> a^i_t`` over the episode tensor.

    ``logits(x (batch, features, horizon))`` gives, per agent, ``(batch, horizon - 1,
    action rows)``: action logits (Discrete agents) or the normalized flat action (others),
    from an MLP on the agent's normalized observation at ``t`` and its change to ``t + 1``
    (divided by the real changes' standard deviation, :meth:`fit_scale`, so a one-step
    change of 1 % of a row's range is not lost next to the observation itself). Fitted on
    the real transitions; with ``EAQConfig(action_decoder="inverse_dynamics")`` it replaces
    the generated actions of every synthetic transition (:meth:`relabel`), as MADiff decodes
    its planned observations.
    """

    def __init__(self, *, layout: EpisodeLayout, hidden: int = 256) -> None:
        super().__init__()
        self.parts: list[dict[str, object]] = []
        for i in range(len(layout.agents)):
            disc = layout.n_actions[i] > 0
            act = layout.rows("action_onehot" if disc else "action", i)
            self.parts.append({
                # plain lists index a tensor on any device
                "obs": [int(r) for r in layout.rows("obs", i)],
                "alive": int(layout.rows("alive", i)[0]),
                "act": [int(r) for r in act],
                "mask": [int(r) for r in layout.rows("mask", i)] if layout.masked[i] else None,
                "discrete": disc,
            })
        self.mlps = nn.ModuleList(
            MLP(2 * len(p["obs"]), len(p["act"]), hidden=(hidden, hidden)) for p in self.parts
        )
        n_obs = sum(len(p["obs"]) for p in self.parts)
        self.register_buffer("delta_scale", torch.ones(n_obs))  # saved with the weights

    def _inputs(self, x: torch.Tensor, i: int) -> torch.Tensor:
        p = self.parts[i]
        first = sum(len(q["obs"]) for q in self.parts[:i])
        obs = rearrange(x[:, p["obs"], :], "b f h -> b h f")
        scale = self.delta_scale[first : first + len(p["obs"])]
        return torch.cat([obs[:, :-1], (obs[:, 1:] - obs[:, :-1]) / scale], dim=-1)

    @torch.no_grad()
    def fit_scale(self, x0: torch.Tensor, step_mask: torch.Tensor) -> None:
        """Set the change scale from real normalized episodes ``(batch, F, H)``."""
        scales = []
        for i, p in enumerate(self.parts):
            w = self.transitions(x0, step_mask, i)
            obs = x0[:, p["obs"], :]
            scales.append(change_std((obs[..., 1:] - obs[..., :-1]).transpose(1, 2)[w]))
        self.delta_scale.copy_(torch.cat(scales))

    def transitions(self, x: torch.Tensor, step_mask: torch.Tensor | None, i: int) -> torch.Tensor:
        """``(batch, horizon - 1)`` True where agent ``i`` is alive at ``t`` and ``t + 1``
        (and, given ``step_mask``, ``t`` is a step of the episode)."""
        alive = x[:, self.parts[i]["alive"], :] > 0
        w = alive[:, :-1] & alive[:, 1:]
        return w if step_mask is None else w & step_mask[:, :-1]

    def logits(self, x: torch.Tensor, i: int) -> torch.Tensor:
        out = self.mlps[i](self._inputs(x, i))
        p = self.parts[i]
        if p["discrete"] and p["mask"] is not None:
            legal = rearrange(x[:, p["mask"], :-1], "b f h -> b h f") > 0
            legal = legal | ~legal.any(-1, keepdim=True)  # no legal action: all stay open
            out = out.masked_fill(~legal, -1e9)
        return out

    def loss(self, x0: torch.Tensor, step_mask: torch.Tensor) -> torch.Tensor:
        """Masked cross-entropy (Discrete agents) or MSE (others) on real transitions."""
        total, count = x0.new_zeros(()), 0
        for i, p in enumerate(self.parts):
            w = self.transitions(x0, step_mask, i)
            if not bool(w.any()):
                continue
            out = self.logits(x0, i)[w]
            target = rearrange(x0[:, p["act"], :-1], "b f h -> b h f")[w]
            if p["discrete"]:
                total = total + F.cross_entropy(out, target.argmax(-1), reduction="sum")
            else:
                total = total + ((out - target) ** 2).mean(-1).sum()
            count += int(w.sum())
        return total / max(count, 1)

    @torch.no_grad()
    def relabel(
        self, x: torch.Tensor, seen: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Replace every transition's action rows of ``x`` (normalized, ``(batch, F, H)``).

        Discrete agents get the most likely legal action as a one-hot in ``[-1, 1]`` units,
        the others the prediction clipped to ``[-1, 1]``. The model reads ``seen`` (default
        ``x``; e.g. ``x`` with observations rebuilt from delta rows). Returns the new tensor
        and, per ``(batch, horizon - 1)`` column, how many discrete actions were relabelled
        and how many of them changed.
        """
        seen = x if seen is None else seen
        x = x.clone()
        count = torch.zeros(x.shape[0], x.shape[2] - 1, dtype=torch.long, device=x.device)
        changed = torch.zeros_like(count)
        for i, p in enumerate(self.parts):
            w = self.transitions(seen, None, i)  # (b, h - 1)
            out = self.logits(seen, i)
            old = x[:, p["act"], :-1]
            if p["discrete"]:
                new = 2.0 * F.one_hot(out.argmax(-1), len(p["act"])).to(x.dtype) - 1.0
                new = rearrange(new, "b h f -> b f h")
                count += w.long()
                changed += ((old.argmax(1) != new.argmax(1)) & w).long()
            else:
                new = rearrange(out.clamp(-1.0, 1.0), "b h f -> b f h")
            x[:, p["act"], :-1] = torch.where(w[:, None, :], new, old)
        return x, count, changed


class RewardModel(nn.Module):
    """Joint reward model ``r(o_t, a_t, o_(t+1))`` over the episode tensor.

    ``forward(x (batch, features, horizon)) -> (batch, reward rows, horizon - 1)``: an MLP
    applied to each transition ``t -> t + 1``, reading column ``t``'s observation (and
    delta), alive, action, state and done rows and column ``t + 1``'s observation (and
    delta), alive and state rows of every agent, normalized, plus the observation and state
    rows' change from ``t`` to ``t + 1`` divided by the real changes' standard deviation
    (a damage reward is a linear function of a health row's change, which is a small
    difference of two large inputs otherwise). It predicts every per-agent reward row and
    the team reward row at ``t`` in units of :attr:`scale` (per row, the real rewards'
    largest magnitude, :meth:`fit_scale`), so its targets lie in ``[-1, 1]`` whatever
    ``EAQConfig.reward_norm`` does to the generated rows. Fitted on the real
    transitions; with ``EAQConfig(reward_decoder="model")`` it replaces the rewards of every
    synthetic step (:meth:`relabel`), as :class:`InverseDynamics` does for actions.
    """

    NOW = ("obs", "obs_delta", "alive", "action_onehot", "action", "state",
           "terminated", "truncated")
    NEXT = ("obs", "obs_delta", "alive", "state")

    def __init__(self, *, layout: EpisodeLayout, hidden: int = 256) -> None:
        super().__init__()
        self.now_rows = rows_of(layout, self.NOW)
        self.next_rows = rows_of(layout, self.NEXT)
        self.change_rows = rows_of(layout, ("obs", "state"))
        self.out_rows = [int(r) for r in layout.rows("reward")] + [layout.row("team_reward")]
        n_in = len(self.now_rows) + len(self.next_rows) + len(self.change_rows)
        self.mlp = MLP(n_in, len(self.out_rows), hidden=(hidden, hidden))
        # saved with the weights
        self.register_buffer("scale", torch.ones(len(self.out_rows)))
        self.register_buffer("change_scale", torch.ones(len(self.change_rows)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        change = x[:, self.change_rows, 1:] - x[:, self.change_rows, :-1]
        feats = torch.cat([
            x[:, self.now_rows, :-1], x[:, self.next_rows, 1:],
            change / self.change_scale[None, :, None],
        ], dim=1)
        return rearrange(self.mlp(rearrange(feats, "b f h -> b h f")), "b h r -> b r h")

    @torch.no_grad()
    def fit_scale(self, x0: torch.Tensor, rewards: torch.Tensor, step_mask: torch.Tensor) -> None:
        """Set :attr:`scale` and the change scale from the real normalized episodes ``x0``
        ``(batch, F, H)`` and their raw reward rows ``(batch, reward rows, H)``."""
        w = step_mask[:, None, :].expand_as(rewards)
        top = torch.where(w, rewards.abs(), torch.zeros_like(rewards)).amax(dim=(0, 2))
        self.scale.copy_(torch.where(top > 1e-8, top, torch.ones_like(top)))
        if self.change_rows:
            change = x0[:, self.change_rows, 1:] - x0[:, self.change_rows, :-1]
            self.change_scale.copy_(change_std(change.transpose(1, 2)[step_mask[:, :-1]]))

    def loss(
        self, x0: torch.Tensor, rewards: torch.Tensor, step_mask: torch.Tensor
    ) -> torch.Tensor:
        """Mean squared error, in units of :attr:`scale`, on the real steps of ``x0``
        (normalized) against their raw rewards ``(batch, reward rows, horizon)``."""
        target = rewards[..., :-1] / self.scale[None, :, None]
        w = step_mask[:, None, :-1].to(x0.dtype)
        err = (self(x0) - target) ** 2 * w
        return err.sum() / (w.sum() * len(self.out_rows)).clamp(min=1.0)

    @torch.no_grad()
    def relabel(self, seen: torch.Tensor) -> torch.Tensor:
        """Raw rewards ``(batch, reward rows, horizon - 1)`` of the transitions of ``seen``
        (normalized). Decoding zeroes an agent's reward where it does not act."""
        return self(seen) * self.scale[None, :, None]


class EAQModel(nn.Module):
    """``f_theta`` (a Conv1D :class:`TemporalUNet`, x0-prediction) + ``Q_phi`` + the schedule.

    Args:
        layout: the episode tensor layout of the dataset.
        config: :class:`EAQConfig` (widths, K, schedule, clipping).
    """

    def __init__(self, *, layout: EpisodeLayout, config: EAQConfig) -> None:
        super().__init__()
        self.num_features = layout.num_features
        self.horizon = layout.horizon
        self.net = TemporalUNet(
            in_channels=layout.num_features,
            base_width=config.dim,
            dim_mults=config.dim_mults,
            agent_attention=False,
        )
        if config.attention:
            # The shared U-Net has cross-agent attention only (agents folded into the batch);
            # EAQ folds all agents into the feature axis, so there is nothing to attend over.
            raise ValueError(
                "attention=True is not available for EAQ's single-sample U-Net; use "
                "attention=False."
            )
        self.q = QTotal(
            rows=q_input_rows(layout),
            horizon=layout.horizon,
            hidden=config.q_hidden,
            padding_row=layout.row("padding") if config.q_time_left else None,
        )
        clip = config.clip_x0
        self.diffusion = GaussianDiffusion(
            n_timesteps=config.n_diffusion_steps,
            schedule=config.beta_schedule,
            prediction=config.prediction,
            clip_denoised=clip is not None,
            clip_range=(-(clip or 1.0), clip or 1.0),
        )
        self.dynamics_weight = float(config.dynamics_weight)
        self.q_conservative = float(config.q_conservative)
        if config.dynamics_weight > 0:
            # created only when used, so augmenters saved without it load unchanged
            self.dyn = Dynamics(
                rows=q_input_rows(layout),
                obs_rows=[int(r) for r in layout.rows("obs")],
                hidden=config.q_hidden,
            )
            # per observation row, the agent's alive row: a transition counts only while
            # that agent lives at t and t + 1 (None when some agent has no alive row: then
            # every step inside the episode counts)
            alive_of = {s.agent: s.start for s in layout.segments if s.kind == "alive"}
            obs_agent = [s.agent for s in layout.segments if s.kind == "obs" for _ in range(s.size)]
            alive_rows = [alive_of.get(a, -1) for a in obs_agent]
            self.register_buffer(
                "obs_alive_rows",
                torch.as_tensor(alive_rows, dtype=torch.long) if min(alive_rows) >= 0 else None,
                persistent=False,
            )
        else:
            self.dyn = None
        self.inv = (
            InverseDynamics(layout=layout, hidden=config.q_hidden)
            if config.action_decoder == "inverse_dynamics" else None
        )
        self.rew = (
            RewardModel(layout=layout, hidden=config.q_hidden)
            if config.reward_decoder == "model" else None
        )
        self.q_row = layout.row("q_total")
        # condition != "none": (F, H) entries held at a real episode's values (the anchor)
        anchor = layout.anchor_mask(config.condition)
        self.register_buffer(
            "anchor_mask", None if anchor is None else torch.as_tensor(anchor), persistent=False
        )
        # q_guidance_through="actions": L_Qtot's gradient reaches f_theta through these rows only
        acts = None
        if config.q_guidance_through == "actions":
            acts = torch.zeros(layout.num_features, dtype=torch.bool)
            for kind in ("action_onehot", "action"):
                acts[torch.as_tensor(layout.rows(kind), dtype=torch.long)] = True
        self.register_buffer("q_grad_rows", acts, persistent=False)
        # (start, stop) of every discrete action block, for the soft one-hot relaxation.
        self.onehot_blocks = [
            (s.start, s.stop) for s in layout.segments if s.kind == "action_onehot"
        ]

    def relax_actions(self, x: torch.Tensor, temperature: float) -> torch.Tensor:
        """Discrete action blocks of ``x`` replaced by ``2 softmax(block / temperature) - 1``
        (a soft one-hot in the tensor's ``[-1, 1]`` units); other rows unchanged."""
        if not self.onehot_blocks:
            return x
        parts, last = [], 0
        for start, stop in self.onehot_blocks:
            parts.append(x[:, last:start])
            parts.append(2.0 * torch.softmax(x[:, start:stop] / temperature, dim=1) - 1.0)
            last = stop
        parts.append(x[:, last:])
        return torch.cat(parts, dim=1)

    def losses(
        self,
        x0: torch.Tensor,
        step_mask: torch.Tensor,
        *,
        q_weight: float,
        temperature: float,
        dynamics_weight: float | None = None,
        generator: torch.Generator | None = None,
        reward_targets: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """The EAQ losses on a batch of real normalized episodes ``x0`` ``(batch, F, H)``.

        Returns ``{"diffusion", "q_fit", "q_guidance", "model"}``: ``model = diffusion +
        q_weight * q_guidance`` trains ``f_theta`` (``Q_phi`` is frozen inside
        ``q_guidance``); ``q_fit`` trains ``Q_phi`` on the real data (plus, with
        ``config.q_conservative > 0`` and ``q_weight > 0``, the conservative gap between its
        estimate of ``f_theta``'s detached output and of the real episodes). With
        ``config.dynamics_weight > 0`` also ``"dyn_fit"`` (trains :class:`Dynamics` on the
        real transitions) and ``"dyn_consistency"`` (``L_dyn``: the frozen model's error on
        consecutive columns of ``f_theta``'s estimate, relative to the batch's mean squared
        real one-step change so its weight does not depend on the data's scale), added to
        ``model`` with that weight (``dynamics_weight`` overrides it, e.g. 0 in the warm-up).
        With ``config.action_decoder="inverse_dynamics"`` also ``"inv_fit"``, the loss of
        :class:`InverseDynamics` on the real transitions (it trains that model only). With
        ``config.reward_decoder="model"`` and ``reward_targets`` (the batch's raw reward rows,
        ``(batch, reward rows, horizon)``) also ``"rew_fit"``, :class:`RewardModel`'s loss.
        """
        b = x0.shape[0]
        diff = self.diffusion
        t = torch.randint(0, diff.n_timesteps, (b,), generator=generator).to(x0.device)
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)
        x_t = diff.q_sample(x0, t, noise)
        known = self.anchor_mask
        if known is None:
            out = self.net(x_t, t)
            diffusion_loss = F.mse_loss(out, diff.target(x0, noise, t))
            x0_hat = diff.predict_x0(out, x_t, t)  # the output itself with x0-prediction
        else:
            # anchored: the known entries are clean in x_t, as the sampler holds them, and
            # only the unknown ones are scored
            x_t = torch.where(known, x0, x_t)
            out = self.net(x_t, t)
            free = (~known).to(out.dtype).expand_as(out)
            err = (out - diff.target(x0, noise, t)) ** 2
            diffusion_loss = (err * free).sum() / free.sum()
            x0_hat = torch.where(known, x0, diff.predict_x0(out, x_t, t))

        w = step_mask.to(x0.dtype)
        denom = w.sum().clamp(min=1.0)
        q_real = self.q(x0)
        q_fit = (((q_real - x0[:, self.q_row, :]) ** 2) * w).sum() / denom

        if q_weight > 0:
            frozen = {k: v.detach() for k, v in self.q.named_parameters()}
            # Q_phi sees what the sampler would emit: x0 clipped to the data's range
            seen = x0_hat.clamp(*diff.clip_range) if diff.clip_denoised else x0_hat
            if self.q_grad_rows is not None:
                seen = torch.where(self.q_grad_rows[None, :, None], seen, seen.detach())
            relaxed = self.relax_actions(seen, temperature)
            q_hat = functional_call(self.q, frozen, (relaxed,))
            # capped at the best normalized return of the data (1): no reward for pushing
            # Q_phi beyond what any real episode reached, i.e. for exploiting extrapolation
            q_guidance = -(q_hat.clamp(max=1.0) * w).sum() / denom
            if self.q_conservative > 0:
                # CQL's gap, with the generator in the place of the policy: pushes Q_phi
                # down on f_theta's (detached) estimates and up on the real episodes
                q_gen = self.q(relaxed.detach())
                q_fit = q_fit + self.q_conservative * (((q_gen - q_real) * w).sum() / denom)
        else:
            q_guidance = torch.zeros((), device=x0.device)
        out = {
            "diffusion": diffusion_loss,
            "q_fit": q_fit,
            "q_guidance": q_guidance,
            "model": diffusion_loss + q_weight * q_guidance,
        }
        if self.dyn is not None:
            out.update(self._dynamics_losses(x0, x0_hat, step_mask, t))
            mu = self.dynamics_weight if dynamics_weight is None else dynamics_weight
            out["model"] = out["model"] + mu * out["dyn_consistency"]
        if self.inv is not None:
            out["inv_fit"] = self.inv.loss(x0, step_mask)
        if self.rew is not None and reward_targets is not None:
            out["rew_fit"] = self.rew.loss(x0, reward_targets, step_mask)
        return out

    def _dynamics_losses(
        self,
        x0: torch.Tensor,
        x0_hat: torch.Tensor,
        step_mask: torch.Tensor,
        t: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        dyn = self.dyn
        # (batch, obs rows, horizon - 1): a transition t -> t+1 inside the episode, with the
        # row's agent alive at both ends (binary rows are normalized to -1 / +1)
        w = (step_mask[:, None, 1:] & step_mask[:, None, :-1]).to(x0.dtype)
        if self.obs_alive_rows is not None:
            alive = x0[:, self.obs_alive_rows, :] > 0
            w = w * (alive[..., 1:] & alive[..., :-1]).to(x0.dtype)
        denom = w.sum().clamp(min=1.0)
        real_change = dyn.change(x0)
        scale = ((real_change**2) * w).sum().detach() / denom + 1e-8
        dyn_fit = (((dyn(x0) - real_change) ** 2) * w).sum() / denom / scale
        frozen = {k: v.detach() for k, v in dyn.named_parameters()}
        seen = x0_hat.clamp(*self.diffusion.clip_range) if self.diffusion.clip_denoised else x0_hat
        pred = functional_call(dyn, frozen, (seen,))
        # weighted by the signal level abar_t: at high noise f_theta's estimate is a blurred
        # mean over many episodes, which need not follow any dynamics. Measured: no change
        # against the unweighted penalty (docs/eaq.md); the weight's size is what matters.
        signal = self.diffusion.alphas_cumprod[t].to(x0.dtype)[:, None, None]
        err = ((pred - dyn.change(seen)) ** 2) * w * signal
        consistency = err.sum() / (w * signal).sum().clamp(min=1e-8) / scale
        return {"dyn_fit": dyn_fit, "dyn_consistency": consistency}
