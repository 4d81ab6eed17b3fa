"""Multi-agent episodes in Minari datasets: record, write atomically, check, load.

Minari is single-agent, so a multi-agent episode is stored as a joint episode (see
``docs/convention.md`` and DESIGN.md): ``Dict`` observation/action spaces over
``possible_agents``, the team reward (mean over agents present) as Minari's reward, and per
step ``infos["rewards"]`` / ``infos["alive"]`` (``{agent: (T + 1,)}``, the reset entry first)
plus ``infos["state"]`` where the env has ``state()``. Dataset metadata carries a
``"multiagent"`` block (env id, kwargs, agents, behaviour policy, ...) and the reference
scores ``ref_min_score`` / ``ref_max_score``.

:func:`load_episodes` is the one reader everything else uses: it returns an
:class:`EpisodeBatch` of padded arrays ``(episodes, T, agents, ...)``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import minari
import numpy as np
from gymnasium import spaces
from minari.data_collector.episode_buffer import EpisodeBuffer
from minari.dataset.minari_dataset import parse_dataset_id
from minari.dataset.minari_storage import MinariStorage
from minari.namespace import create_namespace, list_local_namespaces
from minari.storage.datasets_root_dir import get_dataset_path
from pettingzoo.utils.env import ParallelEnv
from tqdm.auto import tqdm

from wrappers.joint import JointEnv, joint_env_spec
from wrappers.policies import RandomPolicy
from wrappers.spaces import (
    action_dim,
    core_obs_space,
    flatten_obs,
    has_action_mask,
    n_actions,
    obs_dim,
    vector_to_action,
    zero_like,
)

CONVENTION = "diffusion-agents/multiagent-v1"
META_KEY = "multiagent"


class DatasetConventionError(ValueError):
    """A dataset does not follow the multi-agent Minari convention."""


# ---------------------------------------------------------------------------------------
# EpisodeBatch: the padded-array view every consumer uses
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, repr=False)
class EpisodeBatch:
    """Padded joint episodes. ``E`` episodes, ``T`` steps (the longest), ``A`` agents.

    Attributes:
        agents: agent ids, in ``possible_agents`` order.
        obs: ``(E, T + 1, A, D)`` float32 flat observations, zero-padded to ``D = max(obs_dims)``
            and zero where the agent is absent or the episode is over.
        obs_dims: per-agent true observation width (``obs[..., i, :obs_dims[i]]``).
        actions: ``(E, T, A, K)`` float32; a Discrete agent's action index sits in column 0,
            other spaces are flattened; zero where the agent did not act.
        act_dims: per-agent true action width; ``n_actions``: choices per Discrete agent, else 0.
        action_masks: ``(E, T + 1, A, N)`` bool legal actions (``N = max(n_actions)``), or None
            when no agent has masks (agents without masks get all-True rows).
        rewards: ``(E, T, A)`` per-agent rewards; ``team_rewards``: ``(E, T)``.
        terminations, truncations: ``(E, T)`` bool, as stored.
        valid: ``(E, T)`` True for real steps; ``lengths``: ``(E,)`` steps per episode.
        alive: ``(E, T + 1, A)`` True where the agent has a real observation.
        acted: ``(E, T, A)`` True where the agent acted (``alive[t] & alive[t + 1]``).
        states: ``(E, T + 1, S)`` global states, or None.
        synthetic: ``(E,)`` True for generated episodes (EAQ output).
        step_infos: ``{key: (E, T + 1) float32}`` for the dataset's scalar ``info_keys``
            (e.g. ``"battle_won"``), NaN where an episode does not carry the key (EAQ's
            synthetic episodes, steps past the end).
    """

    agents: tuple[str, ...]
    observation_spaces: dict[str, spaces.Space]
    action_spaces: dict[str, spaces.Space]
    obs: np.ndarray
    obs_dims: tuple[int, ...]
    actions: np.ndarray
    act_dims: tuple[int, ...]
    n_actions: tuple[int, ...]
    action_masks: np.ndarray | None
    rewards: np.ndarray
    team_rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    valid: np.ndarray
    lengths: np.ndarray
    alive: np.ndarray
    acted: np.ndarray
    states: np.ndarray | None
    synthetic: np.ndarray
    ref_min_score: float | None = None
    ref_max_score: float | None = None
    dataset_id: str | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    step_infos: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    # -- shapes --------------------------------------------------------------------------
    @property
    def num_episodes(self) -> int:
        return int(self.obs.shape[0])

    @property
    def horizon(self) -> int:
        """T, the number of steps of the longest episode."""
        return int(self.actions.shape[1])

    @property
    def num_agents(self) -> int:
        return len(self.agents)

    @property
    def discrete(self) -> tuple[bool, ...]:
        return tuple(n > 0 for n in self.n_actions)

    # -- derived quantities ----------------------------------------------------------------
    @property
    def returns(self) -> np.ndarray:
        """``(E,)`` undiscounted team return of each episode."""
        return (self.team_rewards * self.valid).sum(axis=1)

    def return_to_go(self, gamma: float = 1.0) -> np.ndarray:
        """``(E, T + 1)`` team return-to-go ``sum_{k >= t} gamma^(k - t) r_k`` (0 at the end)."""
        r = self.team_rewards * self.valid
        out = np.zeros((r.shape[0], r.shape[1] + 1), dtype=np.float64)
        for t in range(r.shape[1] - 1, -1, -1):
            out[:, t] = r[:, t] + gamma * out[:, t + 1]
        return out.astype(np.float32)

    def normalize(self, returns: np.ndarray | float) -> np.ndarray:
        """Normalized score ``100 * (R - ref_min) / (ref_max - ref_min)``."""
        if self.ref_min_score is None or self.ref_max_score is None:
            raise ValueError(
                f"Dataset {self.dataset_id!r} has no ref_min_score/ref_max_score metadata; "
                "record it with ref scores to normalize returns."
            )
        span = self.ref_max_score - self.ref_min_score
        return 100.0 * (np.asarray(returns, dtype=np.float64) - self.ref_min_score) / span

    def agent_obs(self, agent: str | int) -> np.ndarray:
        """``(E, T + 1, obs_dim)`` observations of one agent, unpadded."""
        i = agent if isinstance(agent, int) else self.agents.index(agent)
        return self.obs[:, :, i, : self.obs_dims[i]]

    def agent_actions(self, agent: str | int) -> np.ndarray:
        """``(E, T, act_dim)`` actions of one agent, unpadded."""
        i = agent if isinstance(agent, int) else self.agents.index(agent)
        return self.actions[:, :, i, : self.act_dims[i]]

    def onehot_actions(self) -> np.ndarray:
        """``(E, T, A, max(n_actions))`` one-hot discrete actions (zeros where not acted).

        Column ``j`` is action ``start + j`` of a ``Discrete(n, start)`` agent.
        """
        n = max(self.n_actions) if any(self.n_actions) else 0
        out = np.zeros(self.actions.shape[:3] + (n,), dtype=np.float32)
        for i, k in enumerate(self.n_actions):
            if k:
                start = int(self.action_spaces[self.agents[i]].start)
                idx = self.actions[:, :, i, 0].astype(np.int64) - start
                idx = np.where(self.acted[:, :, i], idx, 0)
                np.put_along_axis(out[:, :, i], idx[..., None], 1.0, axis=-1)
                out[:, :, i] *= self.acted[:, :, i, None]
        return out

    def select(self, index: np.ndarray | Sequence[int] | slice) -> EpisodeBatch:
        """A batch holding only the chosen episodes."""

        def pick(x):
            return None if x is None else x[index]

        return dataclasses.replace(
            self,
            obs=self.obs[index],
            actions=self.actions[index],
            action_masks=pick(self.action_masks),
            rewards=self.rewards[index],
            team_rewards=self.team_rewards[index],
            terminations=self.terminations[index],
            truncations=self.truncations[index],
            valid=self.valid[index],
            lengths=self.lengths[index],
            alive=self.alive[index],
            acted=self.acted[index],
            states=pick(self.states),
            synthetic=self.synthetic[index],
            step_infos={k: v[index] for k, v in self.step_infos.items()},
        )

    def __repr__(self) -> str:
        def desc(x):
            return "None" if x is None else f"{x.dtype}{list(x.shape)}"

        fields = ", ".join(
            f"{name}={desc(getattr(self, name))}"
            for name in ("obs", "actions", "action_masks", "rewards", "alive", "states")
        )
        return (
            f"EpisodeBatch(dataset_id={self.dataset_id!r}, episodes={self.num_episodes}, "
            f"T={self.horizon}, agents={list(self.agents)}, {fields})"
        )


# ---------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------


def _stack_tree(items: list[Any]) -> Any:
    """Stack a list of equally shaped pytrees (dicts of arrays) along a new axis 0."""
    first = items[0]
    if isinstance(first, dict):
        return {k: _stack_tree([it[k] for it in items]) for k in first}
    return np.stack([np.asarray(it) for it in items])


def _check_new_dataset_id(dataset_id: str) -> Path:
    if not isinstance(dataset_id, str):
        raise TypeError(f"dataset_id must be a string, got {type(dataset_id).__name__}.")
    try:
        version = parse_dataset_id(dataset_id)[2]
        problem = None if version is not None else "no '-v<version>' suffix"
    except TypeError:  # minari fails on int(None) when the version is missing
        problem = "no '-v<version>' suffix"
    except Exception as exc:
        problem = str(exc)
    if problem is not None:
        raise ValueError(
            f"Malformed dataset id {dataset_id!r} ({problem}); ids look like "
            "'namespace/env/name-v0', e.g. 'mpe2/simple_spread/expert-v0'."
        ) from None
    final = get_dataset_path(dataset_id)
    if final.exists():
        raise FileExistsError(
            f"A dataset with id {dataset_id!r} already exists at {final}; pick another id "
            "or delete it with `minari delete`."
        )
    return final


def write_dataset(
    dataset_id: str,
    episodes: Iterable[EpisodeBuffer],
    *,
    observation_space: spaces.Space,
    action_space: spaces.Space,
    metadata: dict[str, Any],
    env_spec: gym.envs.registration.EnvSpec | None = None,
    num_episodes: int | None = None,
    show_progress: bool = True,
    check: bool = True,
) -> minari.MinariDataset:
    """Write Minari episodes to a new dataset, atomically.

    Everything is written into a hidden temporary folder beside the datasets root and renamed
    into place at the end, so a failure leaves no half-written dataset and an existing
    dataset is never touched.

    When ``metadata`` declares the multi-agent convention (a ``"multiagent"`` block) and
    ``check`` is on (the default), the dataset must follow it: ``metadata["multiagent"]
    ["agents"]`` names the keys of the ``Dict`` spaces, and every episode is checked (agents,
    shapes, lengths, per-agent ``rewards``/``alive`` infos) before it is written; the first
    bad episode raises ``DatasetConventionError`` naming it. Without the block (foreign
    data) or with ``check=False`` any Minari episodes are written as given.
    """
    final = _check_new_dataset_id(dataset_id)
    agents = None
    if check and META_KEY in metadata:
        agents = _check_write_spaces(dataset_id, metadata, observation_space, action_space)
    # absolute: with a relative MINARI_DATASETS_PATH, minari's storage joins the root twice
    # (FileNotFoundError on ".partial-x/data/<root>/.partial-x/data/main_data.hdf5")
    root = get_dataset_path().resolve()
    tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=root))
    try:
        # mkdtemp makes a private (0700) folder; give the dataset its root's permissions.
        os.chmod(tmp, root.stat().st_mode & 0o777)
        storage = MinariStorage.new(
            tmp / "data",
            observation_space=observation_space,
            action_space=action_space,
            env_spec=env_spec,
            data_format="hdf5",
        )
        meta = {"dataset_id": dataset_id, "minari_version": minari.__version__}
        meta.update(metadata)
        storage.update_metadata(meta)
        chunk: list[EpisodeBuffer] = []
        count = 0
        bar = tqdm(
            total=num_episodes, desc=f"writing {dataset_id}", disable=not show_progress,
            leave=False,
        )
        for ep in episodes:
            if agents is not None:
                _check_buffer(ep, count, dataset_id, agents, observation_space, action_space)
            count += 1
            chunk.append(ep)
            if len(chunk) >= 256:
                storage.update_episodes(chunk)
                bar.update(len(chunk))
                chunk = []
        if chunk:
            storage.update_episodes(chunk)
            bar.update(len(chunk))
        bar.close()
        if count == 0:
            raise ValueError(f"write_dataset({dataset_id!r}) got no episodes to write.")
        namespace = parse_dataset_id(dataset_id)[0]
        if namespace is not None and namespace not in list_local_namespaces():
            try:
                create_namespace(namespace)
            except ValueError:  # created meanwhile by a concurrent writer
                if namespace not in list_local_namespaces():
                    raise
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(tmp, final)
        except OSError:
            if final.exists():  # another writer finished the same id first
                raise FileExistsError(
                    f"A dataset with id {dataset_id!r} appeared at {final} while this one "
                    "was being written; it was left as it is and nothing was written."
                ) from None
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return minari.load_dataset(dataset_id)


def _check_write_spaces(
    dataset_id: str, metadata: dict[str, Any], observation_space: spaces.Space,
    action_space: spaces.Space,
) -> list[str]:
    """The agent list of a dataset about to be written, or DatasetConventionError."""
    ma = metadata.get(META_KEY)
    agents = ma.get("agents") if isinstance(ma, dict) else None
    if not isinstance(agents, list) or not agents or len(set(agents)) != len(agents):
        raise DatasetConventionError(
            f"write_dataset({dataset_id!r}): metadata needs a '{META_KEY}' block with a "
            f"non-empty list of distinct 'agents', got {ma if ma is None else agents!r} "
            "(see docs/convention.md; check=False writes anything)."
        )
    for name, space in (("observation", observation_space), ("action", action_space)):
        keys = list(space.spaces) if isinstance(space, spaces.Dict) else None
        if keys is None or set(keys) != set(agents) or len(keys) != len(agents):
            raise DatasetConventionError(
                f"write_dataset({dataset_id!r}): the {name} space must be a Dict over the "
                f"agents {agents}, got {space}."
            )
    return list(agents)


def _check_buffer(
    ep: EpisodeBuffer, index: int, dataset_id: str, agents: list[str],
    observation_space: spaces.Dict, action_space: spaces.Dict,
) -> None:
    """Raise DatasetConventionError naming the first thing wrong with episode ``index``."""

    def fail(what: str) -> None:
        raise DatasetConventionError(f"write_dataset({dataset_id!r}), episode {index}: {what}.")

    n = len(ep.rewards)
    if n < 1:
        fail("it has no steps")
    for name, arr in (("terminations", ep.terminations), ("truncations", ep.truncations)):
        if np.shape(arr) != (n,):
            fail(f"{name} has shape {np.shape(arr)}, expected ({n},) like rewards")
    for field, tree, space, length in (
        ("observations", ep.observations, observation_space, n + 1),
        ("actions", ep.actions, action_space, n),
    ):
        if not isinstance(tree, dict) or set(tree) != set(agents):
            got = sorted(tree) if isinstance(tree, dict) else type(tree).__name__
            fail(f"{field} must be a dict over the agents {agents}, got {got}")
        for a in agents:
            _check_leaf_lengths(tree[a], space[a], length, f"{field}[{a!r}]", fail)
    infos = ep.infos if isinstance(ep.infos, dict) else {}
    for key in ("rewards", "alive"):
        per_agent = infos.get(key)
        if not isinstance(per_agent, dict) or set(per_agent) != set(agents):
            fail(f"infos[{key!r}] must be a dict over the agents {agents}")
        for a in agents:
            if np.shape(per_agent[a]) != (n + 1,):
                fail(f"infos[{key!r}][{a!r}] has shape {np.shape(per_agent[a])}, expected ({n + 1},)")


def _check_leaf_lengths(tree: Any, space: spaces.Space, length: int, where: str, fail) -> None:
    if isinstance(space, spaces.Dict):
        if not isinstance(tree, dict) or set(tree) != set(space.spaces):
            fail(f"{where} must be a dict with keys {sorted(space.spaces)}")
        for k, sub in space.spaces.items():
            _check_leaf_lengths(tree[k], sub, length, f"{where}[{k!r}]", fail)
        return
    shape = np.shape(tree)
    want = (length,) + tuple(space.shape or ())
    if shape != want:
        fail(f"{where} has shape {shape}, expected {want} for {space}")


def _episode_buffer(
    steps_obs: list[dict[str, Any]],
    steps_act: list[dict[str, Any]],
    team_rewards: list[float],
    terms: list[bool],
    truncs: list[bool],
    infos: list[dict[str, Any]],
    seed: int | None,
) -> EpisodeBuffer:
    return EpisodeBuffer(
        seed=seed,
        observations=_stack_tree(steps_obs),
        actions=_stack_tree(steps_act),
        rewards=np.asarray(team_rewards, dtype=np.float64),
        terminations=np.asarray(terms, dtype=bool),
        truncations=np.asarray(truncs, dtype=bool),
        infos=_stack_tree(infos),
    )


def _policy_name(policy: Any) -> str:
    return str(getattr(policy, "name", None) or type(policy).__name__)


def _jsonable(value: Any, where: str) -> Any:
    """``value`` with numpy scalars/arrays and tuples turned into JSON types, or TypeError."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            key = k.item() if isinstance(k, np.generic) else k
            if not isinstance(key, str):
                if not (key is None or isinstance(key, (bool, int, float))):
                    raise TypeError(
                        f"{where} has a key {k!r} of type {type(k).__name__}; metadata is "
                        "stored as JSON, whose keys are strings."
                    )
                key = json.dumps(key)  # what JSON does to 2, 2.5, True, None keys
            out[key] = _jsonable(v, f"{where}[{k!r}]")
        return out
    raise TypeError(
        f"{where} holds a {type(value).__name__} ({value!r}), which cannot be stored in the "
        "dataset's JSON metadata; pass plain numbers, strings, lists or dicts."
    )


