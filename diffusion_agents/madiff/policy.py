"""``MADiffPolicy``: a trained MADiff model as a drop-in PettingZoo parallel policy.

::

    policy = MADiffPolicy.train(dataset, MADiffConfig(...), seed=0, show_progress=True,
                                checkpoint_path="runs/madiff.ckpt")   # resumes if present
    obs, infos = env.reset(seed=0)
    policy.reset(seed=0)
    while env.agents:
        actions = policy.act(obs)            # exactly the agents in `obs`
        teammates = policy.teammate_predictions()   # {i: {j: (horizon, obs_dim_j)}}
        obs, rew, term, trunc, infos = env.step(actions)
    policy.save("madiff.ckpt"); policy = MADiffPolicy.load("madiff.ckpt")
    actions, _ = policy.predict(obs, deterministic=True)           # SB3 style

Decentralized mode (default): for each agent ``i`` present, one window is sampled with only
``i``'s own history and current observation inpainted; agent ``i``'s action is decoded from
its own predicted next observation, and the same sample's predictions of the other agents are
``i``'s teammate model. All agents' samples (and both guidance terms) run as one batch, one
forward pass per sampling step. Each agent's starting noise is drawn for every possible agent
slot at each step, so agent ``i``'s action never depends on what the others observe.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from einops import rearrange
from gymnasium import spaces
from tqdm.auto import tqdm

from diffusion_agents.checkpoint import (
    CheckpointError,
    deserialize_spaces,
    load_checkpoint,
    save_checkpoint,
    serialize_spaces,
)
from diffusion_agents.diffusion import resolve_device
from diffusion_agents.madiff.config import MADiffConfig
from diffusion_agents.madiff.model import MADiffModel, known_mask
from diffusion_agents.madiff.training import TrainingRun
from wrappers.spaces import core_obs_space, flatten_obs, has_action_mask

KIND = "madiff-policy"
VERSION = 1


def _saved_config(meta: dict[str, Any]) -> MADiffConfig:
    """The config a checkpoint was trained with. Files written before ``inverse_steps``
    existed trained the inverse dynamics for all steps: read them as ``inverse_steps=None``,
    not as today's default."""
    data = dict(meta["config"])
    data.setdefault("inverse_steps", None)
    return MADiffConfig.from_dict(data)


def _load_batch(dataset: Any):
    from wrappers import EpisodeBatch, load_episodes

    if isinstance(dataset, EpisodeBatch):
        return dataset
    return load_episodes(dataset)


