"""The shared diffusion core: schedules, q_sample, training loss, samplers, guidance, inpainting.

One module serves MADiff and EAQ. Everything is generic over the sample shape: ``x`` is any
tensor ``(batch, ...)`` (e.g. ``(batch * agents, obs_dim, horizon)`` for MADiff,
``(batch, features, T)`` for EAQ). Data is expected normalized to ``[-1, 1]``.

API (stable; additions only)::

    diff = GaussianDiffusion(n_timesteps=200, schedule="cosine", prediction="x0",
                             clip_denoised=True)               # an nn.Module, schedules as buffers
    x_t = diff.q_sample(x0, t, noise)                          # forward process
    loss = diff.loss(model_fn, x0, weights=w, inpaint=(mask, values))   # model_fn(x_t, t) -> out
    x = diff.sample(model_fn, shape, steps=5, sampler="ddim", eta=0.0, temperature=1.0,
                    inpaint=(mask, values) or callable, generator=g)
    model_fn = classifier_free_guidance(net_fn, weight=1.2)    # net_fn(x, t, drop) -> out
    drop = condition_dropout(batch, p=0.25, generator=g)       # bool (batch,), True = uncond

``model_fn(x_t, t)`` takes ``x_t`` of ``shape`` and integer steps ``t`` ``(batch,)`` and returns
the prediction selected by ``prediction``: the noise ``eps`` (Ho et al. 2020), the clean sample
``x0``, or the velocity ``v = sqrt(abar) eps - sqrt(1 - abar) x0`` (Salimans & Ho 2022).

Pitfall (why ``clip_denoised`` defaults to True): with eps-prediction and a cosine schedule,
``abar_K ~ 1e-5`` at the last step, so the first update from pure noise computes
``x0 = (x_K - sqrt(1 - abar_K) eps) / sqrt(abar_K)`` and divides by ~0.003: any error in
``eps`` is amplified ~300x and a few-step sampler saturates. We clip the x0 estimate to the
data range and re-derive ``eps`` from the clipped x0 (as Diffuser/MADiff do); x0-prediction
avoids the division altogether. ``tests/diffusion_agents/test_diffusion.py`` checks that
few-step samples from pure noise land in the data range.

Samplers are hand-written rather than diffusers' ``DDIMScheduler``: the loop needs the x0
estimate itself at every step (clip, then inpaint it, then re-derive eps), a strided ancestral
DDPM, and the caller's starting noise; the per-step overhead is the same either way
(``benchmarks/perf.py``, no-op model, one thread on a busy machine, two runs: 1.8 / 0.7 ms
ours vs 1.7 / 1.6 ms for ``DDIMScheduler.step``), so the network forward pass, not the
scheduler, is the cost.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Inpaint = (
    tuple[torch.Tensor, torch.Tensor] | Callable[[torch.Tensor], torch.Tensor] | None
)

SCHEDULES = ("cosine", "linear")
PREDICTIONS = ("eps", "x0", "v")
SAMPLERS = ("ddpm", "ddim")
LOSSES = ("l2", "l1")
PRECISIONS = ("fp32", "bf16")


def _check(name: str, value: object, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(
            f"{name}={value!r} is not supported; allowed: {list(allowed)}."
        )


def cosine_beta_schedule(n_timesteps: int, s: float = 0.008) -> torch.Tensor:
    """Cosine schedule of Nichol & Dhariwal (2021): ``abar(t) = cos^2((t/T + s)/(1 + s) pi/2)``."""
    steps = n_timesteps + 1
    x = torch.linspace(0, steps, steps, dtype=torch.float64)
    abar = torch.cos(((x / steps) + s) / (1 + s) * math.pi * 0.5) ** 2
    abar = abar / abar[0]
    betas = 1 - (abar[1:] / abar[:-1])
    return betas.clamp(0, 0.999)


def linear_beta_schedule(
    n_timesteps: int, beta_start: float = 1e-4, beta_end: float = 2e-2
) -> torch.Tensor:
    """Linear schedule of Ho et al. (2020), rescaled to ``n_timesteps``."""
    scale = 1000.0 / n_timesteps
    return torch.linspace(
        beta_start * scale,
        min(beta_end * scale, 0.999),
        n_timesteps,
        dtype=torch.float64,
    )


def _extract(a: torch.Tensor, t: torch.Tensor, ndim: int) -> torch.Tensor:
    """``a[t]`` reshaped to ``(batch, 1, 1, ...)`` for broadcasting against ``ndim`` dims."""
    return a.gather(0, t).reshape(t.shape[0], *((1,) * (ndim - 1)))


def apply_inpaint(x: torch.Tensor, inpaint: Inpaint) -> torch.Tensor:
    """Overwrite the known parts of ``x``: ``(mask, values)`` or a callable ``x -> x``."""
    if inpaint is None:
        return x
    if callable(inpaint):
        return inpaint(x)
    mask, values = inpaint
    return torch.where(mask, values, x)


def condition_dropout(
    batch: int,
    p: float,
    *,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``(batch,)`` bool, True with probability ``p``: rows trained without the condition."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"condition dropout p={p!r} must lie in [0, 1].")
    u = torch.rand(batch, generator=generator, device=device or "cpu")
    return (u < p).to(device or "cpu")


def classifier_free_guidance(
    net_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    weight: float,
    *,
    batched: bool = True,
) -> ModelFn:
    """Classifier-free guidance (Ho & Salimans 2022): ``out_u + w (out_c - out_u)``.

    ``net_fn(x, t, drop)`` runs the network; ``drop`` ``(batch,)`` is True for rows that must
    ignore the condition. With ``batched`` both passes run as ONE forward on ``2 * batch`` rows
    (one call per sampling step); otherwise two calls. ``weight == 1`` runs the conditional pass
    only; ``weight == 0`` the unconditional one. The combination is linear, so it is valid for
    eps-, x0- and v-prediction alike.
    """

    def fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        if weight == 1.0:
            return net_fn(x, t, torch.zeros(b, dtype=torch.bool, device=x.device))
        if weight == 0.0:
            return net_fn(x, t, torch.ones(b, dtype=torch.bool, device=x.device))
        if batched:
            drop = torch.cat(
                [
                    torch.zeros(b, dtype=torch.bool, device=x.device),
                    torch.ones(b, dtype=torch.bool, device=x.device),
                ]
            )
            out = net_fn(torch.cat([x, x]), torch.cat([t, t]), drop)
            out_c, out_u = out[:b], out[b:]
        else:
            out_c = net_fn(x, t, torch.zeros(b, dtype=torch.bool, device=x.device))
            out_u = net_fn(x, t, torch.ones(b, dtype=torch.bool, device=x.device))
        return out_u + weight * (out_c - out_u)

    return fn


class GaussianDiffusion(nn.Module):
    """Discrete-time Gaussian diffusion over tensors ``(batch, ...)``.

    Forward process ``q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)`` with
    ``abar_t = prod_{s <= t} (1 - beta_s)``, ``t = 0..K-1`` (``K = n_timesteps``).

    Args:
        n_timesteps: K, the number of training diffusion steps.
        schedule: ``"cosine"`` (default) or ``"linear"``.
        prediction: what the network predicts: ``"eps"``, ``"x0"`` or ``"v"``.
        clip_denoised: clip the x0 estimate to ``clip_range`` at every sampling step.
        clip_range: the data range, ``(-1, 1)`` for normalized data.
        loss_type: ``"l2"`` or ``"l1"``.
    """

    def __init__(
        self,
        *,
        n_timesteps: int = 200,
        schedule: str = "cosine",
        prediction: str = "eps",
        clip_denoised: bool = True,
        clip_range: tuple[float, float] = (-1.0, 1.0),
        loss_type: str = "l2",
    ) -> None:
        super().__init__()
        _check("schedule", schedule, SCHEDULES)
        _check("prediction", prediction, PREDICTIONS)
        _check("loss_type", loss_type, LOSSES)
        if int(n_timesteps) < 1:
            raise ValueError(f"n_timesteps={n_timesteps!r} must be >= 1.")
        self.n_timesteps = int(n_timesteps)
        self.schedule = schedule
        self.prediction = prediction
        self.clip_denoised = bool(clip_denoised)
        self.clip_range = (float(clip_range[0]), float(clip_range[1]))
        self.loss_type = loss_type

        betas = (
            cosine_beta_schedule(self.n_timesteps)
            if schedule == "cosine"
            else linear_beta_schedule(self.n_timesteps)
        )
        alphas = 1.0 - betas
        abar = torch.cumprod(alphas, dim=0)
        abar_prev = torch.cat([torch.ones(1, dtype=abar.dtype), abar[:-1]])
        post_var = betas * (1.0 - abar_prev) / (1.0 - abar)

        def buf(name: str, value: torch.Tensor) -> None:
            self.register_buffer(name, value.to(torch.float32), persistent=False)

        buf("betas", betas)
        buf("alphas_cumprod", abar)
        buf("alphas_cumprod_prev", abar_prev)
        buf("sqrt_alphas_cumprod", abar.sqrt())
        buf("sqrt_one_minus_alphas_cumprod", (1.0 - abar).sqrt())
        buf("sqrt_recip_alphas_cumprod", (1.0 / abar).sqrt())
        buf("sqrt_recipm1_alphas_cumprod", (1.0 / abar - 1.0).sqrt())
        buf("posterior_variance", post_var)
        buf("posterior_log_variance_clipped", post_var.clamp(min=1e-20).log())
        buf("posterior_mean_coef1", betas * abar_prev.sqrt() / (1.0 - abar))
        buf("posterior_mean_coef2", (1.0 - abar_prev) * alphas.sqrt() / (1.0 - abar))

    def extra_repr(self) -> str:
        return (
            f"n_timesteps={self.n_timesteps}, schedule={self.schedule!r}, "
            f"prediction={self.prediction!r}, clip_denoised={self.clip_denoised}"
        )

    # -- forward process --------------------------------------------------------------
    def q_sample(
        self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise``; ``t`` is ``(batch,)`` long."""
        if noise is None:
            noise = torch.randn_like(x0)
        n = x0.ndim
        return (
            _extract(self.sqrt_alphas_cumprod, t, n) * x0
            + _extract(self.sqrt_one_minus_alphas_cumprod, t, n) * noise
        )

    def target(
        self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor
    ) -> torch.Tensor:
        """The regression target of the chosen ``prediction``."""
        if self.prediction == "eps":
            return noise
        if self.prediction == "x0":
            return x0
        n = x0.ndim
        return (
            _extract(self.sqrt_alphas_cumprod, t, n) * noise
            - _extract(self.sqrt_one_minus_alphas_cumprod, t, n) * x0
        )

    # -- converting between parameterizations -----------------------------------------
    def predict_x0(
        self, out: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
    ) -> torch.Tensor:
        """x0 estimate from the network output ``out`` at ``(x_t, t)``."""
        n = x_t.ndim
        if self.prediction == "x0":
            return out
        if self.prediction == "eps":
            return (
                _extract(self.sqrt_recip_alphas_cumprod, t, n) * x_t
                - _extract(self.sqrt_recipm1_alphas_cumprod, t, n) * out
            )
        return (
            _extract(self.sqrt_alphas_cumprod, t, n) * x_t
            - _extract(self.sqrt_one_minus_alphas_cumprod, t, n) * out
        )

    def predict_eps(
        self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
    ) -> torch.Tensor:
        """The noise consistent with ``x0`` and ``x_t``: ``(x_t - sqrt(abar) x0) / sqrt(1 - abar)``."""
        n = x_t.ndim
        return (_extract(self.sqrt_recip_alphas_cumprod, t, n) * x_t - x0) / _extract(
            self.sqrt_recipm1_alphas_cumprod, t, n
        )

    def _x0(
        self, model_fn: ModelFn, x: torch.Tensor, t: torch.Tensor, clip: bool | None
    ):
        x0 = self.predict_x0(model_fn(x, t), x, t)
        if self.clip_denoised if clip is None else clip:
            x0 = x0.clamp(*self.clip_range)
        return x0

    # -- training -------------------------------------------------------------------------
    def loss(
        self,
        model_fn: ModelFn,
        x0: torch.Tensor,
        *,
        t: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        weights: torch.Tensor | None = None,
        inpaint: Inpaint = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Denoising loss ``E_t,eps [w * |model(x_t, t) - target|^p]`` (scalar).

        Args:
            model_fn: ``(x_t, t) -> prediction``.
            x0: clean data ``(batch, ...)``.
            t: steps ``(batch,)``; uniform over ``0..K-1`` when None.
            weights: broadcastable to ``x0``; the loss is ``sum(w * err) / sum(w expanded)``,
                so zero weights act as a mask (e.g. padding, inpainted positions).
            inpaint: known parts written into ``x_t`` before the model sees it (as at sampling).
        """
        b = x0.shape[0]
        if t is None:
            t = torch.randint(
                0, self.n_timesteps, (b,), generator=generator, device="cpu"
            ).to(x0.device)
        if noise is None:
            noise = torch.randn(
                x0.shape, generator=generator, device="cpu", dtype=x0.dtype
            ).to(x0.device)
        x_t = apply_inpaint(self.q_sample(x0, t, noise), inpaint)
        out = model_fn(x_t, t)
        target = self.target(x0, noise, t)
        err = (out - target) ** 2 if self.loss_type == "l2" else (out - target).abs()
        if weights is None:
            return err.mean()
        w = weights.expand_as(err).to(err.dtype)
        return (err * w).sum() / w.sum().clamp(min=1e-8)

    # -- sampling -------------------------------------------------------------------------
    def timesteps(self, steps: int | None) -> list[int]:
        """Descending steps used by a sampler with ``steps`` updates (None: all K)."""
        k = self.n_timesteps
        if steps is None or steps >= k:
            return list(range(k - 1, -1, -1))
        if steps < 1:
            raise ValueError(f"steps={steps!r} must be >= 1.")
        ts = torch.linspace(k - 1, 0, steps).round().long().tolist()
        return [int(s) for s in ts]

    @torch.no_grad()
    def sample(
        self,
        model_fn: ModelFn,
        shape: tuple[int, ...],
        *,
        steps: int | None = None,
        sampler: str = "ddim",
        eta: float = 0.0,
        temperature: float = 1.0,
        inpaint: Inpaint = None,
        clip: bool | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        x_T: torch.Tensor | None = None,
        return_x0: bool = False,
    ) -> torch.Tensor:
        """Draw samples of ``shape`` starting from pure noise.

        Args:
            sampler: ``"ddpm"`` (ancestral, one update per step in ``timesteps(steps)``;
                with ``steps=None`` the full K-step chain) or ``"ddim"`` (Song et al. 2021,
                ``eta=0`` deterministic; ``steps`` evenly spaced updates).
            temperature: scales the noise injected at each update (low-temperature
                sampling, as in Diffuser); the initial noise is not scaled.
            inpaint: ``(mask, values)`` (bool mask broadcastable to ``shape``) or a callable;
                applied to the starting noise, to every x0 estimate and after every update.
            clip: override ``clip_denoised``.
            generator: a ``torch.Generator`` on the CPU for reproducible draws.
            return_x0: also return the last x0 estimate.
        """
        _check("sampler", sampler, SAMPLERS)
        dev = torch.device(device) if device is not None else self.betas.device

        def randn(s):
            return torch.randn(s, generator=generator, device="cpu").to(dev)

        x = randn(shape) if x_T is None else x_T.to(dev)
        x = apply_inpaint(x, inpaint)
        ts = self.timesteps(steps)
        abar = self.alphas_cumprod
        x0 = x
        for i, s in enumerate(ts):
            prev = ts[i + 1] if i + 1 < len(ts) else -1
            t = torch.full((shape[0],), s, dtype=torch.long, device=dev)
            x0 = apply_inpaint(self._x0(model_fn, x, t, clip), inpaint)
            a_t = abar[s]
            a_p = abar[prev] if prev >= 0 else torch.ones((), device=dev)
            eps = (x - a_t.sqrt() * x0) / (1 - a_t).sqrt()
            if sampler == "ddim":
                sigma = (
                    eta * ((1 - a_p) / (1 - a_t) * (1 - a_t / a_p)).clamp(min=0).sqrt()
                )
                x = a_p.sqrt() * x0 + (1 - a_p - sigma**2).clamp(min=0).sqrt() * eps
                if eta > 0 and prev >= 0:
                    x = x + temperature * sigma * randn(shape)
            else:  # ancestral step q(x_prev | x_t, x0) over the (possibly strided) chain
                beta = 1 - a_t / a_p
                mean = (a_p.sqrt() * beta / (1 - a_t)) * x0 + (
                    (1 - beta).sqrt() * (1 - a_p) / (1 - a_t)
                ) * x
                if prev >= 0:
                    var = beta * (1 - a_p) / (1 - a_t)
                    x = mean + temperature * var.clamp(min=1e-20).sqrt() * randn(shape)
                else:
                    x = mean
            x = apply_inpaint(x, inpaint)
        if return_x0:
            return x, x0
        return x


def check_device_name(device: str | None, owner: str) -> None:
    """Refuse a device name that :func:`resolve_device` would not take, naming ``owner``
    (e.g. ``"MADiffConfig.device"``): ``None``/``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"auto"``."""
    if device is None or device in ("cpu", "cuda", "auto"):
        return
    if isinstance(device, str) and device.startswith("cuda:") and device[5:].isdigit():
        return
    raise ValueError(f"{owner}={device!r}; use 'cpu', 'cuda', 'cuda:N' or 'auto'.")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/``"cpu"`` -> CPU; ``"auto"`` -> CUDA when available, else CPU; a CUDA
    device is refused with a clear error where CUDA is not available."""
    if device is None or device == "cpu":
        return torch.device("cpu")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={str(device)!r} asked for CUDA, but CUDA is not available."
        )
    return dev


def training_autocast(precision: str, device: torch.device | str) -> torch.autocast:
    """The autocast context of a training forward pass (MADiff and EAQ): bfloat16 for
    ``precision="bf16"``, a disabled context (float32) for ``"fp32"``. Parameters, their
    gradients and the optimizers stay float32; run the backward outside the context, as
    ``torch.amp`` recommends. bfloat16 keeps float32's exponent range, so unlike float16 no
    loss scaling is needed."""
    _check("precision", precision, PRECISIONS)
    dev = torch.device(device)
    bf16 = precision == "bf16"
    if bf16 and dev.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        raise ValueError(
            f"precision='bf16' needs a GPU with bfloat16 arithmetic (Ampere or newer); "
            f"{torch.cuda.get_device_name(dev)} has none. Use precision='fp32'."
        )
    return torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16)


__all__ = [
    "PRECISIONS",
    "GaussianDiffusion",
    "apply_inpaint",
    "check_device_name",
    "classifier_free_guidance",
    "condition_dropout",
    "cosine_beta_schedule",
    "linear_beta_schedule",
    "resolve_device",
    "training_autocast",
]
