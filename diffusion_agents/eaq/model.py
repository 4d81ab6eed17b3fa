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


def q_input_rows(layout: EpisodeLayout) -> list[int]:
    """Rows ``Q_phi`` reads: every agent's observation, alive flag and action block."""
    kinds = ("obs", "alive", "action_onehot", "action")
    return [
        r for s in layout.segments if s.kind in kinds for r in range(s.start, s.stop)
    ]


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
    """

    def __init__(self, *, rows: list[int], horizon: int, hidden: int = 256) -> None:
        super().__init__()
        self.register_buffer("rows", torch.as_tensor(rows, dtype=torch.long), persistent=False)
        self.register_buffer(
            "time", torch.linspace(-1.0, 1.0, horizon), persistent=False
        )
        self.mlp = MLP(len(rows) + 1, 1, hidden=(hidden, hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = rearrange(x[:, self.rows, :], "b f h -> b h f")
        time = self.time.expand(x.shape[0], -1)[..., None]
        return self.mlp(torch.cat([feats, time], dim=-1)).squeeze(-1)


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
        self.q = QTotal(rows=q_input_rows(layout), horizon=layout.horizon, hidden=config.q_hidden)
        clip = config.clip_x0
        self.diffusion = GaussianDiffusion(
            n_timesteps=config.n_diffusion_steps,
            schedule=config.beta_schedule,
            prediction="x0",
            clip_denoised=clip is not None,
            clip_range=(-(clip or 1.0), clip or 1.0),
        )
        self.q_row = layout.row("q_total")
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
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """The EAQ losses on a batch of real normalized episodes ``x0`` ``(batch, F, H)``.

        Returns ``{"diffusion", "q_fit", "q_guidance", "model"}``: ``model = diffusion +
        q_weight * q_guidance`` trains ``f_theta`` (``Q_phi`` is frozen inside
        ``q_guidance``); ``q_fit`` trains ``Q_phi`` on the real data.
        """
        b = x0.shape[0]
        diff = self.diffusion
        t = torch.randint(0, diff.n_timesteps, (b,), generator=generator).to(x0.device)
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)
        x_t = diff.q_sample(x0, t, noise)
        x0_hat = self.net(x_t, t)
        diffusion_loss = F.mse_loss(x0_hat, diff.target(x0, noise, t))

        w = step_mask.to(x0.dtype)
        denom = w.sum().clamp(min=1.0)
        q_real = self.q(x0)
        q_fit = (((q_real - x0[:, self.q_row, :]) ** 2) * w).sum() / denom

        if q_weight > 0:
            frozen = {k: v.detach() for k, v in self.q.named_parameters()}
            # Q_phi sees what the sampler would emit: x0 clipped to the data's range
            seen = x0_hat.clamp(*diff.clip_range) if diff.clip_denoised else x0_hat
            q_hat = functional_call(self.q, frozen, (self.relax_actions(seen, temperature),))
            # capped at the best normalized return of the data (1): no reward for pushing
            # Q_phi beyond what any real episode reached, i.e. for exploiting extrapolation
            q_guidance = -(q_hat.clamp(max=1.0) * w).sum() / denom
        else:
            q_guidance = torch.zeros((), device=x0.device)
        return {
            "diffusion": diffusion_loss,
            "q_fit": q_fit,
            "q_guidance": q_guidance,
            "model": diffusion_loss + q_weight * q_guidance,
        }