def _action_value(space: spaces.Space, action: Any, agent: str, policy: Any) -> np.ndarray:
    """``action`` as an array of ``space``'s shape and dtype; one clear error if it is not."""
    if isinstance(space, spaces.Discrete) and isinstance(action, (int, np.integer)):
        # fast path for the common case (gymnasium's contains() costs ~5% of recording MPE)
        if int(space.start) <= int(action) < int(space.start) + int(space.n):
            return np.asarray(action, dtype=np.int64)
    who = f"{_policy_name(policy)}.act() returned for agent {agent!r}"
    try:
        arr = np.asarray(action)
        if space.dtype is not None and arr.dtype.kind in "biuf":
            if space.dtype.kind in "iu" and arr.dtype.kind == "f":
                if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
                    raise ValueError("a non-integer value for an integer action space")
            arr = arr.astype(space.dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{who} the action {action!r}, not valid for {space}: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{who} the action {action!r}, not valid for {space}: not a number.")
    shape = space.shape or ()
    if arr.size != int(np.prod(shape)):
        raise ValueError(
            f"{who} the action {action!r} (shape {arr.shape}, dtype {arr.dtype}); its action "
            f"space {space} wants shape {shape}."
        )
    arr = arr.reshape(shape)
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(f"{who} a non-finite action {arr.tolist()} (NaN or inf).")
    if not isinstance(space, spaces.Box) and not space.contains(arr):
        raise ValueError(f"{who} the action {arr.tolist()}, outside its action space {space}.")
    return arr


def rollout_returns(
    env: JointEnv, policy: Any, num_episodes: int, seed: int = 0
) -> np.ndarray:
    """Mean-team returns of ``policy`` over ``num_episodes`` episodes (seeds ``seed + i``)."""
    out = []
    for ep in range(num_episodes):
        joint_obs, _ = env.reset(seed=seed + ep)
        if hasattr(policy, "reset"):
            policy.reset()
        total, done = 0.0, False
        while not done:
            acts = policy.act(env.agent_obs(joint_obs))
            joint_obs, r, term, trunc, _ = env.step(acts)
            total += r
            done = term or trunc
        out.append(total)
    return np.asarray(out)


def record_dataset(
    env_or_id: str | ParallelEnv,
    policy: Any,
    num_episodes: int,
    dataset_id: str,
    *,
    env_kwargs: dict[str, Any] | None = None,
    seed: int = 0,
    ref_min_score: float | None = None,
    ref_max_score: float | None = None,
    expert_policy: Any = None,
    num_ref_episodes: int = 20,
    behaviour_policy: str | None = None,
    info_keys: Sequence[str] = (),
    description: str | None = None,
    author: str = "diffusion-agents",
    extra_metadata: dict[str, Any] | None = None,
    show_progress: bool = True,
) -> minari.MinariDataset:
    """Record ``num_episodes`` joint episodes of ``policy`` into a new Minari dataset.

    Args:
        env_or_id: a :func:`wrappers.make_env` id (recommended: the dataset can then rebuild
            its env with ``recover_environment()``), or a built ``ParallelEnv``.
        policy: anything with ``act(obs_dict) -> action_dict`` (and optionally ``reset()``).
        dataset_id: Minari id, e.g. ``"mpe2/simple_spread/expert-v0"``; must not exist.
        ref_min_score: random-policy mean team return; measured over ``num_ref_episodes``
            episodes of :class:`RandomPolicy` when not given.
        ref_max_score: expert mean team return; or measured from ``expert_policy``. Left out
            of the metadata when neither is given (scores then cannot be normalized).
        info_keys: scalar per-agent info keys to keep (e.g. ``"battle_won"``).
        extra_metadata: more JSON-able entries for the ``"multiagent"`` metadata block.
    Returns:
        the new ``minari.MinariDataset`` (episode ``i`` was reset with seed ``seed + i``).
    """
    if num_episodes < 1:
        raise ValueError(f"num_episodes must be >= 1, got {num_episodes}.")
    if not callable(getattr(policy, "act", None)):
        raise TypeError(f"policy {policy!r} has no act(obs_dict) -> action_dict method.")
    _check_new_dataset_id(dataset_id)
    # Everything below ends up in JSON metadata: convert numpy scalars/tuples now and name
    # anything that cannot be stored, before any episode is played.
    # The env is built with env_kwargs as given; metadata and the env spec get the JSON form
    # (what recover_environment() will pass back).
    env_kwargs = dict(env_kwargs or {})
    env_kwargs_json = _jsonable(env_kwargs, "env_kwargs")
    extra_metadata = _jsonable(dict(extra_metadata or {}), "extra_metadata")
    ref_min_score = None if ref_min_score is None else float(ref_min_score)
    ref_max_score = None if ref_max_score is None else float(ref_max_score)
    if isinstance(env_or_id, str):
        env_id: str | None = env_or_id
        env = JointEnv(env_or_id, env_kwargs or {}, info_keys=info_keys)
        env_spec = joint_env_spec(env_or_id, env_kwargs_json, info_keys)
    else:
        if env_kwargs:
            raise ValueError(
                f"record_dataset() got env_kwargs {env_kwargs} with an already built env; "
                "pass an env id with env_kwargs, or the env alone."
            )
        env_id = None
        env = JointEnv(env=env_or_id, info_keys=info_keys)
        env_spec = None
        warnings.warn(
            "record_dataset() got an env object, not an id: the dataset will not be able "
            "to rebuild its env (recover_environment). Pass a make_env id to allow it.",
            stacklevel=2,
        )
    try:
        agents = env.possible_agents
        act_spaces = env.action_space.spaces
        zero_act = {a: zero_like(s) for a, s in act_spaces.items()}

        def episodes() -> Iterable[EpisodeBuffer]:
            bar = tqdm(range(num_episodes), desc=f"recording {dataset_id}", disable=not show_progress)
            for ep in bar:
                joint_obs, info = env.reset(seed=seed + ep)
                if hasattr(policy, "reset"):
                    policy.reset()
                obs_l, act_l, rew_l, term_l, trunc_l, info_l = [joint_obs], [], [], [], [], [info]
                done = False
                while not done:
                    present = env.agent_obs(joint_obs)
                    acts = policy.act(present)
                    if not isinstance(acts, Mapping):
                        raise TypeError(
                            f"{_policy_name(policy)}.act() returned a {type(acts).__name__}; it "
                            f"must return a dict {{agent: action}} for the agents {env.agents}."
                        )
                    missing = [a for a in env.agents if a not in acts]
                    if missing:
                        raise KeyError(
                            f"{_policy_name(policy)}.act() returned no action for agent(s) {missing}."
                        )
                    stored = {
                        a: _action_value(act_spaces[a], acts[a], a, policy)
                        if a in present
                        else zero_act[a]
                        for a in agents
                    }
                    joint_obs, r, term, trunc, info = env.step(acts)
                    act_l.append(stored)
                    obs_l.append(joint_obs)
                    rew_l.append(r)
                    term_l.append(term)
                    trunc_l.append(trunc)
                    info_l.append(info)
                    done = term or trunc
                yield _episode_buffer(obs_l, act_l, rew_l, term_l, trunc_l, info_l, seed + ep)

        if ref_min_score is None:
            ref_env = JointEnv(env=env.parallel_env, info_keys=info_keys)
            ref_min_score = float(
                rollout_returns(ref_env, RandomPolicy(env.parallel_env, seed=seed), num_ref_episodes, seed=10_000 + seed).mean()
            )
        if ref_max_score is None and expert_policy is not None:
            ref_max_score = float(
                rollout_returns(env, expert_policy, num_ref_episodes, seed=20_000 + seed).mean()
            )
        ma_meta: dict[str, Any] = {
            "convention": CONVENTION,
            "env_id": env_id,
            "env_kwargs": env_kwargs_json,
            "agents": list(agents),
            "behaviour_policy": behaviour_policy or _policy_name(policy),
            "team_reward": "mean over the agents present at the step",
            "has_state": env.has_state,
            "info_keys": list(info_keys),
            "seed": seed,
        }
        ma_meta.update(extra_metadata or {})
        metadata: dict[str, Any] = {
            META_KEY: ma_meta,
            "algorithm_name": behaviour_policy or _policy_name(policy),
            "author": {author},
            "description": description
            or f"{num_episodes} episodes of {ma_meta['behaviour_policy']} on {env_id}.",
            "ref_min_score": ref_min_score,
            "num_episodes_average_score": num_ref_episodes,
        }
        if ref_max_score is not None:
            metadata["ref_max_score"] = float(ref_max_score)
        if env_spec is not None:
            metadata["eval_env_spec"] = env_spec.to_json()
        return write_dataset(
            dataset_id,
            episodes(),
            observation_space=env.observation_space,
            action_space=env.action_space,
            metadata=metadata,
            env_spec=env_spec,
            num_episodes=num_episodes,
            show_progress=False,
        )
    finally:
        if env_id is not None:  # built here: release it (renderers, sockets)
            env.close()


# ---------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------


def _as_dataset(dataset: Any) -> minari.MinariDataset:
    if isinstance(dataset, minari.MinariDataset):
        return dataset
    if isinstance(dataset, (str, os.PathLike)):
        try:
            return minari.load_dataset(str(dataset))
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"No local Minari dataset {dataset!r}: {exc}") from None
        except (OSError, ValueError, KeyError) as exc:  # h5py / JSON errors name no file
            raise OSError(
                f"Cannot read Minari dataset {dataset!r} at {get_dataset_path(str(dataset))}: "
                f"{type(exc).__name__}: {exc} (corrupted or hand-edited files?)"
            ) from exc
    raise TypeError(f"Expected a minari.MinariDataset or a dataset id, got {type(dataset).__name__}.")


