"""``MADiffConfig``: every setting of a MADiff policy, with the method's math.

MADiff (Zhu et al., "MADiff: Offline Multi-agent Learning with Diffusion Models",
arXiv 2305.17330) models the joint observation trajectory of all agents with one diffusion
model and turns it into a policy through an inverse-dynamics model.

Trajectory. For a current step ``t`` the model generates, for every agent ``j``, the window
``tau_j = (o_j,t-h, ..., o_j,t, o_j,t+1, ..., o_j,t+H)`` (``h = history``, ``H = horizon``),
observations normalized to ``[-1, 1]`` per agent and dimension, shaped
``(batch, agents, obs_dim, history + 1 + horizon)`` and folded to
``(batch * agents, obs_dim (+ agents), window)`` for the shared-weight temporal U-Net, which
mixes agents by cross-agent attention at the bottleneck and on the decoder skips.

Diffusion. ``q(tau^k | tau^0) = N(sqrt(abar_k) tau^0, (1 - abar_k) I)`` with a cosine schedule
over ``K = n_diffusion_steps``; the network predicts ``prediction`` (x0 by default, see
``diffusion_agents.diffusion``) and is trained with
``L = E_k,tau,beta [ || f_theta(tau^k, k, (1 - beta) y) - tau^0 ||^2 ]`` over the unknown
positions, ``beta ~ Bernoulli(condition_dropout)``. Known observations are inpainted (written
into ``tau^k`` at every step), during training and sampling alike:

- decentralized (``mode="decentralized"``, MADiff-D, the default): agent ``i``'s own
  history and current observation only; one agent is "visible" per training sample. The
  model still generates every teammate's window: that is the teammate model.
- centralized (``mode="centralized"``, MADiff-C): all agents' history and current obs.

Return conditioning. ``y`` is the discounted team return-to-go
``R_t = sum_{k >= t} gamma^(k - t) r_k`` scaled to ``[0, 1]`` per time step by the data's
min and max of ``R_t`` at that step (so ``target_return = 1`` asks for the best return the
data shows from that step on). Classifier-free guidance samples with
``f = f(tau, k, 0) + w (f(tau, k, y) - f(tau, k, 0))``, ``w = guidance_weight``; both terms in
one batched forward pass.

Inverse dynamics. ``a_i,t = I_phi(o_i,t, o_i,t+1, onehot(i))``: cross-entropy over the
agent's legal actions (illegal ones masked with ``-inf``) for ``Discrete`` agents, MSE for
the others (actions scaled to ``[-1, 1]`` by the space bounds). ``o_i,t+1`` comes from the
generated window. Trained jointly with the diffusion loss (``L + inv_loss_weight * L_inv``).

Sampling. ``sampler="ddim"`` with ``sampling_steps`` updates (DDIM, Song et al. 2021) is the
fast default; ``sampler="ddpm", sampling_steps=None`` is the reference 200-step chain.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from diffusion_agents.diffusion import PRECISIONS, check_device_name

MODES = ("decentralized", "centralized")
PREDICTIONS = ("eps", "x0", "v")
SAMPLERS = ("ddpm", "ddim")
SCHEDULES = ("cosine", "linear")


@dataclasses.dataclass(frozen=True, kw_only=True)
class MADiffConfig:
    """Settings of a MADiff policy (see the module docstring for the math).

    Model:
        mode: ``"decentralized"`` (MADiff-D) or ``"centralized"`` (MADiff-C).
        history: ``h``, past observations inpainted besides the current one.
        horizon: ``H``, future observations generated. 21 (a window of 23 steps, most of
            an MPE episode of 25): on MPE spread ``medium-v0`` (3 seeds x 500 paired
            episodes, 5,000 steps) horizons 6 / 14 / 21 scored 35.2 / 43.2 / 53.3, against
            38.4 for sampled BC (README); the return-to-go the model is conditioned on is
            then nearly a function of the window it generates.
        base_width, dim_mults: U-Net width and multipliers (reference: 128, (1, 4, 8)).
        kernel_size: temporal convolution width.
        res_blocks: residual blocks per U-Net level, encoder and decoder (Diffuser: 2).
            1 trains ~1.3x faster at about the same score (docs/madiff.md, Speed: training).
        agent_attention: cross-agent attention; False gives independent diffusers.
        attention_heads: heads of the cross-agent attention.
        agent_id_input: feed each agent's one-hot id to the U-Net (needed for
            heterogeneous agents; cheap otherwise).
        n_diffusion_steps: ``K`` training steps of the forward process.
        schedule, prediction: see ``diffusion_agents.diffusion.GaussianDiffusion``.
        plan_deltas: diffuse the future part of each window as per-step changes
            ``o_t+k - o_t+k-1`` scaled to the data's largest change, instead of absolute
            observations (:meth:`MADiffModel.to_plan`); the planned next observation is the
            current one plus the generated change. Why: a step moves an MPE observation by
            ~1 % of its range, below what the absolute-space denoiser resolves.
        inv_hidden: hidden widths of the inverse-dynamics MLP.
        shared_inverse_dynamics: one MLP with an agent-id input (True) or one per agent.

    Returns and guidance:
        gamma: discount of the return-to-go.
        condition_dropout: probability of training a sample unconditionally.
        guidance_weight: ``w``; 1 = conditional only (one pass, the default), 0 =
            unconditional, > 1 extrapolates (two terms, batched). At 10,000 steps on MPE
            spread ``medium-v0``: w = 1 scored 62.2 against 62.8 for w = 1.2 at 60 % of the
            act cost, and 58.1 unconditional (README).
        target_return: scaled return asked for at ``act`` time (in ``[0, 1]``).

    Sampling:
        sampler, sampling_steps: ``"ddim"`` with few steps (default) or ``"ddpm"``
            (``sampling_steps=None``: the full K-step chain).
        eta: DDIM noise (0 = deterministic given the initial noise).
        temperature: scale of the noise injected per step (low-temperature sampling).
        sample_actions: ``act`` draws each discrete action from the inverse dynamics'
            softmax instead of taking its arg-max (``act(..., deterministic=...)``
            overrides it per call). On data from a stochastic behaviour policy this is
            what made BC strong (README: sampled vs greedy BC).

    Training:
        n_steps, batch_size, learning_rate, weight_decay, grad_clip, inv_loss_weight.
            ``n_steps=10_000``: on MPE spread ``medium-v0`` (500 episodes) the default
            model scored 53.3 / 62.8 / 53.9 after 5,000 / 10,000 / 20,000 steps (w = 1.2;
            3, 3 and 2 seeds x 500 episodes): longer training scores lower, although
            held-out losses keep falling (w = 1.2 and ``inverse_steps=None``). The best
            length depends on the data: on SMAX ``smacv2_5_units`` medium the defaults
            score 20.2 and ``n_steps=3000`` 31.5 (docs/madiff.md, "Training length on
            SMAX").
        inverse_learning_rate: AdamW learning rate of the inverse dynamics (None: the
            same as ``learning_rate``). On SMAX ``smacv2_5_units`` medium at 3,000 steps,
            ``learning_rate=1e-3`` ruins MADiff-D (-10.7 against 43.3 at 2e-4) through the
            inverse dynamics alone: swapping heads between the two models of each seed
            (``python -m benchmarks.madiff_swap``, 3 seeds) scores the 1e-3 diffusion model
            with the 2e-4 head 39.1 and the 2e-4 model with the 1e-3 head -15.4; on MPE
            spread the larger rate's gain is the diffusion model's (docs/madiff.md, "Which
            part the learning rate acts through").
        inverse_steps: train the inverse dynamics for the first ``inverse_steps`` gradient
            steps only, then keep it fixed while the diffusion model trains on (None: train
            both for all ``n_steps``); the ``inv_loss`` reported for the later steps is NaN.
            Default 3000 (since the ninth session). Why: the inverse dynamics decodes the
            action from a *planned* next observation, which on both MPE spread and SMAX is
            off the data by more than a real step (docs/madiff.md). On SMAX
            ``smacv2_5_units`` medium, trained longer, it grows sharp on fine action traces
            of real observations and decodes plans badly: head-only curves on a fixed
            10,000-step model (``python -m benchmarks.madiff_inverse``) score 36.6 after
            3,000 head steps and -6.8 after 10,000; on MPE spread the head has converged by
            ~2,000 steps and its score is flat. As policies (3 seeds): SMAX 20.2 against
            -5.7 with ``None`` (``n_steps=3000``: 31.5, still the best there); MPE spread
            medium 60.7 against 62.2 (3 x 500 episodes; paired -1.5 [-2.3, -0.8]).
        ema_decay, ema_update_every, ema_start: ema-pytorch settings; act uses EMA weights.
        checkpoint_every: steps between checkpoints when a checkpoint path is given.
        compile: run the U-Net's training forward and backward through ``torch.compile``
            (inductor, channels-last layout; needs a C++ compiler on CPU). Same model and
            results up to float rounding; on the 2-core CPU 1.6-2.3x the eager training
            throughput after a one-off compilation of 1.5-3.5 minutes (cached across
            processes). A run may resume with the other setting.
        precision: ``"fp32"`` (default) or ``"bf16"``: the training forward (diffusion
            and inverse-dynamics losses) runs under ``torch.autocast`` with bfloat16 on the
            training device; weights, gradients, AdamW and EMA state stay float32, and
            ``act`` always runs in float32. A training-speed setting whose worth depends
            on the hardware: compiled, 2 threads, x0.81-0.94 the step time on an AMD CPU
            with ``avx512_bf16``, x1.15 on an Intel one with AMX; eager on a Zen 5 it ran
            53.5 against 44.3 steps/s, but since float32 runs the U-Net's 4-D channels-last
            layout (``TemporalUNet.nhwc``, which autocast skips) the two are level there
            (56.6 / 50.2 against 55.1 / 52.2); MPE
            spread medium scored 66.0 against 65.8 in float32 (3 seeds; docs/madiff.md,
            "Mixed precision").
            A run may resume with the other setting.
        seed: seeds sampling of batches, the initial weights and the policy's noise.
        device: ``"cpu"`` (default), ``"cuda"``, ``"cuda:1"``, or ``"auto"``.
    """

    mode: str = "decentralized"
    history: int = 1
    horizon: int = 21
    base_width: int = 32
    dim_mults: tuple[int, ...] = (1, 2)
    kernel_size: int = 3
    res_blocks: int = 2
    agent_attention: bool = True
    attention_heads: int = 4
    agent_id_input: bool = True
    n_diffusion_steps: int = 200
    schedule: str = "cosine"
    prediction: str = "x0"
    plan_deltas: bool = False
    inv_hidden: tuple[int, ...] = (256, 256)
    shared_inverse_dynamics: bool = True

    gamma: float = 0.99
    condition_dropout: float = 0.25
    guidance_weight: float = 1.0
    target_return: float = 0.9

    sampler: str = "ddim"
    sampling_steps: int | None = 3
    eta: float = 0.0
    temperature: float = 1.0
    sample_actions: bool = False

    n_steps: int = 10_000
    batch_size: int = 32
    learning_rate: float = 2e-4
    inverse_learning_rate: float | None = None
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    inv_loss_weight: float = 1.0
    inverse_steps: int | None = 3000
    ema_decay: float = 0.995
    ema_update_every: int = 2
    ema_start: int = 500
    checkpoint_every: int = 5_000
    compile: bool = False
    precision: str = "fp32"
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        def choice(name: str, allowed: tuple) -> None:
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(
                    f"MADiffConfig.{name}={value!r} is not supported; allowed: {list(allowed)}."
                )

        choice("mode", MODES)
        choice("prediction", PREDICTIONS)
        choice("sampler", SAMPLERS)
        choice("schedule", SCHEDULES)
        choice("precision", PRECISIONS)
        object.__setattr__(self, "dim_mults", tuple(int(m) for m in self.dim_mults))
        object.__setattr__(self, "inv_hidden", tuple(int(m) for m in self.inv_hidden))
        positive = (
            "horizon",
            "base_width",
            "kernel_size",
            "res_blocks",
            "n_diffusion_steps",
            "n_steps",
            "batch_size",
            "attention_heads",
            "ema_update_every",
            "checkpoint_every",
        )
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(
                    f"MADiffConfig.{name}={getattr(self, name)!r} must be >= 1."
                )
        if self.inverse_steps is not None and int(self.inverse_steps) < 1:
            raise ValueError(
                f"MADiffConfig.inverse_steps={self.inverse_steps!r} must be >= 1 or None."
            )
        if not self.learning_rate > 0:
            raise ValueError(
                f"MADiffConfig.learning_rate={self.learning_rate!r} must be > 0."
            )
        if self.inverse_learning_rate is not None and not self.inverse_learning_rate > 0:
            raise ValueError(
                f"MADiffConfig.inverse_learning_rate={self.inverse_learning_rate!r} must be "
                "> 0 or None."
            )
        if self.history < 0:
            raise ValueError(f"MADiffConfig.history={self.history!r} must be >= 0.")
        if not self.dim_mults or min(self.dim_mults) < 1:
            raise ValueError(
                f"MADiffConfig.dim_mults={self.dim_mults!r} must be positive."
            )
        if self.sampling_steps is not None and self.sampling_steps < 1:
            raise ValueError(
                f"MADiffConfig.sampling_steps={self.sampling_steps!r} must be >= 1 or None."
            )
        for name, lo, hi in (
            ("condition_dropout", 0.0, 1.0),
            ("gamma", 0.0, 1.0),
            ("ema_decay", 0.0, 1.0),
        ):
            v = getattr(self, name)
            if not lo <= v <= hi:
                raise ValueError(f"MADiffConfig.{name}={v!r} must lie in [{lo}, {hi}].")
        if self.guidance_weight < 0:
            raise ValueError(
                f"MADiffConfig.guidance_weight={self.guidance_weight!r} must be >= 0."
            )
        check_device_name(self.device, "MADiffConfig.device")

    @property
    def window(self) -> int:
        """Observations per generated window: ``history + 1 + horizon``."""
        return self.history + 1 + self.horizon

    def replace(self, **changes: Any) -> MADiffConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["dim_mults"] = list(self.dim_mults)
        d["inv_hidden"] = list(self.inv_hidden)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MADiffConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"Unknown MADiffConfig field(s) {unknown}; known: {sorted(known)}."
            )
        return cls(**data)

    @classmethod
    def reference(cls, **changes: Any) -> MADiffConfig:
        """The official MADiff size: width 128, mults (1, 4, 8), 200 DDPM steps, two-pass CFG."""
        base = dict(
            base_width=128,
            dim_mults=(1, 4, 8),
            kernel_size=5,
            history=2,
            horizon=21,
            sampler="ddpm",
            sampling_steps=None,
        )
        base.update(changes)
        return cls(**base)


__all__ = ["MADiffConfig", "MODES"]
