"""``EAQConfig``: the settings of EAQ (Oh et al., arXiv 2408.13092), one dataclass.

EAQ learns a diffusion model over whole multi-agent episodes and samples new, more
cooperative ones. An episode is the tensor ``tau`` of shape ``(features, horizon)`` laid out
by :mod:`diffusion_agents.eaq.encode`; a Conv1D temporal U-Net ``f_theta`` is trained to
predict the clean episode ``tau_0`` from its noised version ``tau_k`` (x0-prediction)::

    L(theta) = E_{k, tau_0, eps} || tau_0 - f_theta(tau_k, k) ||^2  +  lambda * L_Qtot
    tau_k    = sqrt(abar_k) tau_0 + sqrt(1 - abar_k) eps

A Q-total estimator ``Q_phi(o_t, a_t, t)`` over the joint observation-action is trained
jointly on the real episodes with the return-to-go target ``G_t = sum_{k >= t} gamma^(k-t) r_k``
(in the tensor's normalized units, so ``Q`` lives in ``[-1, 1]`` whatever the reward scale)::

    L(phi)  = E_real || Q_phi(o_t, a_t, t) - G_t ||^2
    L_Qtot  = - E_t Q_phi(o_hat_t, softmax(a_hat_t / temperature), t)

where ``o_hat, a_hat`` are read from ``f_theta(tau_k, k)`` (discrete action blocks relaxed to
soft one-hot vectors, values clipped to ``[-clip_x0, clip_x0]`` as when sampling) and
``phi`` is held fixed in ``L_Qtot``. ``Q_phi`` is capped at 1 there (the best normalized
return of the data), so the generator cannot gain by exploiting its extrapolation.
``q_weight = 0`` is the "EAQ without Q" ablation.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from diffusion_agents.diffusion import PRECISIONS, PREDICTIONS, check_device_name
from diffusion_agents.eaq.encode import CONDITIONS, DECODE_ENDS, REWARD_NORMS

SAMPLERS = ("ddim", "ddpm")
Q_GUIDANCE_THROUGH = ("all", "actions")
ACTION_DECODERS = ("generated", "inverse_dynamics")
REWARD_DECODERS = ("generated", "model")


@dataclasses.dataclass(frozen=True, kw_only=True)
class EAQConfig:
    """Settings of the EAQ episode model (see the module docstring for the math).

    Attributes:
        q_weight: lambda, the weight of ``L_Qtot``; 0 disables Q-total guidance.
        n_steps: gradient steps of :meth:`EAQAugmenter.fit`.
        batch_size: episodes per gradient step.
        learning_rate: Adam learning rate of the U-Net ``f_theta``.
        q_learning_rate: Adam learning rate of the Q-total estimator.
        q_hidden: width of the Q-total MLP (two hidden layers).
        q_warmup_steps: steps during which only ``Q_phi`` learns from the real data before
            ``L_Qtot`` switches on (an untrained ``Q`` gives no useful direction).
        dynamics_weight: weight of ``L_dyn``, the dynamics-consistency penalty: a one-step
            model of the observation rows is fitted on the real transitions, and ``f_theta``'s
            estimate is penalized where consecutive columns disagree with it (error relative
            to the mean squared real one-step change). 0 (the default) disables it and the
            model it needs; an extension of the paper (docs/eaq.md).
        q_guidance_through: which rows of ``f_theta``'s estimate ``L_Qtot``'s gradient reaches:
            ``"all"`` (the paper: observations, alive flags and actions) or ``"actions"``
            (observation and alive rows detached, so the guidance can only change which
            actions the generated episodes take, not move their observations towards where
            ``Q_phi`` extrapolates high; an extension). On SMAX it keeps the generated
            observations like the data's where ``"all"`` edits them, but IQL+CQL gains less
            from its episodes (docs/eaq.md, "Guidance through the actions on SMAX").
        q_conservative: alpha of a conservative (CQL-style) term in ``Q_phi``'s loss,
            ``alpha * (mean Q_phi(f_theta's estimate) - mean Q_phi(real))`` with
            ``f_theta``'s estimate detached: ``Q_phi`` learns to rate what the generator
            emits no higher than the real data, so ``L_Qtot`` cannot raise it by moving off
            the data alone. 0 (the default) is the paper's estimator; active only when
            ``q_weight > 0``; an extension (docs/eaq.md, "A conservative Q_phi").
        q_time_left: ``Q_phi`` also reads the steps left in the episode (from the padding
            row), not only the time elapsed. Off (the default) is the paper's estimator; on,
            ``L_Qtot`` can no longer raise ``Q_phi`` by making an episode look as if it had
            just begun, which is what the guidance did on SMAX 2s3z. There it halved that
            shift but left IQL+CQL's loss on the augmented data as it was; an extension
            (docs/eaq.md, "2s3z: what Q guidance changes").
        action_decoder: where a synthetic transition's actions come from: ``"generated"``
            (the paper: the arg-max of the generated action rows) or ``"inverse_dynamics"``
            (an extension: a per-agent inverse-dynamics model ``g_i(o^i_t, o^i_(t+1))``
            fitted on the real transitions alongside ``Q_phi`` relabels every transition of
            the generated observations, as MADiff decodes its plans; the generated action
            rows still carry ``L_Qtot`` in training; docs/eaq.md, "Inverse-dynamics actions").
        reward_decoder: where a synthetic transition's rewards come from: ``"generated"``
            (the paper: the generated reward rows) or ``"model"`` (an extension: a reward
            model ``r(o_t, a_t, o_(t+1))`` over every agent's rows and the state, fitted on
            the real transitions alongside ``Q_phi``, relabels the per-agent and team
            rewards of every synthetic step, so a reward follows the transition that earns
            it; the generated reward and Q-total rows still shape training and
            ``L_Qtot``; docs/eaq.md, "Reward fidelity").
        action_temperature: temperature of the soft one-hot relaxation in ``L_Qtot``.
        gamma: discount of the return-to-go (Q-total) row; 1.0 = undiscounted, as in EAQ.
        obs_deltas: give each step's observation change rows of its own and rebuild the
            synthetic observations from them (:mod:`diffusion_agents.eaq.encode`), so
            synthetic transitions follow the generated changes.
        dim: base channel width of the U-Net; ``dim_mults``: per-level width multipliers.
        attention: self-attention blocks in the U-Net (off: EAQ is a plain Conv1D U-Net).
        n_diffusion_steps: K, diffusion steps of the training schedule.
        prediction: what ``f_theta`` predicts: ``"x0"`` (the paper), ``"eps"`` or ``"v"``;
            ``L_Qtot`` and ``L_dyn`` read the x0 estimate derived from it either way.
        beta_schedule: noise schedule name understood by :mod:`diffusion_agents.diffusion`.
        sampler: ``"ddim"`` (few steps, fast) or ``"ddpm"`` (all K steps).
        sample_steps: denoising steps of the DDIM sampler.
        clip_x0: clip predicted ``tau_0`` to ``[-clip_x0, clip_x0]`` while sampling (the
            tensor is normalized to ``[-1, 1]``); ``None`` disables clipping.
        decode_ends: how a generated episode's end and its agents' deaths are read from the
            done, padding and alive rows: ``"first"`` (the paper: the first done flag over
            0.5 ends the episode, the first alive flag under 0.5 ends an agent) or ``"fit"``
            (a least-squares fit of those step functions, so one noisy column cannot cut an
            episode short; :meth:`diffusion_agents.eaq.encode.EpisodeLayout.decode`). Only
            envs whose agents die or whose episodes vary in length are affected.
        condition: what each generated episode is anchored to, by inpainting (an
            extension, docs/eaq.md "Anchored generation"): ``"none"`` (the paper: whole
            episodes from noise), ``"start"`` (the initial state, column 0 of the observation,
            alive, mask and state rows, is copied from a real episode drawn at random and held
            fixed through sampling) or ``"start_length"`` (also that episode's length and end:
            its ``terminated``, ``truncated`` and ``padding`` rows). The same entries are
            held clean in training (the denoiser learns ``p(episode | anchor)``; the loss
            skips them); the real anchors are saved with the augmenter.
        reward_norm: how the per-agent and team reward rows are mapped into ``[-1, 1]``:
            ``"limits"`` (the data's min/max, as every other continuous row) or
            ``"quantile"`` (through the rows' empirical quantiles, so frequent values such as
            a sparse reward's 0 get a wide basin and small sampling errors no longer bias
            the decoded rewards; :class:`diffusion_agents.eaq.encode.RowNormalizer`,
            docs/eaq.md "Reward fidelity").
        range_margin: a decoded sample is rejected when a continuous value lies further than
            ``range_margin * (max - min)`` outside the real data's range of that row.
        ema_decay: decay of the exponential moving average of ``f_theta`` used for sampling.
        sample_batch_size: episodes generated per sampler call.
        max_sample_rounds: give up after this many sampler calls without enough accepted
            episodes (each call draws ``sample_batch_size`` candidates).
        precision: ``"fp32"`` or ``"bf16"``: :meth:`EAQAugmenter.fit` runs the forward of
            ``f_theta``, ``Q_phi`` (and the dynamics model) under bfloat16 autocast, as
            ``MADiffConfig.precision`` does; parameters, optimizers, EMA and sampling stay
            float32. Measured in docs/eaq.md ("Mixed precision").
        seed: seeds numpy and torch for fitting and sampling.
        device: ``None`` or ``"cpu"`` (default), ``"cuda"``, ``"cuda:N"``, or ``"auto"``
            (CUDA when available); sampling noise comes from a CPU generator, so a seed
            draws the same noise on every device.
    """

    q_weight: float = 0.3
    n_steps: int = 3000
    batch_size: int = 64
    learning_rate: float = 2e-4
    q_learning_rate: float = 1e-3
    q_hidden: int = 256
    q_warmup_steps: int = 200
    dynamics_weight: float = 0.0
    q_guidance_through: str = "all"
    q_conservative: float = 0.0
    q_time_left: bool = False
    action_decoder: str = "generated"
    reward_decoder: str = "generated"
    action_temperature: float = 0.2
    gamma: float = 1.0
    obs_deltas: bool = False
    dim: int = 32
    dim_mults: tuple[int, ...] = (1, 2)
    attention: bool = False
    n_diffusion_steps: int = 100
    prediction: str = "x0"
    beta_schedule: str = "cosine"
    sampler: str = "ddim"
    sample_steps: int = 10
    clip_x0: float | None = 1.0
    decode_ends: str = "first"
    condition: str = "none"
    reward_norm: str = "limits"
    range_margin: float = 0.5
    ema_decay: float = 0.995
    sample_batch_size: int = 512
    max_sample_rounds: int = 50
    precision: str = "fp32"
    seed: int = 0
    device: str | None = None

    def __post_init__(self) -> None:
        check_device_name(self.device, "EAQConfig.device")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler={self.sampler!r}; allowed: {SAMPLERS}.")
        if self.q_weight < 0:
            raise ValueError(f"q_weight must be >= 0 (0 = EAQ without Q), got {self.q_weight}.")
        if self.q_guidance_through not in Q_GUIDANCE_THROUGH:
            raise ValueError(
                f"q_guidance_through={self.q_guidance_through!r}; allowed: {Q_GUIDANCE_THROUGH}."
            )
        if self.action_decoder not in ACTION_DECODERS:
            raise ValueError(
                f"action_decoder={self.action_decoder!r}; allowed: {ACTION_DECODERS}."
            )
        if self.reward_decoder not in REWARD_DECODERS:
            raise ValueError(
                f"reward_decoder={self.reward_decoder!r}; allowed: {REWARD_DECODERS}."
            )
        if self.decode_ends not in DECODE_ENDS:
            raise ValueError(f"decode_ends={self.decode_ends!r}; allowed: {DECODE_ENDS}.")
        if self.condition not in CONDITIONS:
            raise ValueError(f"condition={self.condition!r}; allowed: {CONDITIONS}.")
        if self.reward_norm not in REWARD_NORMS:
            raise ValueError(f"reward_norm={self.reward_norm!r}; allowed: {REWARD_NORMS}.")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction={self.prediction!r}; allowed: {PREDICTIONS}.")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r}; allowed: {PRECISIONS}.")
        for name in ("n_steps", "batch_size", "n_diffusion_steps", "sample_steps",
                     "sample_batch_size", "max_sample_rounds", "dim", "q_hidden"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.sample_steps > self.n_diffusion_steps:
            raise ValueError(
                f"sample_steps={self.sample_steps} exceeds n_diffusion_steps="
                f"{self.n_diffusion_steps}."
            )
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}.")
        if self.q_conservative < 0:
            raise ValueError(f"q_conservative must be >= 0, got {self.q_conservative}.")
        if self.dynamics_weight < 0:
            raise ValueError(f"dynamics_weight must be >= 0, got {self.dynamics_weight}.")
        if self.action_temperature <= 0:
            raise ValueError(f"action_temperature must be > 0, got {self.action_temperature}.")
        if self.range_margin < 0:
            raise ValueError(f"range_margin must be >= 0, got {self.range_margin}.")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}.")
        if not self.dim_mults:
            raise ValueError("dim_mults must name at least one level, e.g. (1, 2).")
        object.__setattr__(self, "dim_mults", tuple(int(m) for m in self.dim_mults))

    def replace(self, **changes: Any) -> EAQConfig:
        """A copy with some fields changed (``config.replace(q_weight=0.0)``)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["dim_mults"] = list(self.dim_mults)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EAQConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"Unknown EAQConfig field(s) {unknown}; known: {sorted(known)}.")
        d = dict(d)
        if "dim_mults" in d:
            d["dim_mults"] = tuple(d["dim_mults"])
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)