def check_convention(dataset: minari.MinariDataset) -> dict[str, Any]:
    """Validate ``dataset`` against the multi-agent convention; return its metadata block.

    Raises:
        DatasetConventionError: naming what is missing or inconsistent.
    """
    did = dataset.spec.dataset_id
    meta = dataset.storage.metadata
    ma = meta.get(META_KEY)
    for name, space in (("observation", dataset.observation_space), ("action", dataset.action_space)):
        if not isinstance(space, spaces.Dict):
            raise DatasetConventionError(
                f"Dataset {did!r} is not a multi-agent dataset: its {name} space is "
                f"{space}, not a Dict over agents (a single-agent dataset?)"
                + ("" if isinstance(ma, dict) else f" and its metadata has no '{META_KEY}' block")
                + "."
            )
    if not isinstance(ma, dict) or "agents" not in ma:
        raise DatasetConventionError(
            f"Dataset {did!r} is not a multi-agent dataset: its metadata has no "
            f"'{META_KEY}' block with an 'agents' list (record it with "
            "wrappers.record_dataset, or follow docs/convention.md)."
        )
    agents = ma["agents"]
    if (
        not isinstance(agents, list)
        or not agents
        or not all(isinstance(a, str) for a in agents)
        or len(set(agents)) != len(agents)
    ):
        raise DatasetConventionError(
            f"Dataset {did!r}: metadata '{META_KEY}.agents' must be a non-empty list of "
            f"distinct agent names, got {agents!r}."
        )
    for name, space in (("observation", dataset.observation_space), ("action", dataset.action_space)):
        # Compare as sets: Minari stores Dict spaces as JSON and rebuilds them with a plain
        # dict, which gymnasium sorts, so the agent order lives in the metadata only.
        keys = list(space.spaces)
        if set(keys) != set(agents) or len(keys) != len(agents):
            missing = [a for a in agents if a not in space.spaces]
            extra = [k for k in keys if k not in agents]
            raise DatasetConventionError(
                f"Dataset {did!r}: {name} space keys {keys} do not match the metadata "
                f"agents {agents} (missing: {missing}, unexpected: {extra})."
            )
    return ma


