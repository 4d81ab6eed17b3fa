"""Shared-parameter PPO behaviour policies for PettingZoo parallel envs (SB3 + SuperSuit).

The training env follows the PettingZoo/SuperSuit recipe for parameter sharing::

    make_env(env_id)                       # PettingZoo ParallelEnv
    -> FlatAgentsEnv                       # ours: 1-D float obs, masks, agents kept to the end
    -> supersuit.pad_observations_v0       # heterogeneous observation widths
    -> supersuit.pad_action_space_v0       # heterogeneous action spaces
    -> supersuit.agent_indicator_v0        # one-hot agent id appended to every observation
    -> supersuit.pettingzoo_env_to_vec_env_v1 -> supersuit.concat_vec_envs_v1(..., "stable_baselines3")
    -> ActionMaskVecEnv (masked envs only) # exposes action_masks() to sb3-contrib MaskablePPO

so each vector slot is one agent of one env copy and a single network acts for everyone.

:class:`FlatAgentsEnv` exists because SuperSuit 3.11 cannot do two things we need:
``black_death_v3`` never reports the episode as done (it tests ``terminations &
truncations``), and SuperSuit wrappers reject ``Dict`` observations. Ours turns an agent's
observation into ``[action mask (padded to the largest Discrete size) | flat observation]``,
keeps agents that left the episode with a "dead" observation (zeros, only action 0 legal) and
reward 0 until every agent is done, then reports all of them done.

:class:`BehaviourPolicy` wraps a trained SB3 model as ``act(obs_dict) -> action_dict`` for the
agents present, adding the same mask/padding/agent indicator at act time with SuperSuit's own
helper functions, so acting matches training exactly. It samples from the policy with its own
seeded generator (or takes the mode with ``deterministic=True``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import supersuit as ss
import torch
from gymnasium import spaces
from pettingzoo.utils.env import ParallelEnv
from pettingzoo.utils.wrappers import BaseParallelWrapper
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from supersuit.utils import agent_indicator as ss_indicator
from supersuit.utils.action_transforms import homogenize_ops
from tqdm.auto import tqdm

from benchmarks.behaviour_config import PPOConfig
from wrappers import make_env
from wrappers.files import atomic_path
from wrappers.spaces import action_mask, flatten_obs, has_action_mask, obs_dim

POLICY_FORMAT_VERSION = 1


# ---------------------------------------------------------------------------------------
# Per-agent observation encoding (shared by training and acting)
# ---------------------------------------------------------------------------------------


class AgentEncoder:
    """Turns each agent's raw PettingZoo observation into the shared network's input.

    ``flat(agent, obs)`` gives ``[mask (mask_width,) | flat obs (obs_dim,)]`` as ``float32``
    (``obs=None`` gives the "dead" vector: zeros, only action 0 legal). ``encode`` then applies
    SuperSuit's padding and agent indicator, exactly as the training env does.

    Args:
        observation_spaces, action_spaces: ``{agent: space}`` over ``possible_agents``.
    """

    def __init__(
        self,
        agents: Sequence[str],
        observation_spaces: dict[str, spaces.Space],
        action_spaces: dict[str, spaces.Space],
    ) -> None:
        self.agents = list(agents)
        self.observation_spaces = dict(observation_spaces)
        self.action_spaces = dict(action_spaces)
        kinds = {type(s).__name__ for s in self.action_spaces.values()}
        if len(kinds) != 1 or not kinds <= {"Discrete", "Box"}:
            raise ValueError(
                "Shared-parameter PPO needs every agent to have the same kind of action "
                "space, Discrete or Box; got "
                f"{ {a: type(s).__name__ for a, s in self.action_spaces.items()} }."
            )
        self.discrete = kinds == {"Discrete"}
        sizes = (
            {int(s.n) for s in self.action_spaces.values()} if self.discrete else set()
        )
        # Masks go to MaskablePPO when the env has them, and also when Discrete sizes differ
        # (the padded actions of the smaller agents are then illegal instead of "action 0").
        self.masked = self.discrete and (
            any(has_action_mask(s) for s in self.observation_spaces.values())
            or len(sizes) > 1
        )
        self.mask_width = max(sizes) if self.masked else 0
        self.flat_spaces = {
            a: spaces.Box(
                -np.inf,
                np.inf,
                (self.mask_width + obs_dim(self.observation_spaces[a]),),
                np.float32,
            )
            for a in self.agents
        }
        self.padded_space = homogenize_ops.homogenize_spaces(
            [self.flat_spaces[a] for a in self.agents]
        )
        self.padded_action_space = homogenize_ops.homogenize_spaces(
            [self.action_spaces[a] for a in self.agents]
        )
        self.indicator = ss_indicator.get_indicator_map(self.agents, False)

    @property
    def input_dim(self) -> int:
        """Width of the network input: padded flat observation + one-hot agent id."""
        return int(self.padded_space.shape[0]) + len(self.agents)

    def flat(self, agent: str, obs: Any | None) -> np.ndarray:
        space = self.observation_spaces[agent]
        out = np.zeros(self.flat_spaces[agent].shape, np.float32)
        if obs is None:  # the agent has left the episode
            if self.masked:
                out[0] = 1.0
            return out
        if self.masked:
            n = int(self.action_spaces[agent].n)
            mask = action_mask(space, obs)
            out[:n] = 1.0 if mask is None else mask[:n]
        out[self.mask_width :] = flatten_obs(space, obs)
        return out

    def encode(self, agent: str, obs: Any | None) -> np.ndarray:
        """``(input_dim,)`` network input for one agent (SuperSuit padding + indicator)."""
        if agent not in self.indicator:
            raise KeyError(f"Unknown agent {agent!r}; the policy knows {self.agents}.")
        x = homogenize_ops.homogenize_observations(
            self.padded_space, self.flat(agent, obs)
        )
        return ss_indicator.change_observation(
            x, self.padded_space, (self.indicator[agent], len(self.agents))
        ).astype(np.float32)

    def masks_of(self, x: np.ndarray) -> np.ndarray:
        """``(batch, mask_width)`` bool masks from encoded inputs ``(batch, input_dim)``."""
        return x[:, : self.mask_width] > 0.5

    def to_env_action(self, agent: str, action: np.ndarray) -> Any:
        """Padded action -> the agent's own action (SuperSuit's ``dehomogenize_actions``)."""
        space = self.action_spaces[agent]
        if self.discrete:
            return np.int64(homogenize_ops.dehomogenize_actions(space, int(action)))
        a = homogenize_ops.dehomogenize_actions(space, np.asarray(action, np.float32))
        return np.clip(a, space.low, space.high).astype(space.dtype)

    @classmethod
    def from_env(cls, env: ParallelEnv) -> AgentEncoder:
        agents = list(env.possible_agents)
        return cls(
            agents,
            {a: env.observation_space(a) for a in agents},
            {a: env.action_space(a) for a in agents},
        )


class FlatAgentsEnv(BaseParallelWrapper):
    """``ParallelEnv`` with 1-D float observations and a fixed agent set per episode.

    With ``encode=True`` (default) observations are the network inputs
    (:meth:`AgentEncoder.encode`: mask, flat observation, SuperSuit padding and agent
    indicator) and actions are padded actions (SuperSuit's ``dehomogenize_actions``), so no
    SuperSuit observation/action wrappers are needed on top. With ``encode=False`` they are
    :meth:`AgentEncoder.flat` vectors and the agents' own actions, ready for
    ``pad_observations_v0``/``pad_action_space_v0``/``agent_indicator_v0``.

    An agent that leaves mid-episode stays in ``agents`` with the dead vector and reward 0
    (its actions are dropped) until every agent is done; then all agents report done
    (terminated, or truncated if the env truncated any agent at the last step), which is
    what SuperSuit's vector env needs to reset.
    """

    def __init__(
        self,
        env: ParallelEnv,
        encoder: AgentEncoder | None = None,
        *,
        encode: bool = True,
    ) -> None:
        super().__init__(env)
        self.encoder = encoder or AgentEncoder.from_env(env)
        self.encode = encode
        self.possible_agents = list(env.possible_agents)
        self.agents: list[str] = []
        self._input_space = spaces.Box(
            -np.inf, np.inf, (self.encoder.input_dim,), np.float32
        )

    def observation_space(self, agent: str) -> spaces.Space:
        return self._input_space if self.encode else self.encoder.flat_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return (
            self.encoder.padded_action_space
            if self.encode
            else self.encoder.action_spaces[agent]
        )

    def _obs(self, obs: dict[str, Any]) -> dict[str, np.ndarray]:
        fn = self.encoder.encode if self.encode else self.encoder.flat
        return {a: fn(a, obs.get(a)) for a in self.agents}

    def reset(self, seed: int | None = None, options: dict | None = None):
        obs, infos = self.env.reset(seed=seed, options=options)
        self.agents = list(self.possible_agents)
        return self._obs(obs), {a: dict((infos or {}).get(a, {})) for a in self.agents}

    def step(self, actions: dict[str, Any]):
        live = list(self.env.agents)
        if self.encode:
            acts = {a: self.encoder.to_env_action(a, actions[a]) for a in live}
        else:
            acts = {a: actions[a] for a in live}
        obs, rew, term, trunc, infos = self.env.step(acts)
        done = not self.env.agents
        flat = self._obs(obs)
        rewards = {a: float(rew.get(a, 0.0)) for a in self.agents}
        if done:
            truncated = any(bool(trunc.get(a, False)) for a in live)
            terms = {a: not truncated for a in self.agents}
            truncs = {a: truncated for a in self.agents}
        else:
            terms = {a: False for a in self.agents}
            truncs = {a: False for a in self.agents}
        out_infos = {a: dict((infos or {}).get(a, {})) for a in self.agents}
        if done:
            self.agents = []
            if truncated:  # SB3 then bootstraps from the terminal observation's value
                for info in out_infos.values():
                    info["TimeLimit.truncated"] = True
        return flat, rewards, terms, truncs, out_infos


class ActionMaskVecEnv(VecEnvWrapper):
    """Exposes ``action_masks()`` (read from the first ``mask_width`` inputs) to MaskablePPO."""

    def __init__(self, venv: VecEnv, mask_width: int) -> None:
        super().__init__(venv)
        self.mask_width = mask_width
        self._obs: np.ndarray | None = None

    def reset(self, **kwargs: Any) -> np.ndarray:
        self._obs = self.venv.reset(**kwargs)
        return self._obs

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        self._obs = obs
        return obs, rewards, dones, infos

    def action_masks(self) -> np.ndarray:
        if self._obs is None:
            raise RuntimeError("action_masks() called before reset().")
        return self._obs[:, : self.mask_width] > 0.5

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        if attr_name == "render_mode":  # SuperSuit's vector env has no get_attr for it
            return [getattr(self.venv, "render_mode", None)] * self.num_envs
        return super().get_attr(attr_name, indices)

    def has_attr(self, attr_name: str) -> bool:
        return attr_name == "action_masks" or super().has_attr(attr_name)

    def env_method(
        self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any
    ):
        if method_name == "action_masks":
            return list(self.action_masks())
        return self.venv.env_method(method_name, *args, indices=indices, **kwargs)


def make_vec_env(
    env_id: str,
    env_kwargs: dict[str, Any] | None = None,
    *,
    n_envs: int = 8,
    seed: int = 0,
    supersuit_wrappers: bool = False,
    batched: bool = True,
) -> tuple[VecEnv, AgentEncoder]:
    """The SuperSuit parameter-sharing vector env: ``n_envs * num_agents`` slots.

    Env copy ``i`` is reset with seed ``seed + i`` (SuperSuit's ``concat_vec_envs_v1`` has no
    ``seed()``, so SB3's own seeding cannot reach it; later resets continue each copy's RNG).
    ``smax/...`` ids (with ``batched=True``) get the same slots from one vmapped JAX call
    (:class:`benchmarks.behaviour_smax.SMAXVecEnv`; ~3x faster than stepping copies).
    """
    if batched and not supersuit_wrappers and env_id.startswith("smax/"):
        from benchmarks.behaviour_smax import make_smax_vec_env

        return make_smax_vec_env(env_id, env_kwargs, n_envs=n_envs, seed=seed)
    env = make_env(env_id, **(env_kwargs or {}))
    if not hasattr(env.unwrapped, "render_mode"):
        # SuperSuit's vector env reads it; this is our own instance.
        env.unwrapped.render_mode = None
    encoder = AgentEncoder.from_env(env)
    if supersuit_wrappers:
        env = FlatAgentsEnv(env, encoder, encode=False)
        env = ss.pad_observations_v0(env)
        env = ss.pad_action_space_v0(env)
        env = ss.agent_indicator_v0(env)
    else:
        # Same transform, done in FlatAgentsEnv with SuperSuit's helper functions: SuperSuit's
        # lambda wrappers convert parallel->AEC->parallel each and measured 1.8x the CPU time
        # per env step on simple_spread_v3 (see tests/benchmarks/test_behaviour.py for the
        # equality check of the two pipelines).
        env = FlatAgentsEnv(env, encoder, encode=True)
    venv = ss.pettingzoo_env_to_vec_env_v1(env)
    venv = ss.concat_vec_envs_v1(
        venv, n_envs, num_cpus=0, base_class="stable_baselines3"
    )
    venv.venv.reset(seed=seed)  # seeds copy i with seed + i
    if encoder.masked:
        venv = ActionMaskVecEnv(venv, encoder.mask_width)
    return venv, encoder


# ---------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch threads, restoring the previous setting afterwards.

    The networks here are tiny MLPs fed one env step at a time: on the 2-core CI machine
    with other work running, a 64x64 MLP backward pass over 512 samples took 11 ms with
    1 thread and 68 ms with 2, so training and recording use one (``None``: leave as is).
    """
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclasses.dataclass
class Snapshot:
    """The policy weights before rollout ``rollout`` (after ``timesteps`` agent-steps).

    ``rollouts`` is how many rollouts these weights collected before the next snapshot.
    """

    timesteps: int
    state_dict: dict[str, torch.Tensor]
    rollout: int = 0
    rollouts: int = 1


def snapshot_rollouts(n_rollouts: int, num_snapshots: int) -> list[int]:
    """Rollout indices to snapshot before: 0, then geometrically spaced up to the end.

    PPO improves fastest early on, so evenly spaced snapshots miss the low-score policies
    (measured on simple_spread_v3: 43 normalized points already after the first 7 of 84
    rollouts); geometric spacing keeps several of them.
    """
    points = np.geomspace(1, max(n_rollouts, 1), max(num_snapshots - 1, 1))
    rest = sorted({int(round(p)) for p in points} - {0})
    return [0] + [r for r in rest if r < n_rollouts]


class _SnapshotCallback(BaseCallback):
    def __init__(self, at: list[int], n_rollouts: int, bar: Any) -> None:
        super().__init__()
        self.at = set(at)
        self.n_rollouts = n_rollouts
        self.bar = bar
        self.snapshots: list[Snapshot] = []
        self._rollouts = 0

    def _on_rollout_start(self) -> None:
        # Called before each rollout: the weights that will collect it.
        if self._rollouts in self.at:
            sd = {
                k: v.detach().clone() for k, v in self.model.policy.state_dict().items()
            }
            self.snapshots.append(
                Snapshot(int(self.model.num_timesteps), sd, rollout=self._rollouts)
            )
        self._rollouts += 1

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self.bar.n = min(self.model.num_timesteps, self.bar.total)
        self.bar.refresh()

    def _on_training_end(self) -> None:
        ends = [s.rollout for s in self.snapshots[1:]] + [self._rollouts]
        for snap, end in zip(self.snapshots, ends):
            snap.rollouts = end - snap.rollout


@dataclasses.dataclass
class TrainingRun:
    """What :func:`train_ppo` returns: the final model and the snapshots along the way."""

    model: Any
    encoder: AgentEncoder
    snapshots: list[Snapshot]
    seconds: float
    timesteps: int


def train_ppo(
    env_id: str,
    env_kwargs: dict[str, Any] | None = None,
    config: PPOConfig | None = None,
    *,
    seed: int = 0,
    show_progress: bool = True,
    threads: int | None = 1,
) -> TrainingRun:
    """Train one shared PPO (MaskablePPO for masked envs) policy for all agents.

    Same ``seed`` and config give the same weights on the CPU.
    """

    config = config or PPOConfig()
    with torch_threads(threads):
        return _train_ppo(env_id, env_kwargs, config, seed, show_progress)


def _train_ppo(
    env_id: str,
    env_kwargs: dict[str, Any] | None,
    config: PPOConfig,
    seed: int,
    show_progress: bool,
) -> TrainingRun:
    import time

    # python, numpy and torch RNGs (SB3's own seed= fails on SuperSuit vector envs)
    set_random_seed(seed)
    venv, encoder = make_vec_env(env_id, env_kwargs, n_envs=config.n_envs, seed=seed)
    slots = venv.num_envs
    rollout = config.n_steps * slots
    n_rollouts = max(1, -(-config.total_timesteps // rollout))
    kwargs = dict(
        n_steps=config.n_steps,
        batch_size=min(config.batch_size, rollout),
        n_epochs=config.n_epochs,
        learning_rate=config.learning_rate,
        ent_coef=config.ent_coef,
        gamma=config.gamma,
        gae_lambda=config.gae_lambda,
        clip_range=config.clip_range,
        policy_kwargs={
            "net_arch": {"pi": list(config.net_arch), "vf": list(config.net_arch)}
        },
        device="cpu",
        verbose=0,
    )
    if encoder.masked:
        from sb3_contrib import MaskablePPO

        model = MaskablePPO("MlpPolicy", venv, **kwargs)
    else:
        model = PPO("MlpPolicy", venv, **kwargs)
    bar = tqdm(
        total=n_rollouts * rollout,
        desc=f"PPO {env_id}",
        disable=not show_progress,
        unit="step",
    )
    callback = _SnapshotCallback(
        snapshot_rollouts(n_rollouts, config.num_snapshots), n_rollouts, bar
    )
    start = time.perf_counter()
    model.learn(total_timesteps=n_rollouts * rollout, callback=callback)
    seconds = time.perf_counter() - start
    bar.close()
    venv.close()
    return TrainingRun(
        model=model,
        encoder=encoder,
        snapshots=callback.snapshots,
        seconds=seconds,
        timesteps=int(model.num_timesteps),
    )


# ---------------------------------------------------------------------------------------
# The policy object
# ---------------------------------------------------------------------------------------


class BehaviourPolicy:
    """A trained shared-parameter SB3 policy speaking ``act(obs_dict) -> action_dict``.

    Args:
        model: an SB3 ``PPO`` or sb3-contrib ``MaskablePPO`` trained on :func:`make_vec_env`.
        encoder: the :class:`AgentEncoder` of the env it was trained on.
        deterministic: take the most likely action instead of sampling.
        seed: seed of the policy's own sampling generator (re-seeded by ``seed()`` only).
        name: label stored in dataset metadata.
    """

    def __init__(
        self,
        model: Any,
        encoder: AgentEncoder,
        *,
        deterministic: bool = False,
        seed: int = 0,
        name: str = "ppo",
        env_id: str | None = None,
        env_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.encoder = encoder
        self.deterministic = deterministic
        self.name = name
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})
        self._gen = torch.Generator().manual_seed(seed)
        expected = self.encoder.input_dim
        got = int(np.prod(model.observation_space.shape))
        if got != expected:
            raise ValueError(
                f"Model {name!r} takes inputs of width {got}, but the env's agents encode to "
                f"{expected} (different env or kwargs?)."
            )

    def seed(self, seed: int) -> None:
        self._gen.manual_seed(seed)

    def reset(self) -> None:
        """Start a new episode (the policy is memoryless; nothing to clear)."""

    @torch.no_grad()
    def act(self, obs: dict[str, Any]) -> dict[str, Any]:
        """Actions ``{agent: action}`` for exactly the agents in ``obs``."""
        if not obs:
            return {}
        agents = list(obs)
        unknown = [a for a in agents if a not in self.encoder.indicator]
        if unknown:
            raise KeyError(
                f"{self.name}.act(): unknown agent(s) {unknown}; known {self.encoder.agents}."
            )
        x = np.stack([self.encoder.encode(a, obs[a]) for a in agents])
        policy = self.model.policy
        xt = torch.as_tensor(x, device=policy.device)
        if self.encoder.masked:
            masks = self.encoder.masks_of(x)
            dist = policy.get_distribution(xt, action_masks=masks).distribution
            probs = dist.probs * torch.as_tensor(masks, dtype=dist.probs.dtype)
        else:
            dist = policy.get_distribution(xt).distribution
            probs = dist.probs if self.encoder.discrete else None
        if probs is not None:
            if self.deterministic:
                acts = probs.argmax(dim=-1)
            else:
                acts = torch.multinomial(probs, 1, generator=self._gen).squeeze(-1)
        else:
            mean = dist.mean
            if self.deterministic:
                acts = mean
            else:
                noise = torch.randn(mean.shape, generator=self._gen, dtype=mean.dtype)
                acts = mean + dist.stddev * noise
        acts_np = acts.cpu().numpy()
        return {
            a: self.encoder.to_env_action(a, acts_np[i]) for i, a in enumerate(agents)
        }

    # -- saving ----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the SB3 ``.zip`` at ``path`` and a JSON sidecar ``<path>.json``, atomically."""
        path = Path(path)
        if path.suffix != ".zip":
            raise ValueError(
                f"Behaviour policy path must end in .zip, got {str(path)!r}."
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "format_version": POLICY_FORMAT_VERSION,
            "algorithm": type(self.model).__name__,
            "name": self.name,
            "env_id": self.env_id,
            "env_kwargs": self.env_kwargs,
            "agents": self.encoder.agents,
            "deterministic": self.deterministic,
        }
        with atomic_path(path, suffix=".zip") as tmp:  # SB3 appends .zip to other names
            self.model.save(str(tmp))
        _write_json_atomic(path.with_suffix(".json"), meta)
        return path

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        *,
        deterministic: bool | None = None,
        seed: int = 0,
        env: ParallelEnv | None = None,
    ) -> BehaviourPolicy:
        """Reload a policy written by :meth:`save` (the env is rebuilt from its id)."""
        path = Path(path)
        side = path.with_suffix(".json")
        if not path.exists() or not side.exists():
            raise FileNotFoundError(
                f"No behaviour policy at {path} (needs both {path.name} and {side.name})."
            )
        meta = json.loads(side.read_text())
        version = meta.get("format_version")
        if version != POLICY_FORMAT_VERSION:
            raise ValueError(
                f"Behaviour policy {side} has format_version {version!r}; this code reads "
                f"version {POLICY_FORMAT_VERSION}."
            )
        algos: dict[str, Callable[[], Any]] = {"PPO": lambda: PPO}
        algos["MaskablePPO"] = lambda: __import__("sb3_contrib").MaskablePPO
        if meta.get("algorithm") not in algos:
            raise ValueError(
                f"Behaviour policy {side}: unknown algorithm {meta.get('algorithm')!r}; "
                f"expected one of {sorted(algos)}."
            )
        model = algos[meta["algorithm"]]().load(str(path), device="cpu")
        if env is None:
            if not meta.get("env_id"):
                raise ValueError(f"Behaviour policy {side} has no env_id; pass env=.")
            env = make_env(meta["env_id"], **meta.get("env_kwargs", {}))
        encoder = AgentEncoder.from_env(env)
        if list(meta.get("agents", [])) != encoder.agents:
            raise ValueError(
                f"Behaviour policy {side} was trained for agents {meta.get('agents')}, the env "
                f"has {encoder.agents}."
            )
        return cls(
            model,
            encoder,
            deterministic=meta.get("deterministic", False)
            if deterministic is None
            else deterministic,
            seed=seed,
            name=meta.get("name", "ppo"),
            env_id=meta.get("env_id"),
            env_kwargs=meta.get("env_kwargs", {}),
        )


class SnapshotSequencePolicy:
    """Plays a sequence of policies in order over ``num_episodes`` episodes.

    Episode ``i`` (counted by ``reset()`` calls, modulo ``num_episodes``) is played by the
    policy whose share of ``weights`` (default: equal) covers the episode's midpoint
    ``(i + 1/2) / num_episodes``: policy ``k`` plays a fraction ``weights[k] / sum(weights)``
    of the episodes, in training order. With ``weights`` = rollouts collected by each
    snapshot this is the distribution of PPO's on-policy training data.
    """

    def __init__(
        self,
        policies: Sequence[Any],
        num_episodes: int,
        name: str = "ppo-snapshots",
        weights: Sequence[float] | None = None,
    ) -> None:
        if not policies:
            raise ValueError("SnapshotSequencePolicy needs at least one policy.")
        if num_episodes < 1:
            raise ValueError(f"num_episodes must be >= 1, got {num_episodes}.")
        w = np.ones(len(policies)) if weights is None else np.asarray(weights, float)
        if w.shape != (len(policies),) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(
                f"weights must be {len(policies)} non-negative numbers with a positive sum, "
                f"got {weights}."
            )
        self.policies = list(policies)
        self.num_episodes = num_episodes
        self.name = name
        self._cum = np.cumsum(w) / w.sum()
        self._episode = -1
        self.current = self.policies[0]

    def policy_index(self, episode: int) -> int:
        """Which policy plays episode ``episode``."""
        mid = ((episode % self.num_episodes) + 0.5) / self.num_episodes
        return int(min(np.searchsorted(self._cum, mid), len(self.policies) - 1))

    def reset(self) -> None:
        self._episode = (self._episode + 1) % self.num_episodes
        self.current = self.policies[self.policy_index(self._episode)]
        if hasattr(self.current, "reset"):
            self.current.reset()

    def act(self, obs: dict[str, Any]) -> dict[str, Any]:
        return self.current.act(obs)


def _write_json_atomic(path: Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True))


__all__ = [
    "ActionMaskVecEnv",
    "AgentEncoder",
    "BehaviourPolicy",
    "FlatAgentsEnv",
    "PPOConfig",
    "Snapshot",
    "SnapshotSequencePolicy",
    "TrainingRun",
    "make_vec_env",
    "train_ppo",
]
