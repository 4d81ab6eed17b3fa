"""The MADiff network: a shared temporal U-Net over all agents' windows + inverse dynamics.

Shapes: ``tau`` is ``(batch, agents, obs_dim, window)`` (normalized observations, padded to
the largest ``obs_dim``); inside the U-Net it is folded to ``(batch * agents, obs_dim
(+ agents for the id one-hot), window)``. Normalization statistics live in buffers so that they
are saved with the weights.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from diffusion_agents.diffusion import GaussianDiffusion, classifier_free_guidance
from diffusion_agents.madiff.config import MADiffConfig
from diffusion_agents.networks import MLP, TemporalUNet


def known_mask(
    dim_valid: torch.Tensor,
    visible: torch.Tensor | None,
    n: int,
    window: int,
    history: int,
) -> torch.Tensor:
    """Inpainted positions ``(n, agents, obs_dim, window)`` (bool, an expanded view).

    The first ``history + 1`` steps of agent ``visible[k]`` in row ``k`` (``visible``:
    ``(n,)`` agent indices, decentralized conditioning), or of every agent when ``visible``
    is None (centralized), plus every padded observation dim (``~dim_valid``, ``(agents,
    obs_dim)``). Training batches, ``MADiffPolicy.act`` and ``benchmarks.madiff_inverse``
    all build their mask here, so the three cannot drift apart.
    """
    a, d = dim_valid.shape
    dev = dim_valid.device
    hist = (torch.arange(window, device=dev) <= history)[None, None, None, :]
    if visible is None:
        known = hist.expand(n, a, 1, window)
    else:
        own = F.one_hot(visible.to(dev), a).bool()[:, :, None, None]
        known = own & hist
    return (known | ~dim_valid[None, :, :, None]).expand(n, a, d, window)


class MADiffModel(nn.Module):
    """Diffusion over joint observation windows plus an inverse-dynamics head.

    Args:
        config: the :class:`MADiffConfig`.
        obs_dims: true observation width per agent (padded to ``max(obs_dims)``).
        act_dims: action width per agent (1 for Discrete).
        n_actions: choices per Discrete agent, 0 for others.
        max_t: longest episode in the data (size of the per-step return table).
    """

    def __init__(
        self,
        config: MADiffConfig,
        *,
        obs_dims: tuple[int, ...],
        act_dims: tuple[int, ...],
        n_actions: tuple[int, ...],
        max_t: int,
    ) -> None:
        super().__init__()
        self.config = config
        self.n_agents = a = len(obs_dims)
        self.obs_dims = tuple(obs_dims)
        self.act_dims = tuple(act_dims)
        self.n_actions = tuple(n_actions)
        self.obs_dim = d = max(obs_dims)
        self.diffusion = GaussianDiffusion(
            n_timesteps=config.n_diffusion_steps,
            schedule=config.schedule,
            prediction=config.prediction,
            clip_denoised=True,
        )
        extra = a if config.agent_id_input else 0
        self.unet = TemporalUNet(
            in_channels=d + extra,
            out_channels=d,
            base_width=config.base_width,
            dim_mults=config.dim_mults,
            cond_dim=1,
            kernel_size=config.kernel_size,
            res_blocks=config.res_blocks,
            n_agents=a,
            agent_attention=config.agent_attention,
            attention_heads=config.attention_heads,
        )
        self.inv_out = max(max(n_actions), max(act_dims))
        inv_in = 2 * d + a
        if config.shared_inverse_dynamics:
            self.inv = MLP(inv_in, self.inv_out, config.inv_hidden)
            self.inv_per_agent = None
        else:
            self.inv = None
            self.inv_per_agent = nn.ModuleList(
                MLP(inv_in, self.inv_out, config.inv_hidden) for _ in range(a)
            )
        # statistics (set by the trainer; saved with the weights)
        self.register_buffer("obs_low", torch.zeros(a, d))
        self.register_buffer("obs_high", torch.ones(a, d))
        self.register_buffer("act_low", -torch.ones(a, max(act_dims)))
        self.register_buffer("act_high", torch.ones(a, max(act_dims)))
        self.register_buffer("rtg_low", torch.zeros(max_t + 1))
        self.register_buffer("rtg_high", torch.ones(max_t + 1))
        if config.plan_deltas:
            # (agents, obs_dim): 1 / the largest normalized one-step change of the data
            self.register_buffer("delta_scale", torch.ones(a, d))
        dim_valid = torch.zeros(a, d, dtype=torch.bool)
        for i, di in enumerate(obs_dims):
            dim_valid[i, :di] = True
        self.register_buffer("dim_valid", dim_valid, persistent=False)
        self.register_buffer("agent_eye", torch.eye(a), persistent=False)

    # -- normalization --------------------------------------------------------------------
    def _obs_scale(self) -> tuple[torch.Tensor, torch.Tensor]:
        span = self.obs_high - self.obs_low
        ok = (span > 1e-6) & self.dim_valid
        return torch.where(ok, 2.0 / span.clamp(min=1e-6), torch.zeros_like(span)), ok

    def normalize_obs(self, obs: torch.Tensor) -> torch.Tensor:
        """``(..., agents, obs_dim)`` raw -> ``[-1, 1]`` (constant and padded dims -> 0)."""
        scale, ok = self._obs_scale()
        return (obs - self.obs_low) * scale - ok.float()

    def unnormalize_obs(self, x: torch.Tensor) -> torch.Tensor:
        span = self.obs_high - self.obs_low
        return ((x + 1.0) * 0.5 * span + self.obs_low) * self.dim_valid

    def normalize_actions(self, act: torch.Tensor) -> torch.Tensor:
        span = (self.act_high - self.act_low).clamp(min=1e-6)
        return 2.0 * (act - self.act_low) / span - 1.0

    def unnormalize_actions(self, x: torch.Tensor) -> torch.Tensor:
        return (x.clamp(-1, 1) + 1.0) * 0.5 * (
            self.act_high - self.act_low
        ) + self.act_low

    def scale_returns(self, rtg: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Return-to-go ``(batch,)`` at steps ``t`` -> ``[0, 1]`` by the data's range at ``t``."""
        t = t.clamp(max=self.rtg_low.shape[0] - 1)
        lo, hi = self.rtg_low[t], self.rtg_high[t]
        return ((rtg - lo) / (hi - lo).clamp(min=1e-6)).clamp(0.0, 1.0)

    def to_plan(self, w: torch.Tensor) -> torch.Tensor:
        """Windows ``(..., agents, obs_dim, window)`` of normalized observations -> the space
        the diffusion model works in.

        Without ``config.plan_deltas`` this is the identity. With it, the history and the
        current column (``0..h``) stay as they are and each later column ``c`` holds the
        change ``(w[c] - w[c - 1]) * delta_scale``: in ``[-1, 1]`` for the data's changes.
        """
        if not self.config.plan_deltas:
            return w
        h = self.config.history
        change = torch.diff(w[..., h:], dim=-1) * self.delta_scale[:, :, None]
        return torch.cat([w[..., : h + 1], change], dim=-1)

    def from_plan(self, z: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_plan`: the current column plus the running sum of changes."""
        if not self.config.plan_deltas:
            return z
        h = self.config.history
        future = z[..., h : h + 1] + torch.cumsum(
            z[..., h + 1 :] / self.delta_scale[:, :, None], dim=-1
        )
        return torch.cat([z[..., : h + 1], future], dim=-1)

    # -- diffusion network ----------------------------------------------------------------
    def net(
        self,
        x: torch.Tensor,
        k: torch.Tensor,
        returns: torch.Tensor,
        drop: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """U-Net on folded windows ``x (batch * agents, obs_dim, window)``.

        ``k``, ``drop``: ``(batch * agents,)``; ``returns``: ``(batch * agents, 1)``.
        """
        if self.config.agent_id_input:
            ids = repeat(
                self.agent_eye,
                "a c -> (b a) c h",
                b=x.shape[0] // self.n_agents,
                h=x.shape[-1],
            )
            x = torch.cat([x, ids], dim=1)
        return self.unet(x, k, cond=returns, drop_cond=drop)

    def diffusion_loss(
        self,
        tau: torch.Tensor,
        known: torch.Tensor,
        weights: torch.Tensor,
        returns: torch.Tensor,
        drop: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Denoising loss on ``tau (batch, agents, obs_dim, window)``.

        ``known`` (same shape, bool): inpainted positions; ``weights``: loss weights;
        ``returns`` ``(batch,)`` scaled; ``drop`` ``(batch,)`` bool condition dropout.
        """
        a = self.n_agents
        x0 = rearrange(self.to_plan(tau), "b a d h -> (b a) d h")
        mask = rearrange(known, "b a d h -> (b a) d h")
        w = rearrange(weights, "b a d h -> (b a) d h")
        r = repeat(returns, "b -> (b a) 1", a=a)
        dr = repeat(drop, "b -> (b a)", a=a)
        b = tau.shape[0]
        k = torch.randint(0, self.diffusion.n_timesteps, (b,), generator=generator)
        k = repeat(k.to(tau.device), "b -> (b a)", a=a)
        noise = torch.randn(x0.shape, generator=generator).to(tau.device)
        return self.diffusion.loss(
            lambda x, kk: self.net(x, kk, r, dr),
            x0,
            t=k,
            noise=noise,
            weights=w,
            inpaint=(mask, x0),
        )

    @torch.no_grad()
    def plan(
        self,
        known_values: torch.Tensor,
        known: torch.Tensor,
        returns: torch.Tensor,
        *,
        noise: torch.Tensor,
        guidance_weight: float | None = None,
        sampler: str | None = None,
        steps: int | None | str = "config",
        eta: float | None = None,
        temperature: float | None = None,
        batched_guidance: bool = True,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Sample windows ``(samples, agents, obs_dim, window)`` given the known positions.

        ``noise`` (same shape) is the starting point x_K, drawn by the caller so that each
        sample's noise does not depend on which other samples are in the batch.
        """
        cfg = self.config
        a = self.n_agents
        w = cfg.guidance_weight if guidance_weight is None else guidance_weight
        r = repeat(returns, "s -> (s a) 1", a=a)

        def net_fn(x, k, drop):
            rr = (
                r
                if x.shape[0] == r.shape[0]
                else torch.cat([r] * (x.shape[0] // r.shape[0]))
            )
            return self.net(x, k, rr, drop)

        fn = classifier_free_guidance(net_fn, w, batched=batched_guidance)
        mask = rearrange(known, "s a d h -> (s a) d h")
        values = rearrange(self.to_plan(known_values), "s a d h -> (s a) d h")
        x = self.diffusion.sample(
            fn,
            tuple(mask.shape),
            steps=cfg.sampling_steps if steps == "config" else steps,
            sampler=sampler or cfg.sampler,
            eta=cfg.eta if eta is None else eta,
            temperature=cfg.temperature if temperature is None else temperature,
            inpaint=(mask, values),
            generator=generator,
            x_T=rearrange(noise, "s a d h -> (s a) d h"),
        )
        return self.from_plan(rearrange(x, "(s a) d h -> s a d h", a=a))

    def traced_planner(
        self,
        example: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
        **settings,
    ) -> torch.jit.ScriptModule:
        """:meth:`plan` with fixed ``settings`` as a frozen TorchScript graph.

        Only for deterministic samplers (``sampler="ddim"``, ``eta=0``): the result depends on
        ``noise`` alone. The graph is specialized to the example's shapes and holds a copy of
        the current weights (frozen), so the caller keys a cache on both (see
        ``MADiffPolicy``). Why: the act-sized U-Net is bound by per-op overhead, and tracing
        the whole sampling loop roughly halves an act (``benchmarks/perf.py``).
        """
        if (settings.get("sampler") or self.config.sampler) != "ddim" or (
            settings.get("eta", self.config.eta) or 0.0
        ) > 0.0:
            raise ValueError("traced_planner() needs a deterministic sampler (ddim, eta=0).")
        planner = _Planner(self, settings).eval()
        # shape-dependent branches are fine here: the graph is only reused for these shapes
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            traced = torch.jit.trace(planner, example, check_trace=False)
            return torch.jit.freeze(traced)

    # -- inverse dynamics -----------------------------------------------------------------
    @property
    def inverse_module(self) -> nn.Module:
        """The inverse-dynamics parameters: the shared MLP or the per-agent ``ModuleList``."""
        return self.inv if self.inv is not None else self.inv_per_agent

    def inverse_dynamics(
        self, o_t: torch.Tensor, o_next: torch.Tensor, agent: torch.Tensor
    ) -> torch.Tensor:
        """``(n, obs_dim)`` x2 normalized obs + agent index ``(n,)`` -> ``(n, inv_out)``."""
        inp = torch.cat([o_t, o_next, self.agent_eye[agent]], dim=-1)
        if self.inv is not None:
            return self.inv(inp)
        out = inp.new_zeros(inp.shape[0], self.inv_out)
        for i, mlp in enumerate(self.inv_per_agent):
            rows = agent == i
            if bool(rows.any()):
                out[rows] = mlp(inp[rows])
        return out

    def masked_logits(
        self, out: torch.Tensor, agent: torch.Tensor, action_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Logits with actions beyond each agent's ``n`` and illegal ones set to ``-inf``."""
        n = torch.tensor(self.n_actions, device=out.device)[agent]
        legal = torch.arange(out.shape[-1], device=out.device)[None, :] < n[:, None]
        if action_mask is not None:
            m = action_mask[:, : out.shape[-1]]
            m = F.pad(m, (0, out.shape[-1] - m.shape[-1]), value=True)
            # a row with no legal action left keeps the agent's range (never all -inf)
            both = legal & m
            legal = torch.where(both.any(-1, keepdim=True), both, legal)
        return out.masked_fill(~legal, float("-inf"))

    def inverse_loss(
        self,
        o_t: torch.Tensor,
        o_next: torch.Tensor,
        agent: torch.Tensor,
        actions: torch.Tensor,
        action_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """Masked CE for Discrete agents, MSE (normalized) for the others; mean over rows."""
        out = self.inverse_dynamics(o_t, o_next, agent)
        disc = torch.tensor([n > 0 for n in self.n_actions], device=out.device)[agent]
        loss = out.new_zeros(())
        count = 0
        if bool(disc.any()):
            logits = self.masked_logits(
                out[disc],
                agent[disc],
                None if action_mask is None else action_mask[disc],
            )
            target = actions[disc, 0].long()
            loss = loss + F.cross_entropy(logits, target, reduction="sum")
            count += int(disc.sum())
        if bool((~disc).any()):
            rows = ~disc
            ag = agent[rows]
            tgt = self.normalize_actions_rows(actions[rows], ag)
            dims = torch.tensor(self.act_dims, device=out.device)[ag]
            valid = (
                torch.arange(tgt.shape[-1], device=out.device)[None, :] < dims[:, None]
            )
            err = ((out[rows, : tgt.shape[-1]] - tgt) ** 2 * valid).sum(-1) / dims
            loss = loss + err.sum()
            count += int(rows.sum())
        return loss / max(count, 1)

    def normalize_actions_rows(
        self, act: torch.Tensor, agent: torch.Tensor
    ) -> torch.Tensor:
        lo, hi = self.act_low[agent], self.act_high[agent]
        return 2.0 * (act - lo) / (hi - lo).clamp(min=1e-6) - 1.0

    def unnormalize_actions_rows(
        self, x: torch.Tensor, agent: torch.Tensor
    ) -> torch.Tensor:
        lo, hi = self.act_low[agent], self.act_high[agent]
        return (x.clamp(-1, 1) + 1.0) * 0.5 * (hi - lo) + lo


class _Planner(nn.Module):
    """``forward(values, known, returns, noise) -> plan`` with fixed sampling settings."""

    def __init__(self, model: MADiffModel, settings: dict) -> None:
        super().__init__()
        self.model = model
        self.settings = dict(settings)

    def forward(self, values, known, returns, noise):
        return self.model.plan(values, known, returns, noise=noise, **self.settings)


__all__ = ["MADiffModel", "known_mask"]