def _info_field(infos: dict | None, key: str, did: str, ep_id: int) -> Any:
    if not infos or key not in infos:
        raise DatasetConventionError(
            f"Dataset {did!r}, episode {ep_id}: infos has no {key!r} entry "
            f"(the convention stores per-agent infos['rewards'] and infos['alive'])."
        )
    if not isinstance(infos[key], dict):
        raise DatasetConventionError(
            f"Dataset {did!r}, episode {ep_id}: infos[{key!r}] is a "
            f"{type(infos[key]).__name__}, expected a dict {{agent: (T + 1,) array}}."
        )
    return infos[key]


def load_episodes(
    dataset: minari.MinariDataset | str,
    *,
    max_episodes: int | None = None,
    show_progress: bool = False,
) -> EpisodeBatch:
    """Read a multi-agent Minari dataset into padded arrays (see :class:`EpisodeBatch`)."""
    ds = _as_dataset(dataset)
    ma = check_convention(ds)
    did = ds.spec.dataset_id
    agents = tuple(ma["agents"])
    obs_spaces = {a: ds.observation_space.spaces[a] for a in agents}
    act_spaces = {a: ds.action_space.spaces[a] for a in agents}
    obs_dims = tuple(obs_dim(obs_spaces[a]) for a in agents)
    act_dims = tuple(action_dim(act_spaces[a]) for a in agents)
    n_acts = tuple(n_actions(act_spaces[a]) for a in agents)
    masked = [has_action_mask(obs_spaces[a]) for a in agents]

    ids = list(ds.episode_indices)
    if max_episodes is not None:
        ids = ids[:max_episodes]
    if not ids:
        raise DatasetConventionError(f"Dataset {did!r} has no episodes.")
    try:
        episodes = list(
            tqdm(
                ds.iterate_episodes(ids), total=len(ids), disable=not show_progress,
                desc=f"loading {did}",
            )
        )
    except (OSError, KeyError) as exc:  # h5py errors name neither the dataset nor the file
        raise OSError(
            f"Cannot read the episodes of Minari dataset {did!r} at {ds.spec.data_path}: "
            f"{type(exc).__name__}: {exc} (corrupted or hand-edited files?)"
        ) from exc
    E, A = len(episodes), len(agents)
    T = max(len(ep.rewards) for ep in episodes)
    D, K = max(obs_dims), max(act_dims)
    N = max(n_acts) if any(n_acts) else 0

    obs = np.zeros((E, T + 1, A, D), np.float32)
    actions = np.zeros((E, T, A, K), np.float32)
    masks = np.zeros((E, T + 1, A, N), bool) if any(masked) else None
    rewards = np.zeros((E, T, A), np.float32)
    team = np.zeros((E, T), np.float32)
    terms = np.zeros((E, T), bool)
    truncs = np.zeros((E, T), bool)
    valid = np.zeros((E, T), bool)
    alive = np.zeros((E, T + 1, A), bool)
    lengths = np.zeros(E, np.int64)
    synthetic = np.zeros(E, bool)
    info_keys = [str(k) for k in (ma.get("info_keys") or [])]
    step_infos = {k: np.full((E, T + 1), np.nan, np.float32) for k in info_keys}
    states = None
    for e, ep in enumerate(episodes):
        n = len(ep.rewards)
        lengths[e] = n
        valid[e, :n] = True
        team[e, :n] = ep.rewards
        terms[e, :n] = ep.terminations
        truncs[e, :n] = ep.truncations
        infos = ep.infos
        r_info = _info_field(infos, "rewards", did, ep.id)
        a_info = _info_field(infos, "alive", did, ep.id)
        for i, a in enumerate(agents):
            if a not in r_info or a not in a_info:
                raise DatasetConventionError(
                    f"Dataset {did!r}, episode {ep.id}: infos['rewards'/'alive'] lack agent {a!r}."
                )
            o = ep.observations[a]
            core = o["observation"] if masked[i] else o
            core = np.asarray(core)
            flat = core.reshape(n + 1, -1).astype(np.float32)
            if not isinstance(core_obs_space(obs_spaces[a]), spaces.Box):
                flat = np.stack([flatten_obs(obs_spaces[a], _index(o, t)) for t in range(n + 1)])
            obs[e, : n + 1, i, : obs_dims[i]] = flat
            actions[e, :n, i, : act_dims[i]] = np.asarray(ep.actions[a], np.float32).reshape(n, -1)
            if masks is not None:
                if masked[i]:
                    masks[e, : n + 1, i, : n_acts[i]] = np.asarray(o["action_mask"]).astype(bool)
                else:
                    masks[e, :, i, : max(n_acts[i], 1)] = True
            r_a, alive_a = np.asarray(r_info[a]), np.asarray(a_info[a])
            for key, arr in (("rewards", r_a), ("alive", alive_a)):
                if arr.shape != (n + 1,):
                    raise DatasetConventionError(
                        f"Dataset {did!r}, episode {ep.id}: infos[{key!r}][{a!r}] has shape "
                        f"{arr.shape}, expected ({n + 1},) (one entry per observation)."
                    )
            rewards[e, :n, i] = r_a[1 : n + 1]
            alive[e, : n + 1, i] = alive_a.astype(bool)
        if "state" in infos:
            st = np.asarray(infos["state"], np.float32).reshape(n + 1, -1)
            if states is None:
                states = np.zeros((E, T + 1, st.shape[1]), np.float32)
            states[e, : n + 1] = st
        if "synthetic" in infos:
            synthetic[e] = bool(np.asarray(infos["synthetic"]).any())
        for key in info_keys:
            if key in infos:
                step_infos[key][e, : n + 1] = np.asarray(infos[key], np.float32).reshape(n + 1)
    acted = alive[:, :-1] & alive[:, 1:] & valid[:, :, None]
    # Stored "no action" placeholders are a zero sample of the space, which is not 0 for a
    # Discrete(n, start=s) agent: make the array zero wherever the agent did not act.
    actions[~acted] = 0.0
    meta = ds.storage.metadata
    return EpisodeBatch(
        agents=agents,
        observation_spaces=obs_spaces,
        action_spaces=act_spaces,
        obs=obs,
        obs_dims=obs_dims,
        actions=actions,
        act_dims=act_dims,
        n_actions=n_acts,
        action_masks=masks,
        rewards=rewards,
        team_rewards=team,
        terminations=terms,
        truncations=truncs,
        valid=valid,
        lengths=lengths,
        alive=alive,
        acted=acted,
        states=states,
        synthetic=synthetic,
        ref_min_score=_opt_float(meta.get("ref_min_score")),
        ref_max_score=_opt_float(meta.get("ref_max_score")),
        dataset_id=did,
        metadata=dict(ma),
        step_infos=step_infos,
    )