class MADiffPolicy:
    """A MADiff policy over fixed agents (see the module docstring).

    Build it with :meth:`train` or :meth:`load`; the constructor is internal.
    """

    def __init__(
        self,
        model: MADiffModel,
        *,
        agents: tuple[str, ...],
        observation_spaces: dict[str, spaces.Space],
        action_spaces: dict[str, spaces.Space],
        info: dict[str, Any] | None = None,
        seed: int | None = None,
    ) -> None:
        self.model = model.eval()
        self.config: MADiffConfig = model.config
        self.agents = tuple(agents)
        self.observation_spaces = dict(observation_spaces)
        self.action_spaces = dict(action_spaces)
        self.info = dict(info or {})
        self._index = {a: i for i, a in enumerate(self.agents)}
        self.batched_guidance = True
        self.traced = True
        self._planners: dict[tuple, Any] = {}
        self.reset(seed=self.config.seed if seed is None else seed)

    # -- construction -----------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.model.obs_low.device

    def to(self, device: str | torch.device) -> MADiffPolicy:
        self.model.to(resolve_device(device))
        self._planners.clear()
        self.reset()
        return self

    @staticmethod
    def _model_dims(batch) -> dict[str, Any]:
        """The sizes :meth:`_build_model` needs, from an ``EpisodeBatch`` (also stored in a
        checkpoint's info)."""
        return {
            "obs_dims": list(batch.obs_dims),
            "act_dims": list(batch.act_dims),
            "n_actions": list(batch.n_actions),
            "max_t": int(batch.horizon),
        }

    @classmethod
    def _build_model(
        cls, config: MADiffConfig, dims: dict[str, Any], seed: int
    ) -> MADiffModel:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return MADiffModel(
                config,
                obs_dims=tuple(dims["obs_dims"]),
                act_dims=tuple(dims["act_dims"]),
                n_actions=tuple(dims["n_actions"]),
                max_t=int(dims["max_t"]),
            )

    @classmethod
    def train(
        cls,
        dataset: Any,
        config: MADiffConfig | None = None,
        *,
        seed: int | None = None,
        show_progress: bool = True,
        checkpoint_path: str | os.PathLike | None = None,
        resume: bool = True,
        callback: Callable[[int, dict[str, float]], bool | None] | None = None,
    ) -> MADiffPolicy:
        """Train on a dataset of the multi-agent Minari convention.

        Args:
            dataset: a ``minari.MinariDataset``, a local dataset id, or an ``EpisodeBatch``.
            config: a :class:`MADiffConfig` (defaults when None).
            seed: overrides ``config.seed``.
            checkpoint_path: write a resumable checkpoint there every
                ``config.checkpoint_every`` steps and at the end; if the file exists and
                ``resume``, training continues from it (same config up to ``n_steps``,
                same dataset).
            callback: ``callback(step, metrics)``; returning True stops training early.
        """
        config = config or MADiffConfig()
        if seed is not None:
            config = config.replace(seed=int(seed))
        device = resolve_device(config.device)
        batch = _load_batch(dataset)
        dims = cls._model_dims(batch)
        for a in batch.agents:
            space = batch.action_spaces[a]
            if not isinstance(
                space,
                (spaces.Discrete, spaces.Box, spaces.MultiDiscrete, spaces.MultiBinary),
            ):
                raise ValueError(
                    f"Agent {a!r} has action space {space}; MADiff supports Discrete, Box, "
                    "MultiDiscrete and MultiBinary."
                )
        model = cls._build_model(config, dims, config.seed).to(device)
        run = TrainingRun.start(model, batch, config)
        optimizer, ema, generator = run.optimizer, run.ema, run.generator
        start = 0
        info = {
            "dataset_id": batch.dataset_id,
            "num_episodes": batch.num_episodes,
            "ref_min_score": batch.ref_min_score,
            "ref_max_score": batch.ref_max_score,
            "env_id": batch.metadata.get("env_id"),
            "env_kwargs": batch.metadata.get("env_kwargs"),
            **dims,
        }
        ckpt = Path(checkpoint_path) if checkpoint_path is not None else None
        if ckpt is not None and ckpt.exists() and resume:
            start = cls._restore_training(
                ckpt, config, info, model, ema, optimizer, generator
            )

        def policy_now() -> MADiffPolicy:
            return cls(
                ema.ema_model,
                agents=batch.agents,
                observation_spaces=batch.observation_spaces,
                action_spaces=batch.action_spaces,
                info={**info, "train_steps": step},
                seed=config.seed,
            )

        step = start
        bar = tqdm(
            total=config.n_steps,
            initial=start,
            desc="MADiff",
            disable=not show_progress,
        )
        for step, metrics in run.steps(start):
            bar.update(1)
            if step % 50 == 0 or step == config.n_steps:
                bar.set_postfix(
                    loss=f"{metrics['loss']:.4f}", inv=f"{metrics['inv_loss']:.4f}"
                )
            stop = bool(callback(step, metrics)) if callback is not None else False
            if ckpt is not None and (step % config.checkpoint_every == 0 or stop):
                policy_now()._save(ckpt, training=(model, optimizer, generator, ema))
            if stop:
                break
        bar.close()
        policy = policy_now()
        if ckpt is not None:
            policy._save(ckpt, training=(model, optimizer, generator, ema))
        return policy

    @staticmethod
    def _restore_training(ckpt, config, info, model, ema, optimizer, generator) -> int:
        tensors, meta = load_checkpoint(ckpt, kind=KIND, versions=(VERSION,))
        if "train_step" not in meta:
            raise CheckpointError(
                f"{str(ckpt)!r} is a policy without training state; pass resume=False or "
                "another checkpoint_path to start over."
            )
        saved = _saved_config(meta).replace(
            n_steps=config.n_steps, compile=config.compile, precision=config.precision
        )
        if saved != config:
            diff = {
                k: (v, getattr(config, k))
                for k, v in saved.to_dict().items()
                if config.to_dict()[k] != v
            }
            raise ValueError(
                f"Cannot resume from {str(ckpt)!r}: its config differs in {diff} "
                "(saved, requested). Use another checkpoint_path or resume=False."
            )
        if meta["info"].get("dataset_id") != info["dataset_id"]:
            raise ValueError(
                f"Cannot resume from {str(ckpt)!r}: it was trained on "
                f"{meta['info'].get('dataset_id')!r}, not {info['dataset_id']!r}."
            )
        model.load_state_dict(_strip(tensors, "train.model."))
        ema.ema_model.load_state_dict(_strip(tensors, "model."))
        ema_state = _strip(tensors, "train.ema.")
        ema.initted.copy_(ema_state["initted"])
        ema.step.copy_(ema_state["step"])
        opt_state = {"state": {}, "param_groups": meta["optimizer_groups"]}
        for key, value in _strip(tensors, "train.opt.").items():
            idx, name = key.split(".", 1)
            opt_state["state"].setdefault(int(idx), {})[name] = value
        try:
            optimizer.load_state_dict(opt_state)
        except ValueError as exc:  # e.g. a checkpoint from before the flat parameters
            raise CheckpointError(
                f"Cannot resume from {str(ckpt)!r}: its optimizer state does not fit this "
                f"version's optimizer ({exc}); pass resume=False or another checkpoint_path."
            ) from None
        generator.set_state(tensors["train.rng"])
        return int(meta["train_step"])

    # -- acting -----------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        """Start a new episode (clears histories); ``seed`` reseeds the sampling noise."""
        if seed is not None or not hasattr(self, "_generator"):
            self._generator = torch.Generator().manual_seed(
                int(self.config.seed if seed is None else seed)
            )
        a, d = len(self.agents), self.model.obs_dim
        self._hist = torch.zeros(a, self.config.history + 1, d, device=self.device)
        self._seen = np.zeros(a, bool)
        self._t = 0
        self._last: dict[str, Any] | None = None
        self._zero_obs = self.model.normalize_obs(torch.zeros(a, d, device=self.device))

    def _check_obs(
        self, obs: Any
    ) -> tuple[list[int], torch.Tensor, list[np.ndarray | None]]:
        if not isinstance(obs, dict):
            raise TypeError(
                f"act() takes the PettingZoo observation dict {{agent: obs}}, got "
                f"{type(obs).__name__}."
            )
        if not obs:
            raise ValueError(
                f"act() got no observations: pass one for each agent present "
                f"(known agents: {list(self.agents)})."
            )
        unknown = [a for a in obs if a not in self._index]
        if unknown:
            raise KeyError(
                f"act() got unknown agent(s) {unknown}; this policy was trained on "
                f"{list(self.agents)}."
            )
        present = sorted(self._index[a] for a in obs)
        rows = np.zeros((len(present), self.model.obs_dim), np.float32)
        masks: list[np.ndarray | None] = []
        for r, i in enumerate(present):
            agent = self.agents[i]
            space = self.observation_spaces[agent]
            o = obs[agent]
            if o is None:
                raise ValueError(f"Agent {agent!r}: observation is missing (None).")
            if has_action_mask(space):
                if (
                    not isinstance(o, dict)
                    or "observation" not in o
                    or "action_mask" not in o
                ):
                    raise ValueError(
                        f"Agent {agent!r}: expected a dict with 'observation' and "
                        f"'action_mask' (its space is {space}), got {type(o).__name__}."
                    )
                m = np.asarray(o["action_mask"])
                n = int(space.spaces["action_mask"].shape[0])
                if m.shape != (n,):
                    raise ValueError(
                        f"Agent {agent!r}: action_mask has shape {m.shape}, expected ({n},)."
                    )
                masks.append(m.astype(bool))
                part = o["observation"]
            else:
                masks.append(None)
                part = o
            core = core_obs_space(space)
            arr = np.asarray(part)
            if arr.dtype.kind not in "fiub":
                raise TypeError(
                    f"Agent {agent!r}: observation has dtype {arr.dtype}, expected a real "
                    f"numeric array for space {core}."
                )
            if isinstance(core, spaces.Box) and arr.shape != core.shape:
                raise ValueError(
                    f"Agent {agent!r}: observation has shape {arr.shape}, expected "
                    f"{core.shape}."
                )
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                bad = "NaN" if np.isnan(arr).any() else "inf"
                raise ValueError(
                    f"Agent {agent!r}: observation contains {bad} at index "
                    f"{np.argwhere(~np.isfinite(arr))[0].tolist()}."
                )
            try:
                flat = flatten_obs(space, o)
            except Exception as exc:  # non-Box spaces: the space says what is wrong
                raise ValueError(
                    f"Agent {agent!r}: observation does not fit {core}: {exc}"
                ) from None
            rows[r, : flat.shape[0]] = flat
        return present, torch.as_tensor(rows, device=self.device), masks

    @torch.inference_mode()
    def act(
        self, obs: dict[str, Any], *, deterministic: bool | None = None
    ) -> dict[str, Any]:
        """Actions ``{agent: action}`` for exactly the agents in ``obs``.

        ``deterministic``: arg-max (True) or sampled (False) discrete actions; None follows
        ``config.sample_actions`` (arg-max by default).

        Raises one clear error naming the agent for unknown agents, missing observations,
        wrong shapes or dtypes, NaN/inf values and malformed action masks.
        """
        present, rows, masks = self._check_obs(obs)
        cfg, model = self.config, self.model
        h, a, d, window = cfg.history, len(self.agents), model.obs_dim, cfg.window
        idx = torch.as_tensor(present, device=self.device)
        cur = self._zero_obs.clone()
        cur[idx] = model.normalize_obs(rows[:, None, :].expand(-1, a, -1))[
            torch.arange(len(present), device=self.device), idx
        ]
        # histories: first sight fills the history with the current observation
        new = [i for i in present if not self._seen[i]]
        self._hist = torch.roll(self._hist, -1, dims=1)
        self._hist[:, -1] = cur
        for i in new:
            self._hist[i] = cur[i]
        self._seen[present] = True
        hist = rearrange(self._hist, "a l d -> a d l")  # (A, D, h + 1)

        # all possible samples' starting noise, then keep the ones we need
        if cfg.mode == "decentralized":
            noise = torch.randn((a, a, d, window), generator=self._generator).to(
                self.device
            )
            noise = noise[idx]
            s = len(present)
            known = known_mask(model.dim_valid, idx, s, window, h).contiguous()
            values = torch.zeros(s, a, d, window, device=self.device)
            ar = torch.arange(s, device=self.device)
            values[ar, idx, :, : h + 1] = hist[idx]
            sample_of = {i: k for k, i in enumerate(present)}
        else:
            noise = torch.randn((1, a, d, window), generator=self._generator).to(
                self.device
            )
            s = 1
            known = known_mask(model.dim_valid, None, 1, window, h).contiguous()
            values = torch.zeros(1, a, d, window, device=self.device)
            values[0, :, :, : h + 1] = hist
            sample_of = {i: 0 for i in present}
        returns = torch.full((s,), float(cfg.target_return), device=self.device)
        plan = self._plan(values, known, returns, noise)

        samp = torch.as_tensor([sample_of[i] for i in present], device=self.device)
        o_t = cur[idx]
        o_next = plan[samp, idx, :, h + 1]
        out = model.inverse_dynamics(o_t, o_next, idx)
        if deterministic is None:
            deterministic = not cfg.sample_actions
        actions = self._decode(present, out, masks, deterministic)
        self._last = {"plan": plan, "present": present, "sample_of": sample_of}
        self._t += 1
        return actions

    def _plan(self, values, known, returns, noise) -> torch.Tensor:
        """``model.plan`` with this policy's settings; a cached traced graph when allowed."""
        cfg, model = self.config, self.model
        settings = {
            "guidance_weight": cfg.guidance_weight,
            "sampler": cfg.sampler,
            "steps": cfg.sampling_steps,
            "eta": cfg.eta,
            "temperature": cfg.temperature,
            "batched_guidance": self.batched_guidance,
        }
        if not self.traced or cfg.sampler != "ddim" or cfg.eta > 0:
            return model.plan(
                values, known, returns, noise=noise, generator=self._generator, **settings
            )
        # `_version` counts in-place writes: a planner built before the weights changed
        # (an EMA update, load_state_dict) holds stale frozen weights and is rebuilt.
        key = (tuple(values.shape), str(values.device), tuple(settings.items()))
        entry = self._planners.get(key)
        if entry is not None:
            tensors, version, planner = entry
            if sum(t._version for t in tensors) != version:
                entry = None
        if entry is None:
            tensors = [*model.parameters(), *model.buffers()]
            version = sum(t._version for t in tensors)
            planner = model.traced_planner((values, known, returns, noise), **settings)
            self._planners[key] = (tensors, version, planner)
        return planner(values, known, returns, noise)

    def _decode(self, present, out, masks, deterministic) -> dict[str, Any]:
        model = self.model
        result: dict[str, Any] = {}
        disc = [k for k, i in enumerate(present) if model.n_actions[i] > 0]
        if disc:
            rows = torch.as_tensor(disc, device=self.device)
            agent = torch.as_tensor([present[k] for k in disc], device=self.device)
            m = None
            if any(masks[k] is not None for k in disc):
                width = out.shape[-1]
                mm = np.ones((len(disc), width), bool)
                for r, k in enumerate(disc):
                    if masks[k] is not None:
                        mk = masks[k][:width]
                        mm[r, : mk.shape[0]] = mk
                m = torch.as_tensor(mm, device=self.device)
            logits = model.masked_logits(out[rows], agent, m)
            if deterministic:
                choice = logits.argmax(-1)
            else:
                choice = torch.multinomial(
                    torch.softmax(logits, -1).cpu(), 1, generator=self._generator
                ).squeeze(1)
            for r, k in enumerate(disc):
                agent_id = self.agents[present[k]]
                space = self.action_spaces[agent_id]
                result[agent_id] = np.int64(int(choice[r]) + int(space.start))
        cont = [k for k, i in enumerate(present) if model.n_actions[i] == 0]
        if cont:
            rows = torch.as_tensor(cont, device=self.device)
            agent = torch.as_tensor([present[k] for k in cont], device=self.device)
            vals = (
                model.unnormalize_actions_rows(
                    out[rows, : model.act_low.shape[1]], agent
                )
                .cpu()
                .numpy()
            )
            for r, k in enumerate(cont):
                agent_id = self.agents[present[k]]
                space = self.action_spaces[agent_id]
                v = vals[r, : model.act_dims[present[k]]]
                if isinstance(space, spaces.Box):
                    v = np.clip(v, space.low.reshape(-1), space.high.reshape(-1))
                    result[agent_id] = v.astype(space.dtype).reshape(space.shape)
                else:
                    result[agent_id] = (
                        np.rint(v).astype(space.dtype).reshape(space.shape)
                    )
        return {a: result[a] for a in (self.agents[i] for i in present)}

    SAMPLING_FIELDS = (
        "guidance_weight",
        "target_return",
        "sampler",
        "sampling_steps",
        "eta",
        "temperature",
        "sample_actions",
    )

    def with_sampling(self, **changes: Any) -> MADiffPolicy:
        """The same trained model with other sampling settings (a new policy object).

        Allowed keys: ``guidance_weight``, ``target_return``, ``sampler``,
        ``sampling_steps``, ``eta``, ``temperature``, ``sample_actions``,
        ``batched_guidance`` (False runs
        the two guidance terms as two forward passes, as the reference code does) and
        ``traced`` (False runs the sampling loop eagerly instead of as a cached TorchScript
        graph; the results are the same up to float rounding).
        """
        batched = changes.pop("batched_guidance", self.batched_guidance)
        traced = changes.pop("traced", self.traced)
        bad = sorted(set(changes) - set(self.SAMPLING_FIELDS))
        if bad:
            raise ValueError(
                f"with_sampling() cannot change {bad}; allowed: {list(self.SAMPLING_FIELDS)} "
                "'batched_guidance' and 'traced'."
            )
        other = MADiffPolicy(
            self.model,
            agents=self.agents,
            observation_spaces=self.observation_spaces,
            action_spaces=self.action_spaces,
            info=self.info,
        )
        other.config = self.config.replace(**changes)
        other.batched_guidance = bool(batched)
        other.traced = bool(traced)
        other.reset(seed=other.config.seed)
        return other

    def predict(
        self,
        observation: dict[str, Any],
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[dict[str, Any], None]:
        """Stable-Baselines3-style ``predict``: ``(actions, None)``.

        ``episode_start`` truthy resets the per-agent histories first.
        """
        if episode_start is not None and bool(np.any(episode_start)):
            self.reset()
        return self.act(observation, deterministic=deterministic), None

    def predicted_futures(self) -> dict[str, dict[str, np.ndarray]]:
        """After :meth:`act`: ``{i: {j: (horizon, obs_dim_j)}}``, the future observations
        ``o_j,t+1 .. o_j,t+H`` (raw units) that agent ``i``'s sample predicts for every agent
        ``j`` (``j == i`` included). In centralized mode every ``i`` shares one joint plan."""
        if self._last is None:
            raise RuntimeError("predicted_futures() needs a call to act() first.")
        h = self.config.history
        plan = (
            self.model.unnormalize_obs(
                rearrange(self._last["plan"], "s a d l -> s l a d")
            )
            .cpu()
            .numpy()
        )  # (S, L, A, D)
        out: dict[str, dict[str, np.ndarray]] = {}
        for i in self._last["present"]:
            s = self._last["sample_of"][i]
            out[self.agents[i]] = {
                self.agents[j]: plan[s, h + 1 :, j, : self.model.obs_dims[j]].copy()
                for j in range(len(self.agents))
            }
        return out

    def teammate_estimates(self) -> dict[str, dict[str, np.ndarray]]:
        """After :meth:`act`: ``{i: {j: (obs_dim_j,)}}``, agent ``i``'s sample's estimate of
        teammate ``j``'s *current* observation (raw units; ``j != i``). In decentralized mode
        this is inferred, not observed; it is the "same information" reference for the
        predictions of :meth:`teammate_predictions`."""
        if self._last is None:
            raise RuntimeError("teammate_estimates() needs a call to act() first.")
        h = self.config.history
        plan = self.model.unnormalize_obs(self._last["plan"][:, :, :, h]).cpu().numpy()
        out: dict[str, dict[str, np.ndarray]] = {}
        for i in self._last["present"]:
            s = self._last["sample_of"][i]
            out[self.agents[i]] = {
                self.agents[j]: plan[s, j, : self.model.obs_dims[j]].copy()
                for j in range(len(self.agents))
                if j != i
            }
        return out

    def teammate_predictions(self) -> dict[str, dict[str, np.ndarray]]:
        """Like :meth:`predicted_futures` without each agent's own entry: agent ``i``'s
        model of its teammates ``j != i``, ``(horizon, obs_dim_j)`` each (raw units)."""
        return {
            i: {j: v for j, v in preds.items() if j != i}
            for i, preds in self.predicted_futures().items()
        }

    # -- saving -----------------------------------------------------------------------------
    def _meta(self) -> dict[str, Any]:
        from diffusion_agents import __version__

        return {
            "package_version": __version__,
            "config": self.config.to_dict(),
            "agents": list(self.agents),
            "observation_spaces": serialize_spaces(self.observation_spaces),
            "action_spaces": serialize_spaces(self.action_spaces),
            "info": self.info,
        }

    def _save(self, path, training=None) -> Path:
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        meta = self._meta()
        if training is not None:
            model, optimizer, generator, ema = training
            tensors.update(
                {f"train.model.{k}": v for k, v in model.state_dict().items()}
            )
            tensors["train.ema.initted"] = ema.initted.detach().clone()
            tensors["train.ema.step"] = ema.step.detach().clone()
            state = optimizer.state_dict()
            for idx, st in state["state"].items():
                for name, value in st.items():
                    tensors[f"train.opt.{idx}.{name}"] = torch.as_tensor(value)
            tensors["train.rng"] = generator.get_state()
            meta["optimizer_groups"] = state["param_groups"]
            meta["train_step"] = int(self.info.get("train_steps", 0))
        return save_checkpoint(path, tensors, kind=KIND, version=VERSION, meta=meta)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the policy (EMA weights, config, spaces, agents, version) to ``path``."""
        return self._save(Path(path))

    @classmethod
    def load(
        cls, path: str | os.PathLike, *, device: str | None = None
    ) -> MADiffPolicy:
        """Load a file written by :meth:`save` (or a training checkpoint) onto ``device``:
        the CPU unless asked (``"cuda"``, ``"auto"``, ...), wherever it was trained."""
        tensors, meta = load_checkpoint(path, kind=KIND, versions=(VERSION,))
        try:
            config = _saved_config(meta)
            agents = tuple(meta["agents"])
            obs_spaces = deserialize_spaces(meta["observation_spaces"])
            act_spaces = deserialize_spaces(meta["action_spaces"])
            info = dict(meta["info"])
            model = cls._build_model(config, info, config.seed)
            model.load_state_dict(_strip(tensors, "model."), strict=True)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(
                f"{str(path)!r}: the checkpoint's contents do not form a MADiff policy: {exc}"
            ) from None
        config = config.replace(device=device or "cpu")
        model.to(resolve_device(config.device))
        return cls(
            model,
            agents=agents,
            observation_spaces=obs_spaces,
            action_spaces=act_spaces,
            info=info,
            seed=config.seed,
        )

    def __repr__(self) -> str:
        c = self.config
        return (
            f"MADiffPolicy(agents={list(self.agents)}, mode={c.mode!r}, "
            f"sampler={c.sampler!r}, steps={c.sampling_steps}, device={self.device})"
        )


def _strip(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


__all__ = ["MADiffPolicy", "resolve_device"]
