"""EAQ as a Minari dataset transform: ``augment(dataset) -> new dataset``, and the reusable
:class:`EAQAugmenter` (fit once, sample many times, save/load without pickles).

>>> from diffusion_agents import eaq
>>> new = eaq.augment("mpe2/simple_spread/medium-v0", ratio=1.0)   # -> medium-eaq-v0

The output dataset holds the source's real episodes (copied unchanged, every info key kept)
followed by the accepted synthetic episodes (``infos["synthetic"]`` all True, per-agent
``rewards``/``alive`` and ``state`` from the generated tensor), in the same multi-agent
convention, so ``wrappers.load_episodes`` and stock ``minari.load_dataset`` read it. The
metadata's ``multiagent["eaq"]`` block records the source id, the counts, the acceptance rate
and every setting. The source dataset is only read; the output is written atomically by
``wrappers.minari_io.write_dataset``, so a failure leaves nothing behind.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import minari
import numpy as np
import torch
from ema_pytorch import EMA
from minari.data_collector.episode_buffer import EpisodeBuffer
from minari.dataset.minari_dataset import parse_dataset_id
from minari.storage.datasets_root_dir import get_dataset_path
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from diffusion_agents.diffusion import resolve_device, training_autocast
from diffusion_agents.eaq.config import EAQConfig
from diffusion_agents.eaq.encode import (
    REWARD_KINDS,
    DecodeResult,
    EpisodeLayout,
    RowNormalizer,
)
from diffusion_agents.eaq.model import EAQModel
from diffusion_agents.flat_training import FlatEMA, FlatParameters
from wrappers import EpisodeBatch, load_episodes
from wrappers.minari_io import (
    META_KEY,
    SOURCE_META,
    batch_to_buffers,
    derived_dataset_id,
    episode_buffers,
    write_dataset,
)

FORMAT_VERSION = 1
SUFFIX = "-eaq"


# ---------------------------------------------------------------------------------------
# Sampling results
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, repr=False)
class SampleResult:
    """Accepted synthetic episodes and the bookkeeping of how they were drawn.

    Attributes:
        batch: ``EpisodeBatch`` of the accepted episodes (``synthetic`` True).
        raw: ``(accepted, features, horizon)`` their raw (de-normalized) episode tensors.
        attempted: samples drawn; ``valid``: those that passed decoding (the last round's
            surplus included); ``rejected``: per reason (``encode.REJECT_REASONS``).
        q_total: ``(accepted,)`` the generated Q-total row at ``t = 0`` (return units).
        q_estimate: ``(accepted,)`` ``Q_phi`` at ``t = 0`` of the decoded episodes.
        seconds: wall time of the sampling.
        relabelled: with ``EAQConfig(action_decoder="inverse_dynamics")``, the share of the
            accepted episodes' discrete actions that the inverse-dynamics model changed
            (None otherwise, or without discrete agents).
        anchors: with ``EAQConfig(condition=...)``, ``(accepted,)`` the index (in the
            fitted dataset's episode order) of the real episode each synthetic one is
            anchored to; None otherwise.
    """

    batch: EpisodeBatch
    raw: np.ndarray
    attempted: int
    valid: int
    rejected: dict[str, int]
    q_total: np.ndarray
    q_estimate: np.ndarray
    seconds: float
    relabelled: float | None = None
    anchors: np.ndarray | None = None

    @property
    def num_accepted(self) -> int:
        return self.batch.num_episodes

    @property
    def acceptance_rate(self) -> float:
        """Valid samples / samples drawn (surplus valid samples of the last round count)."""
        return self.valid / max(self.attempted, 1)

    def __repr__(self) -> str:
        return (
            f"SampleResult(accepted={self.num_accepted}, attempted={self.attempted}, "
            f"acceptance={self.acceptance_rate:.3f}, rejected={self.rejected}, "
            f"mean_return={self.batch.returns.mean():.3f}, seconds={self.seconds:.1f}"
            + ("" if self.relabelled is None else f", relabelled={self.relabelled:.3f}")
            + ")"
        )


# ---------------------------------------------------------------------------------------
# The reusable augmenter
# ---------------------------------------------------------------------------------------


class EAQAugmenter:
    """Fit EAQ's episode diffusion model on a multi-agent dataset and sample from it.

    >>> aug = EAQAugmenter(EAQConfig(q_weight=1.0)).fit("mpe2/simple_spread/medium-v0")
    >>> res = aug.sample(1000)            # SampleResult; res.batch is an EpisodeBatch
    >>> aug.save("eaq_ckpt"); aug = EAQAugmenter.load("eaq_ckpt")
    """

    def __init__(self, config: EAQConfig | None = None) -> None:
        self.config = config or EAQConfig()
        self.layout: EpisodeLayout | None = None
        self.normalizer: RowNormalizer | None = None
        self.model: EAQModel | None = None
        self.ema: EMA | None = None
        self.source: dict[str, Any] = {}
        self.history: list[dict[str, float]] = []
        self.steps_done = 0
        # how the model was fitted, kept when a loaded model samples with another seed/device
        self.fit_settings: dict[str, Any] = {}
        # condition != "none": (real episodes, anchored entries) normalized anchor values
        self.anchors: torch.Tensor | None = None

    # -- fitting -------------------------------------------------------------------------------
    def _device(self) -> torch.device:
        return resolve_device(self.config.device)

    def _setup(
        self, batch: EpisodeBatch
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Layout, normalizer, model and EMA for ``batch``; returns, on the device, the
        normalized episodes ``(E, F, T)``, their real-step mask ``(E, T)`` and, with
        ``reward_decoder="model"``, the reward model's raw targets ``(E, reward rows, T)``."""
        cfg = self.config
        self.layout = EpisodeLayout.from_batch(
            batch, gamma=cfg.gamma, obs_deltas=cfg.obs_deltas
        )
        raw = self.layout.encode(batch)
        quantile_rows = None
        if cfg.reward_norm == "quantile":
            quantile_rows = np.concatenate([self.layout.rows(k) for k in REWARD_KINDS])
        self.normalizer = RowNormalizer.fit(raw, self.layout, quantile_rows)
        dev = self._device()
        torch.manual_seed(cfg.seed)
        self.model = EAQModel(layout=self.layout, config=cfg).to(dev)
        data = torch.as_tensor(self.normalizer.normalize(raw), device=dev)
        steps = np.arange(self.layout.horizon)[None, :] < batch.lengths[:, None]
        step_mask = torch.as_tensor(steps, device=dev)
        inv, rew = self.model.inv, self.model.rew
        rewards = None if rew is None else torch.as_tensor(raw[:, rew.out_rows], device=dev)
        if inv is not None:
            inv.fit_scale(data, step_mask)
        if rew is not None:
            rew.fit_scale(data, rewards, step_mask)
        self.source = {
            "dataset_id": batch.dataset_id,
            "num_episodes": batch.num_episodes,
            "ref_min_score": batch.ref_min_score,
            "ref_max_score": batch.ref_max_score,
            "metadata": batch.metadata,
            "mean_return": float(batch.returns.mean()),
        }
        return data, step_mask, rewards

    def fitter(
        self,
        dataset: minari.MinariDataset | str | EpisodeBatch,
        *,
        show_progress: bool = True,
    ) -> Iterator[tuple[int, dict[str, float]]]:
        """Train ``f_theta`` and ``Q_phi`` for ``config.n_steps`` steps, yielding
        ``(step, metrics)`` after each (``fit`` is ``list(fitter(...))``)."""
        batch = dataset if isinstance(dataset, EpisodeBatch) else load_episodes(dataset)
        _check_multiagent(batch)
        cfg = self.config
        # rewards: the reward model's targets, the real raw rewards (reward_decoder="model")
        data, step_mask, rewards = self._setup(batch)
        dev = self._device()
        self.fit_settings = {"seed": cfg.seed, "device": str(dev)}
        if self.model.anchor_mask is not None:
            self.anchors = data[:, self.model.anchor_mask].cpu().contiguous()
        model = self.model
        # f_theta, and Q_phi with the dynamics models (when used), which learn from the real
        # data only: each as one flat tensor, so Adam and the EMA run a few kernels per step
        flat = FlatParameters(model.net)
        aux_models = [m for m in (model.q, model.dyn, model.inv, model.rew) if m is not None]
        aux = FlatParameters(nn.ModuleList(aux_models))
        self.ema = FlatEMA(model.net, flat, beta=cfg.ema_decay, update_after_step=0,
                           update_every=1)
        # the per-tensor Adam kernel on the flat tensor gives the same bits as Adam over the
        # separate parameters (checked); fused=True rounds differently and was no faster here
        opt = torch.optim.Adam([flat.param], lr=cfg.learning_rate, foreach=False)
        q_opt = torch.optim.Adam([aux.param], lr=cfg.q_learning_rate, foreach=False)
        gen = torch.Generator().manual_seed(cfg.seed)
        E = data.shape[0]
        autocast = training_autocast(cfg.precision, dev)
        bar = tqdm(range(cfg.n_steps), desc="EAQ fit", disable=not show_progress)
        for step in bar:
            idx = torch.randint(0, E, (cfg.batch_size,), generator=gen).to(dev)
            lam = cfg.q_weight if step >= cfg.q_warmup_steps else 0.0
            with autocast:
                losses = model.losses(
                    data[idx], step_mask[idx], q_weight=lam,
                    temperature=cfg.action_temperature, generator=gen,
                    # the dynamics model, like Q_phi, first learns alone from the real data
                    dynamics_weight=cfg.dynamics_weight if step >= cfg.q_warmup_steps else 0.0,
                    reward_targets=None if rewards is None else rewards[idx],
                )
            flat.zero_grad()
            aux.zero_grad()
            aux_fit = sum(losses.get(k, 0.0) for k in ("dyn_fit", "inv_fit", "rew_fit"))
            (losses["model"] + losses["q_fit"] + aux_fit).backward()
            # q_fit only reaches Q_phi; L_Qtot only reaches f_theta (Q_phi frozen in it).
            opt.step()
            q_opt.step()
            self.ema.update()
            self.steps_done += 1
            metrics = {k: float(v.detach()) for k, v in losses.items()}
            metrics["q_weight"] = lam
            self.history.append(metrics)
            if step % 25 == 0 or step == cfg.n_steps - 1:
                bar.set_postfix(
                    diff=f"{metrics['diffusion']:.4f}",
                    q_fit=f"{metrics['q_fit']:.4f}",
                    q=f"{-metrics['q_guidance']:.3f}",
                )
            yield step, metrics

    def fit(
        self,
        dataset: minari.MinariDataset | str | EpisodeBatch,
        *,
        show_progress: bool = True,
    ) -> EAQAugmenter:
        """Train on ``dataset`` (a multi-agent Minari dataset, its id, or an EpisodeBatch)."""
        for _ in self.fitter(dataset, show_progress=show_progress):
            pass
        return self

    # -- sampling -----------------------------------------------------------------------------
    def _require_fit(self) -> None:
        if self.model is None:
            raise RuntimeError("EAQAugmenter is not fitted: call fit(dataset) or load(path).")

    @torch.no_grad()
    def q_estimate(self, raw: np.ndarray) -> np.ndarray:
        """``Q_phi`` at ``t = 0`` of raw episode tensors ``(batch, F, H)``, in return units."""
        self._require_fit()
        x = torch.as_tensor(self.normalizer.normalize(raw), device=self._device())
        q = self.model.q(x)[:, 0].cpu().numpy()
        r = self.model.q_row
        return (q + 1.0) * 0.5 * self.normalizer.span[r] + self.normalizer.low[r]

    @torch.no_grad()
    def relabel_actions(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Normalized samples ``(batch, F, H)`` with their actions decoded by the fitted
        inverse-dynamics model (``action_decoder="inverse_dynamics"``; unchanged otherwise).

        The model reads the observations as decoding will build them (from the delta rows
        with ``obs_deltas``). Returns the tensor and the per-column counts of relabelled and
        changed discrete actions (None without the model).
        """
        inv = self.model.inv
        if inv is None or self.config.action_decoder != "inverse_dynamics":
            return x, None, None
        return inv.relabel(x, self._seen(x))

    @torch.no_grad()
    def relabel_rewards(self, raw: np.ndarray, x: torch.Tensor) -> np.ndarray:
        """Raw samples ``(batch, F, H)`` with the per-agent and team rewards of every
        transition predicted by the fitted reward model from the normalized samples ``x``
        (``reward_decoder="model"``; unchanged otherwise). The model reads the observations
        as decoding will build them; the generated Q-total row is left as generated."""
        rew = self.model.rew
        if rew is None or self.config.reward_decoder != "model":
            return raw
        raw = raw.copy()
        raw[:, rew.out_rows, :-1] = rew.relabel(self._seen(x)).cpu().numpy()
        return raw

    def _seen(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized samples ``x`` as decoding reads them: with ``obs_deltas`` the
        observation rows rebuilt from the generated changes; ``x`` itself otherwise."""
        seen = x
        if self.layout.obs_deltas:
            raw = self.normalizer.unnormalize(x.cpu().numpy())
            rebuilt = raw.copy()
            for i in range(len(self.layout.agents)):
                obs = self.layout.rows("obs", i)
                delta = self.layout.rows("obs_delta", i)
                alive = raw[:, self.layout.rows("alive", i)[0], :] > 0.5
                o = self.layout.rebuild_obs(
                    np.swapaxes(raw[:, obs], 1, 2), np.swapaxes(raw[:, delta], 1, 2), alive
                )
                rebuilt[:, obs] = np.swapaxes(o, 1, 2)
            seen = torch.as_tensor(self.normalizer.normalize(rebuilt), device=x.device)
        return seen

    def decode(self, raw: np.ndarray, *, ends: str | None = None) -> DecodeResult:
        """Decode raw tensors with this dataset's limits and the config's margin; ``ends``
        overrides ``config.decode_ends`` (to compare the rules on the same candidates)."""
        self._require_fit()
        return self.layout.decode(
            raw,
            limits=(self.normalizer.low, self.normalizer.high),
            range_margin=self.config.range_margin,
            ends=self.config.decode_ends if ends is None else ends,
            dataset_id=None,
            ref_scores=(self.source.get("ref_min_score"), self.source.get("ref_max_score")),
            metadata=self.source.get("metadata") or {},
        )

    def _generator(self, seed: int | None) -> torch.Generator:
        """The CPU generator of sampling noise: ``seed``, or the config's seed + 1."""
        return torch.Generator().manual_seed(self.config.seed + 1 if seed is None else seed)

    @torch.no_grad()
    def _draw_round(
        self, gen: torch.Generator
    ) -> tuple[np.ndarray, torch.Tensor | None, torch.Tensor | None, np.ndarray | None]:
        """One sampler call: ``sample_batch_size`` raw candidates ``(batch, features,
        horizon)`` in data units, before decoding, with the relabelling counts of
        :meth:`relabel_actions` and the real episode each candidate is anchored to."""
        cfg = self.config
        net = self.ema.ema_model
        net.eval()
        shape = (cfg.sample_batch_size, self.layout.num_features, self.layout.horizon)
        inpaint = pick = None
        known = self.model.anchor_mask
        if known is not None:
            # each candidate is anchored to a real episode drawn at random (with replacement)
            pick = torch.randint(0, self.anchors.shape[0], (shape[0],), generator=gen)
            values = torch.zeros(shape)
            values[:, known.cpu()] = self.anchors[pick]
            inpaint = (known[None], values.to(self._device()))
        x = self.model.diffusion.sample(
            lambda x_t, t: net(x_t, t),
            shape,
            steps=cfg.sample_steps if cfg.sampler == "ddim" else None,
            sampler=cfg.sampler,
            inpaint=inpaint,
            generator=gen,
            device=self._device(),
        )
        x, count, change = self.relabel_actions(x)
        pick = None if pick is None else pick.numpy()
        raw = self.relabel_rewards(self.normalizer.unnormalize(x.cpu().numpy()), x)
        return raw, count, change, pick

    def draw(self, num: int, *, seed: int | None = None) -> np.ndarray:
        """``num`` raw candidates ``(num, features, horizon)`` in data units, undecoded.

        The same noise as :meth:`sample` with the same seed draws, so the candidates can be
        decoded several ways (``decode(raw, ends="fit")``) and compared.
        """
        self._require_fit()
        if num < 1:
            raise ValueError(f"num must be >= 1, got {num}.")
        gen = self._generator(seed)
        out: list[np.ndarray] = []
        while sum(len(r) for r in out) < num:
            out.append(self._draw_round(gen)[0])
        return np.concatenate(out)[:num]

    @torch.no_grad()
    def sample(
        self,
        num_episodes: int,
        *,
        seed: int | None = None,
        show_progress: bool = True,
    ) -> SampleResult:
        """Draw candidates until ``num_episodes`` are accepted (or ``max_sample_rounds``).

        Raises:
            RuntimeError: when fewer than ``num_episodes`` pass after all rounds.
        """
        self._require_fit()
        if num_episodes < 1:
            raise ValueError(f"num_episodes must be >= 1, got {num_episodes}.")
        cfg = self.config
        gen = self._generator(seed)
        kept: list[np.ndarray] = []
        picks: list[np.ndarray] = []
        reasons: Counter[str] = Counter()
        attempted = accepted = valid = 0
        relabelled = changed = 0
        t0 = time.perf_counter()
        bar = tqdm(total=num_episodes, desc="EAQ sample", disable=not show_progress)
        for _ in range(cfg.max_sample_rounds):
            raw, count, change, pick = self._draw_round(gen)
            res = self.decode(raw)
            attempted += raw.shape[0]
            valid += res.num_accepted
            reasons.update(res.reasons)
            take = raw[res.accepted][: num_episodes - accepted]
            if count is not None and take.shape[0]:
                # count the steps of the accepted episodes only (not padding, not rejects)
                rows = np.flatnonzero(res.accepted)[: take.shape[0]]
                steps = np.arange(raw.shape[2] - 1)[None, :] < res.batch.lengths[: len(rows), None]
                relabelled += int((count.cpu().numpy()[rows] * steps).sum())
                changed += int((change.cpu().numpy()[rows] * steps).sum())
            kept.append(take)
            if pick is not None:
                picks.append(pick[res.accepted][: take.shape[0]])
            accepted += take.shape[0]
            bar.update(take.shape[0])
            bar.set_postfix(acceptance=f"{valid / attempted:.2f}")
            if accepted >= num_episodes:
                break
        bar.close()
        if accepted < num_episodes:
            raise RuntimeError(
                f"EAQ accepted only {accepted} of {attempted} sampled episodes "
                f"(rejected: {dict(reasons)}); wanted {num_episodes}. Train longer "
                "(n_steps), raise range_margin or max_sample_rounds."
            )
        raw = np.concatenate(kept)
        res = self.decode(raw)
        if res.num_accepted != raw.shape[0]:  # pragma: no cover - decode is deterministic
            raise RuntimeError("Re-decoding accepted samples rejected some; please report.")
        return SampleResult(
            batch=res.batch,
            raw=raw,
            attempted=attempted,
            valid=valid,
            rejected=dict(reasons),
            q_total=res.q_total,
            q_estimate=self.q_estimate(raw),
            seconds=time.perf_counter() - t0,
            relabelled=changed / relabelled if relabelled else None,
            anchors=np.concatenate(picks) if picks else None,
        )

    # -- save / load ------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``path/`` with ``weights.safetensors`` and ``config.json`` (atomically)."""
        self._require_fit()
        path = Path(path)
        if path.exists():
            raise FileExistsError(f"{path} exists; choose a new checkpoint folder.")
        tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
        tmp.mkdir(parents=True)
        try:
            # own copies: after fit the parameters are views of one flat storage each
            # (FlatParameters), which safetensors may refuse as shared memory
            tensors = {f"model.{k}": v.detach().to("cpu", copy=True)
                       for k, v in self.model.state_dict().items()}
            tensors.update({f"ema.{k}": v.detach().to("cpu", copy=True)
                            for k, v in self.ema.ema_model.state_dict().items()})
            if self.anchors is not None:
                tensors["anchors"] = self.anchors.detach().cpu().contiguous()
            save_file(tensors, str(tmp / "weights.safetensors"))
            meta = {
                "format": "diffusion-agents/eaq",
                "format_version": FORMAT_VERSION,
                "config": self.config.to_dict(),
                "layout": self.layout.to_dict(),
                "normalizer": self.normalizer.to_dict(),
                "source": self.source,
                "steps_done": self.steps_done,
                "fit_settings": self.fit_settings,
            }
            (tmp / "config.json").write_text(json.dumps(meta, indent=1, default=_json_default))
            os.rename(tmp, path)
        except BaseException:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str | None = None) -> EAQAugmenter:
        """Rebuild an augmenter saved by :meth:`save` (no unpickling) on ``device``: the CPU
        unless asked (``"cuda"``, ``"auto"``, ...), wherever it was fitted."""
        path = Path(path)
        cfg_file, w_file = path / "config.json", path / "weights.safetensors"
        for f in (cfg_file, w_file):
            if not f.is_file():
                raise FileNotFoundError(f"EAQ checkpoint {path} lacks {f.name}.")
        try:
            meta = json.loads(cfg_file.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"EAQ checkpoint {cfg_file} is not valid JSON: {exc}") from None
        if meta.get("format") != "diffusion-agents/eaq" or meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{cfg_file}: format {meta.get('format')!r} version {meta.get('format_version')!r} "
                f"is not an EAQ checkpoint of version {FORMAT_VERSION}."
            )
        config = EAQConfig.from_dict(meta["config"]).replace(device=device)
        self = cls(config)
        self.layout = EpisodeLayout.from_dict(meta["layout"])
        self.normalizer = RowNormalizer.from_dict(meta["normalizer"])
        self.source = meta.get("source", {})
        self.steps_done = int(meta.get("steps_done", 0))
        self.fit_settings = meta.get("fit_settings") or {
            "seed": meta["config"].get("seed"), "device": meta["config"].get("device")
        }
        self.model = EAQModel(layout=self.layout, config=config)
        self.ema = EMA(self.model.net, beta=config.ema_decay, update_after_step=0, update_every=1)
        tensors = load_file(str(w_file))
        try:
            self.model.load_state_dict(
                {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True
            )
            self.ema.ema_model.load_state_dict(
                {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}, strict=True
            )
        except RuntimeError as exc:
            raise ValueError(f"EAQ checkpoint {w_file} does not match its config: {exc}") from None
        if self.model.anchor_mask is not None:
            anchors = tensors.get("anchors")
            width = int(self.model.anchor_mask.sum())
            if anchors is None or anchors.ndim != 2 or anchors.shape[1] != width:
                raise ValueError(
                    f"EAQ checkpoint {w_file} was saved with condition={config.condition!r} but "
                    f"holds no anchors of width {width} (got "
                    f"{None if anchors is None else tuple(anchors.shape)})."
                )
            self.anchors = anchors
        self.model.to(self._device())
        self.ema.to(self._device())
        return self


def _json_default(x: Any) -> Any:
    if isinstance(x, (np.generic,)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (set, tuple)):
        return list(x)
    return str(x)


# ---------------------------------------------------------------------------------------
# augment(): the dataset transform
# ---------------------------------------------------------------------------------------


def default_dataset_id(source_id: str) -> str:
    """``namespace/name-vN`` -> ``namespace/name-eaq-vN`` (e.g. ``.../medium-eaq-v0``)."""
    return derived_dataset_id(source_id, SUFFIX)


def _check_target(dataset_id: str) -> None:
    try:
        parse_dataset_id(dataset_id)
    except Exception as exc:
        raise ValueError(
            f"Malformed dataset id {dataset_id!r} ({exc}); ids look like "
            "'namespace/env/name-v0', e.g. 'mpe2/simple_spread/medium-eaq-v0'."
        ) from None
    if get_dataset_path(dataset_id).exists():
        raise FileExistsError(
            f"A dataset with id {dataset_id!r} already exists at {get_dataset_path(dataset_id)}; "
            "pass another new_dataset_id or delete it with `minari delete`."
        )


def _check_multiagent(batch: EpisodeBatch) -> None:
    if batch.num_agents < 2:
        raise ValueError(
            f"Dataset {batch.dataset_id!r} has a single agent {list(batch.agents)}; EAQ "
            "(Q-total over a team) needs a multi-agent dataset with >= 2 agents."
        )


def augment(
    dataset: minari.MinariDataset | str,
    *,
    num_episodes: int | None = None,
    ratio: float | None = None,
    q_weight: float | None = None,
    n_steps: int | None = None,
    new_dataset_id: str | None = None,
    seed: int | None = None,
    synthetic_only: bool = False,
    config: EAQConfig | None = None,
    augmenter: EAQAugmenter | None = None,
    show_progress: bool = True,
) -> minari.MinariDataset:
    """Augment a multi-agent Minari dataset with EAQ; return the **new** dataset.

    Args:
        dataset: a multi-agent Minari dataset (``docs/convention.md``) or its id.
        num_episodes: synthetic episodes to add; or ``ratio`` (synthetic per real episode,
            default 1.0). Not both.
        q_weight: lambda of ``L_Qtot`` (0 = EAQ without Q); overrides ``config``.
        n_steps: training gradient steps; overrides ``config``.
        new_dataset_id: id of the output; default: the source id with ``-eaq`` appended
            to the name (``mpe2/simple_spread/medium-v0`` -> ``.../medium-eaq-v0``).
        seed: seeds fitting and sampling; overrides ``config.seed``.
        synthetic_only: write only the synthetic episodes.
        config: :class:`EAQConfig` (defaults otherwise).
        augmenter: an already fitted :class:`EAQAugmenter` to sample from (no training).
    Raises:
        wrappers.DatasetConventionError: the input is not a multi-agent dataset.
        ValueError: a single-agent dataset, bad arguments; FileExistsError: the target exists.
    """
    ds = dataset if isinstance(dataset, minari.MinariDataset) else minari.load_dataset(str(dataset))
    source_id = ds.spec.dataset_id
    target = new_dataset_id or default_dataset_id(source_id)
    if target == source_id:
        raise ValueError(f"new_dataset_id {target!r} is the source id; the source is never modified.")
    _check_target(target)
    if num_episodes is not None and ratio is not None:
        raise ValueError("Pass num_episodes or ratio, not both.")
    batch = load_episodes(ds)
    _check_multiagent(batch)
    if num_episodes is None:
        r = 1.0 if ratio is None else float(ratio)
        if r <= 0:
            raise ValueError(f"ratio must be > 0, got {ratio}.")
        num_episodes = max(1, int(round(r * batch.num_episodes)))
    elif num_episodes < 1:
        raise ValueError(f"num_episodes must be >= 1, got {num_episodes}.")

    if augmenter is None:
        cfg = config or EAQConfig()
        changes = {k: v for k, v in (("q_weight", q_weight), ("n_steps", n_steps), ("seed", seed)) if v is not None}
        cfg = cfg.replace(**changes)
        augmenter = EAQAugmenter(cfg).fit(batch, show_progress=show_progress)
        fit_steps = cfg.n_steps
    else:
        augmenter._require_fit()
        if augmenter.layout.agents != batch.agents:
            raise ValueError(
                f"The augmenter was fitted on agents {list(augmenter.layout.agents)}, the "
                f"dataset has {list(batch.agents)}."
            )
        cfg = augmenter.config
        fit_steps = augmenter.steps_done
    result = augmenter.sample(num_episodes, seed=seed, show_progress=show_progress)
    syn = result.batch

    src_meta = ds.storage.metadata
    ma = copy.deepcopy(src_meta.get(META_KEY, {}))
    eaq_meta = {
        "source_dataset_id": source_id,
        "num_real_episodes": 0 if synthetic_only else batch.num_episodes,
        "num_synthetic_episodes": syn.num_episodes,
        "synthetic_only": bool(synthetic_only),
        "attempted_samples": result.attempted,
        "acceptance_rate": result.acceptance_rate,
        "rejected": result.rejected,
        "q_weight": cfg.q_weight,
        "fit_steps": fit_steps,
        "settings": cfg.to_dict(),
        "real_mean_return": float(batch.returns.mean()),
        "synthetic_mean_return": float(syn.returns.mean()),
        "synthetic_mean_q_estimate": float(result.q_estimate.mean()),
        "actions_relabelled": result.relabelled,
        # condition != "none": per synthetic episode, the index of the real episode of the
        # fitted dataset (settings' source, "fitted_on") whose start (and length) it keeps
        "anchor_episodes": None if result.anchors is None else result.anchors.tolist(),
        "fitted_on": augmenter.source.get("dataset_id"),
        # the fit's own seed and device; "settings" holds the sampling ones (they differ
        # when a saved model samples with another seed, e.g. `augment --from-model --seed`)
        "fit_settings": augmenter.fit_settings,
    }
    ma["eaq"] = eaq_meta
    metadata: dict[str, Any] = {k: src_meta[k] for k in SOURCE_META if k in src_meta}
    metadata[META_KEY] = ma
    metadata["algorithm_name"] = f"EAQ(q_weight={cfg.q_weight}) on {src_meta.get('algorithm_name', source_id)}"
    metadata["description"] = (
        f"{'' if synthetic_only else f'{batch.num_episodes} real episodes of {source_id} + '}"
        f"{syn.num_episodes} EAQ synthetic episodes (q_weight={cfg.q_weight}, "
        f"acceptance {result.acceptance_rate:.3f})."
    )
    metadata = json.loads(json.dumps(metadata, default=_json_default))
    if "author" in metadata:  # Minari wants a set of names
        a = metadata["author"]
        metadata["author"] = set(a) if isinstance(a, list) else {str(a)}

    def episodes() -> Iterator[EpisodeBuffer]:
        if not synthetic_only:
            yield from episode_buffers(ds)
        yield from batch_to_buffers(
            syn,
            extra_infos=lambda e: {"synthetic": np.ones(int(syn.lengths[e]) + 1, bool)},
        )

    return write_dataset(
        target,
        episodes(),
        observation_space=ds.observation_space,
        action_space=ds.action_space,
        metadata=metadata,
        env_spec=ds.env_spec,
        num_episodes=syn.num_episodes + (0 if synthetic_only else batch.num_episodes),
        show_progress=show_progress,
    )