def _index(tree: Any, t: int) -> Any:
    if isinstance(tree, dict):
        return {k: _index(v, t) for k, v in tree.items()}
    return np.asarray(tree)[t]


def _opt_float(x: Any) -> float | None:
    return None if x is None else float(x)


# ---------------------------------------------------------------------------------------
# EpisodeBatch -> Minari episodes (for writing transformed datasets, e.g. EAQ)
# ---------------------------------------------------------------------------------------


def batch_to_buffers(
    batch: EpisodeBatch, extra_infos: Callable[[int], dict[str, np.ndarray]] | None = None
) -> Iterable[EpisodeBuffer]:
    """Turn each episode of ``batch`` back into a Minari ``EpisodeBuffer`` of the convention.

    Flat observations are unflattened with each agent's space; masks are restored from
    ``action_masks``; ``step_infos`` (e.g. ``battle_won``) are written for the episodes that
    carry them (not NaN). ``extra_infos(e)`` may add per-step info arrays ``(T_e + 1, ...)``.
    """
    for e in range(batch.num_episodes):
        n = int(batch.lengths[e])
        observations: dict[str, Any] = {}
        acts: dict[str, Any] = {}
        r_info, a_info = {}, {}
        for i, a in enumerate(batch.agents):
            space = batch.observation_spaces[a]
            core = core_obs_space(space)
            flat = batch.obs[e, : n + 1, i, : batch.obs_dims[i]]
            if isinstance(core, spaces.Box):
                o = flat.reshape((n + 1,) + core.shape).astype(core.dtype)
            else:
                o = _stack_tree([spaces.unflatten(core, f) for f in flat])
            if has_action_mask(space):
                mask_space = space.spaces["action_mask"]
                m = batch.action_masks[e, : n + 1, i, : batch.n_actions[i]]
                o = {"observation": o, "action_mask": m.astype(mask_space.dtype)}
            observations[a] = o
            aspace = batch.action_spaces[a]
            idle = zero_like(aspace)  # what record_dataset stores when an agent did not act
            acts[a] = np.stack([
                vector_to_action(aspace, v) if batch.acted[e, t, i] else idle
                for t, v in enumerate(batch.actions[e, :n, i])
            ]) if n else np.zeros((0,), np.float32)
            r_info[a] = np.concatenate([[0.0], batch.rewards[e, :n, i]]).astype(np.float64)
            a_info[a] = batch.alive[e, : n + 1, i].copy()
        infos: dict[str, Any] = {"rewards": r_info, "alive": a_info}
        if batch.states is not None:
            infos["state"] = batch.states[e, : n + 1]
        for key, arr in batch.step_infos.items():
            if not np.isnan(arr[e, : n + 1]).any():
                infos[key] = arr[e, : n + 1].astype(np.float64)
        if extra_infos is not None:
            infos.update(extra_infos(e))
        yield EpisodeBuffer(
            observations=observations,
            actions=acts,
            rewards=batch.team_rewards[e, :n].astype(np.float64),
            terminations=batch.terminations[e, :n].copy(),
            truncations=batch.truncations[e, :n].copy(),
            infos=infos,
        )


def episode_buffers(
    dataset: minari.MinariDataset, indices: Iterable[int] | None = None
) -> Iterable[EpisodeBuffer]:
    """A dataset's episodes (all, or those ``indices``) as Minari buffers, every info key kept."""
    episodes = (
        dataset.iterate_episodes() if indices is None else dataset.iterate_episodes(list(indices))
    )
    for ep in episodes:
        yield EpisodeBuffer(
            observations=ep.observations,
            actions=ep.actions,
            rewards=np.asarray(ep.rewards),
            terminations=np.asarray(ep.terminations),
            truncations=np.asarray(ep.truncations),
            infos=ep.infos,
        )


# metadata a derived dataset (a subset, an augmentation) keeps from its source; the storage
# writes the rest (counts, spaces, ...)
SOURCE_META = (
    "ref_min_score",
    "ref_max_score",
    "num_episodes_average_score",
    "eval_env_spec",
    "author",
    "author_email",
    "code_permalink",
    "requirements",
)


def derived_dataset_id(source_id: str, suffix: str) -> str:
    """``namespace/name-vN`` -> ``namespace/name<suffix>-vN`` (e.g. ``.../medium-eaq-v0``)."""
    namespace, name, version = parse_dataset_id(source_id)
    new = f"{name}{suffix}" + (f"-v{version}" if version is not None else "")
    return f"{namespace}/{new}" if namespace else new


def derived_metadata(
    source_metadata: dict[str, Any], key: str, block: dict[str, Any], description: str
) -> dict[str, Any]:
    """Metadata of a dataset derived from another (a subset, an oracle augmentation).

    Keeps the source's :data:`SOURCE_META` entries and ``algorithm_name``, and a copy of its
    ``"multiagent"`` block (when it has one) with ``block`` added under ``key``.
    """
    src = source_metadata
    metadata: dict[str, Any] = {k: src[k] for k in (*SOURCE_META, "algorithm_name") if k in src}
    if META_KEY in src:
        ma = json.loads(json.dumps(src[META_KEY]))
        ma[key] = block
        metadata[META_KEY] = ma
    metadata["description"] = description
    return metadata


def subset_dataset(
    dataset: minari.MinariDataset | str,
    num_episodes: int,
    new_dataset_id: str,
    *,
    seed: int | None = 0,
    show_progress: bool = True,
) -> minari.MinariDataset:
    """Write ``num_episodes`` episodes of a dataset as a new dataset (the source is untouched).

    For data-scarce studies: the subset keeps the source's spaces, env spec, reference scores
    and ``"multiagent"`` block, to which it adds ``"subset": {"source_dataset_id",
    "episode_indices", "seed"}``. Episodes are drawn without replacement by
    ``numpy.random.default_rng(seed)`` and kept in the source's order; ``seed=None`` takes
    the first ``num_episodes``. Written atomically by :func:`write_dataset`.

    Raises:
        ValueError: ``num_episodes`` outside ``[1, total episodes]`` or the target is the source.
        FileExistsError: ``new_dataset_id`` exists.
    """
    ds = _as_dataset(dataset)
    source_id = ds.spec.dataset_id
    total = int(ds.total_episodes)
    if not 1 <= int(num_episodes) <= total:
        raise ValueError(
            f"num_episodes must be in [1, {total}] (the episodes of {source_id!r}), got {num_episodes}."
        )
    if new_dataset_id == source_id:
        raise ValueError(f"new_dataset_id {new_dataset_id!r} is the source id; pick another id.")
    _check_new_dataset_id(new_dataset_id)
    ids = np.asarray(ds.episode_indices)
    if seed is None:
        chosen = ids[: int(num_episodes)]
    else:
        chosen = np.sort(np.random.default_rng(seed).choice(ids, int(num_episodes), replace=False))
    metadata = derived_metadata(
        ds.storage.metadata,
        "subset",
        {
            "source_dataset_id": source_id,
            "episode_indices": [int(i) for i in chosen],
            "seed": seed,
        },
        f"{len(chosen)} of the {total} episodes of {source_id}"
        f" ({'the first' if seed is None else f'drawn with seed {seed}'}).",
    )
    return write_dataset(
        new_dataset_id,
        episode_buffers(ds, chosen),
        observation_space=ds.observation_space,
        action_space=ds.action_space,
        metadata=metadata,
        env_spec=ds.env_spec,
        num_episodes=len(chosen),
        show_progress=show_progress,
    )


__all__ = [
    "CONVENTION",
    "SOURCE_META",
    "DatasetConventionError",
    "EpisodeBatch",
    "batch_to_buffers",
    "check_convention",
    "derived_dataset_id",
    "derived_metadata",
    "episode_buffers",
    "load_episodes",
    "record_dataset",
    "rollout_returns",
    "subset_dataset",
    "write_dataset",
]
