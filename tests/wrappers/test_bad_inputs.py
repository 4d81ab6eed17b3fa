"""Bad datasets, ids and policies: one clear error each, and nothing written or changed."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import gymnasium as gym
import minari
import numpy as np
import pytest
from gymnasium import spaces
from minari.data_collector.episode_buffer import EpisodeBuffer

from tests.wrappers.replay import LoggingPolicy
from wrappers import (
    DatasetConventionError,
    RandomPolicy,
    load_episodes,
    make_env,
    record_dataset,
)
from wrappers.minari_io import write_dataset

# create_dataset_from_buffers nags about optional metadata (author, permalink, ...).
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:minari.utils")

TOY = "tests.wrappers.toy_envs"
SPREAD = ("mpe2/simple_spread_v3", {"N": 2, "max_cycles": 4})


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file()
    }


def _leftovers(root: Path) -> list[str]:
    return [p.name for p in root.rglob(".partial-*")]


def _record_spread(dataset_id: str, n: int = 2, **kw):
    env_id, kwargs = SPREAD
    return record_dataset(env_id, RandomPolicy(make_env(env_id, **kwargs), seed=0), n,
                          dataset_id, env_kwargs=kwargs, ref_min_score=0.0,
                          show_progress=False, **kw)


def _single_agent_buffers(n: int = 2) -> list[EpisodeBuffer]:
    rng = np.random.default_rng(0)
    return [
        EpisodeBuffer(
            observations=rng.normal(size=(4, 3)).astype(np.float32),
            actions=rng.integers(0, 2, size=3),
            rewards=np.ones(3),
            terminations=np.array([False, False, True]),
            truncations=np.zeros(3, bool),
            infos={},
        )
        for _ in range(n)
    ]


def _joint_buffers(agents, n=2, infos=True) -> list[EpisodeBuffer]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        info = {
            "rewards": {a: np.zeros(4) for a in agents},
            "alive": {a: np.ones(4, bool) for a in agents},
        } if infos else {}
        out.append(EpisodeBuffer(
            observations={a: rng.normal(size=(4, 2)).astype(np.float32) for a in agents},
            actions={a: rng.integers(0, 3, size=3) for a in agents},
            rewards=np.zeros(3),
            terminations=np.array([False, False, True]),
            truncations=np.zeros(3, bool),
            infos=info,
        ))
    return out


def _joint_spaces(agents):
    obs = spaces.Dict({a: spaces.Box(-np.inf, np.inf, (2,), np.float32) for a in agents})
    act = spaces.Dict({a: spaces.Discrete(3) for a in agents})
    return obs, act


# -- datasets that do not follow the convention --------------------------------------------


def test_single_agent_dataset_is_refused():
    ds = minari.create_dataset_from_buffers(
        "test/cartpole/single-v0", _single_agent_buffers(),
        observation_space=spaces.Box(-np.inf, np.inf, (3,), np.float32),
        action_space=spaces.Discrete(2), algorithm_name="random", author="test",
    )
    with pytest.raises(DatasetConventionError) as err:
        load_episodes(ds)
    msg = str(err.value)
    assert "test/cartpole/single-v0" in msg and "not a multi-agent dataset" in msg
    assert "single-agent" in msg and "'multiagent'" in msg
    with pytest.raises(DatasetConventionError, match="single-agent"):
        load_episodes("test/cartpole/single-v0")  # by id too


def test_single_agent_dataset_from_a_real_gymnasium_env():
    env = gym.make("CartPole-v1")
    bufs = []
    for seed in range(2):
        obs, _ = env.reset(seed=seed)
        o, a, r, te, tr = [obs], [], [], [], []
        for _ in range(5):
            act = env.action_space.sample()
            obs, rew, term, trunc, _ = env.step(act)
            o.append(obs), a.append(act), r.append(rew), te.append(term), tr.append(trunc)
        tr[-1] = True
        bufs.append(EpisodeBuffer(observations=np.stack(o), actions=np.array(a),
                                  rewards=np.array(r), terminations=np.array(te),
                                  truncations=np.array(tr), infos={}))
    ds = minari.create_dataset_from_buffers("test/cartpole/gym-v0", bufs, env=env,
                                            algorithm_name="random")
    with pytest.raises(DatasetConventionError, match="Box.*single-agent"):
        load_episodes(ds)


def test_multiagent_looking_dataset_without_metadata_is_refused():
    agents = ["a", "b"]
    obs, act = _joint_spaces(agents)
    ds = minari.create_dataset_from_buffers(
        "test/joint/nometa-v0", _joint_buffers(agents), observation_space=obs,
        action_space=act, algorithm_name="random",
    )
    with pytest.raises(DatasetConventionError) as err:
        load_episodes(ds)
    assert "no 'multiagent' block" in str(err.value) and "test/joint/nometa-v0" in str(err.value)


@pytest.mark.parametrize(
    "meta_agents, match",
    [
        (["a", "b", "c"], r"missing: \['c'\]"),
        (["a"], r"unexpected: \['b'\]"),
        (["a", "x"], r"missing: \['x'\], unexpected: \['b'\]"),
        (["a", "a"], "distinct agent names"),
        ("ab", "non-empty list"),
        ([], "non-empty list"),
    ],
)
def test_spaces_that_do_not_match_the_agents_are_refused(meta_agents, match):
    agents = ["a", "b"]
    obs, act = _joint_spaces(agents)
    ds = write_dataset("test/joint/mismatch-v0", _joint_buffers(agents), observation_space=obs,
                       action_space=act, metadata={"multiagent": {"agents": meta_agents}},
                       show_progress=False, check=False)
    with pytest.raises(DatasetConventionError, match=match):
        load_episodes(ds)


def test_mixed_dict_and_box_spaces_are_refused():
    agents = ["a", "b"]
    obs, _ = _joint_spaces(agents)
    bufs = [dataclasses.replace(b, actions=np.zeros(3, np.int64)) for b in _joint_buffers(agents)]
    ds = write_dataset("test/joint/boxact-v0", bufs, observation_space=obs,
                       action_space=spaces.Discrete(3),
                       metadata={"multiagent": {"agents": agents}}, show_progress=False, check=False)
    with pytest.raises(DatasetConventionError, match="action space is Discrete"):
        load_episodes(ds)


def test_episodes_without_per_agent_infos_are_refused():
    agents = ["a", "b"]
    obs, act = _joint_spaces(agents)
    ds = write_dataset("test/joint/noinfo-v0", _joint_buffers(agents, infos=False),
                       observation_space=obs, action_space=act,
                       metadata={"multiagent": {"agents": agents}}, show_progress=False, check=False)
    with pytest.raises(DatasetConventionError, match=r"episode 0: infos has no 'rewards'"):
        load_episodes(ds)
    bufs = _joint_buffers(agents)
    for b in bufs:
        del b.infos["alive"]["b"]
    ds = write_dataset("test/joint/noalive-v0", bufs, observation_space=obs,
                       action_space=act, metadata={"multiagent": {"agents": agents}},
                       show_progress=False, check=False)
    with pytest.raises(DatasetConventionError, match="lack agent 'b'"):
        load_episodes(ds)


def test_corrupted_dataset_files_name_the_dataset():
    ds = _record_spread("test/spread/corrupt-v0")
    data = Path(ds.spec.data_path)
    h5 = data / "main_data.hdf5"
    h5.write_bytes(h5.read_bytes()[:1000])  # truncated
    with pytest.raises(OSError, match=r"episodes of Minari dataset 'test/spread/corrupt-v0' at .*data"):
        load_episodes("test/spread/corrupt-v0")
    (data / "metadata.json").write_text("{not json")
    with pytest.raises(OSError, match=r"Cannot read Minari dataset 'test/spread/corrupt-v0'.*JSONDecodeError"):
        load_episodes("test/spread/corrupt-v0")


def test_per_agent_infos_with_wrong_shapes_are_refused():
    agents = ["a", "b"]
    obs, act = _joint_spaces(agents)
    bufs = _joint_buffers(agents)
    bufs[1].infos["rewards"]["b"] = np.zeros(3)  # one entry short
    ds = write_dataset("test/joint/short-v0", bufs, observation_space=obs, action_space=act,
                       metadata={"multiagent": {"agents": agents}}, show_progress=False, check=False)
    with pytest.raises(DatasetConventionError,
                       match=r"episode 1: infos\['rewards'\]\['b'\] has shape \(3,\), expected \(4,\)"):
        load_episodes(ds)
    bufs = _joint_buffers(agents)
    for b in bufs:
        b.infos["alive"] = np.ones(4, bool)
    ds = write_dataset("test/joint/flat-v0", bufs, observation_space=obs, action_space=act,
                       metadata={"multiagent": {"agents": agents}}, show_progress=False, check=False)
    with pytest.raises(DatasetConventionError, match=r"infos\['alive'\] is a ndarray, expected a dict"):
        load_episodes(ds)


def _broken_episode(kind: str, agents: list[str]) -> EpisodeBuffer:
    ep = _joint_buffers(agents, n=1)[0]
    if kind == "missing agent obs":
        return dataclasses.replace(ep, observations={"a": ep.observations["a"]})
    if kind == "short actions":
        return dataclasses.replace(ep, actions={a: v[:2] for a, v in ep.actions.items()})
    if kind == "wrong obs width":
        return dataclasses.replace(ep, observations={a: np.zeros((4, 5), np.float32) for a in agents})
    if kind == "no alive":
        return dataclasses.replace(ep, infos={"rewards": ep.infos["rewards"]})
    if kind == "terminations length":
        return dataclasses.replace(ep, terminations=np.zeros(2, bool))
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind, match",
    [
        ("missing agent obs", r"episode 1: observations must be a dict over the agents \['a', 'b'\], got \['a'\]"),
        ("short actions", r"episode 1: actions\['a'\] has shape \(2,\), expected \(3,\)"),
        ("wrong obs width", r"episode 1: observations\['a'\] has shape \(4, 5\), expected \(4, 2\)"),
        ("no alive", r"episode 1: infos\['alive'\] must be a dict over the agents"),
        ("terminations length", r"episode 1: terminations has shape \(2,\), expected \(3,\)"),
    ],
)
def test_write_dataset_refuses_broken_episodes_and_leaves_nothing(minari_root, kind, match):
    agents = ["a", "b"]
    obs, act = _joint_spaces(agents)
    bufs = [_joint_buffers(agents, n=1)[0], _broken_episode(kind, agents)]
    with pytest.raises(DatasetConventionError, match=match):
        write_dataset("test/joint/broken-v0", bufs, observation_space=obs, action_space=act,
                      metadata={"multiagent": {"agents": agents}}, show_progress=False)
    assert not list(minari_root.rglob("*"))


@pytest.mark.parametrize(
    "meta, spaces_for, match",
    [
        ({"multiagent": {}}, ["a", "b"], "needs a 'multiagent' block"),
        ({"multiagent": {"agents": ["a", "a"]}}, ["a", "b"], "distinct 'agents'"),
        ({"multiagent": {"agents": ["a", "b", "c"]}}, ["a", "b"], "observation space must be a Dict over the agents"),
    ],
)
def test_write_dataset_refuses_non_convention_metadata(minari_root, meta, spaces_for, match):
    obs, act = _joint_spaces(spaces_for)
    with pytest.raises(DatasetConventionError, match=match):
        write_dataset("test/joint/meta-v0", _joint_buffers(spaces_for), observation_space=obs,
                      action_space=act, metadata=meta, show_progress=False)
    with pytest.raises(ValueError, match="no episodes to write"):
        write_dataset("test/joint/empty-v0", [], observation_space=obs, action_space=act,
                      metadata={"multiagent": {"agents": spaces_for}}, show_progress=False)
    assert not list(minari_root.rglob("*"))


def test_loading_unknown_or_wrong_things():
    with pytest.raises(FileNotFoundError, match="test/none/here-v0"):
        load_episodes("test/none/here-v0")
    with pytest.raises(TypeError, match="minari.MinariDataset or a dataset id"):
        load_episodes(42)  # type: ignore[arg-type]


# -- existing ids: refused, nothing touched ------------------------------------------------


def test_existing_dataset_id_is_refused_and_untouched(minari_root):
    ds = _record_spread("test/spread/exists-v0")
    path = Path(ds.spec.data_path).parent
    assert path.is_dir() and path.is_relative_to(minari_root)
    before = _tree_digest(path)
    policy = LoggingPolicy(make_env(*SPREAD[:1], **SPREAD[1]), seed=0)
    with pytest.raises(FileExistsError, match="test/spread/exists-v0.*already exists"):
        record_dataset(SPREAD[0], policy, 2, "test/spread/exists-v0", env_kwargs=SPREAD[1],
                       show_progress=False)
    assert policy.log == []  # refused before any episode was played
    with pytest.raises(FileExistsError, match="already exists"):
        write_dataset("test/spread/exists-v0", [], observation_space=ds.observation_space,
                      action_space=ds.action_space, metadata={}, show_progress=False)
    assert _tree_digest(path) == before
    assert not _leftovers(minari_root)
    # reading never writes either
    load_episodes("test/spread/exists-v0")
    assert _tree_digest(path) == before


def test_malformed_dataset_ids():
    for bad, why in [("spread expert-v0", "Malformed"), ("mpe2/spread/expert", "-v<version>"),
                     ("", "Malformed")]:
        with pytest.raises(ValueError, match=why):
            _record_spread(bad)
    with pytest.raises(TypeError, match="dataset_id must be a string"):
        _record_spread(None)  # type: ignore[arg-type]


# -- bad policies and failures mid-recording -----------------------------------------------


class _DropAgent:
    name = "drop-agent"

    def act(self, obs):
        return {a: 0 for a in list(obs)[:-1]}


class _FailAt:
    """Acts like RandomPolicy until episode ``fail_episode``, step 2, then raises ``exc``."""

    name = "fail-at"

    def __init__(self, env, fail_episode, exc):
        self.inner = RandomPolicy(env, seed=0)
        self.fail_episode, self.exc, self.episode, self.t = fail_episode, exc, -1, 0

    def reset(self):
        self.episode, self.t = self.episode + 1, 0

    def act(self, obs):
        self.t += 1
        if self.episode == self.fail_episode and self.t == 2:
            raise self.exc
        return self.inner.act(obs)


def _assert_nothing_written(root: Path, dataset_id: str) -> None:
    assert not (root / dataset_id).exists()
    assert not _leftovers(root)
    with pytest.raises(FileNotFoundError):
        load_episodes(dataset_id)


def test_policy_returning_a_list(minari_root):
    class ListPolicy:
        def act(self, obs):
            return [0 for _ in obs]

    with pytest.raises(TypeError, match=r"ListPolicy.act\(\) returned a list; it must return a dict"):
        record_dataset(SPREAD[0], ListPolicy(), 1, "test/spread/list-v0",
                       env_kwargs=SPREAD[1], ref_min_score=0.0, show_progress=False)
    _assert_nothing_written(minari_root, "test/spread/list-v0")


def test_policy_omitting_an_agent(minari_root):
    with pytest.raises(KeyError, match=r"drop-agent.*no action.*'agent_1'"):
        record_dataset(SPREAD[0], _DropAgent(), 2, "test/spread/drop-v0",
                       env_kwargs=SPREAD[1], ref_min_score=0.0, show_progress=False)
    _assert_nothing_written(minari_root, "test/spread/drop-v0")


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()],
                         ids=["error", "interrupt"])
def test_failure_mid_recording_leaves_nothing(minari_root, exc):
    env = make_env(*SPREAD[:1], **SPREAD[1])
    _record_spread("test/spread/keep-v0")
    kept = _tree_digest(minari_root / "test/spread/keep-v0")
    with pytest.raises(type(exc)):
        record_dataset(SPREAD[0], _FailAt(env, 1, exc), 3, "test/spread/fail-v0",
                       env_kwargs=SPREAD[1], ref_min_score=0.0, show_progress=False)
    _assert_nothing_written(minari_root, "test/spread/fail-v0")
    assert _tree_digest(minari_root / "test/spread/keep-v0") == kept
    # the id is free again: a later, working recording succeeds
    _record_spread("test/spread/fail-v0")


@pytest.mark.parametrize(
    "env_id, kwargs, action, match",
    [
        (*SPREAD, 7, r"outside its action space Discrete\(5\)"),
        (*SPREAD, 1.5, "non-integer value"),
        (*SPREAD, [0, 1], r"wants shape \(\)"),
        (*SPREAD, "left", "not valid for Discrete"),
        ("mpe2/simple_spread_v3", {"N": 2, "max_cycles": 4, "continuous_actions": True},
         np.full(5, np.nan, np.float32), "non-finite"),
        ("mpe2/simple_spread_v3", {"N": 2, "max_cycles": 4, "continuous_actions": True},
         np.zeros(3, np.float32), r"wants shape \(5,\)"),
    ],
)
def test_bad_actions_name_the_agent(minari_root, env_id, kwargs, action, match):
    class Bad:
        name = "bad"

        def act(self, obs):
            return {a: action for a in obs}

    with pytest.raises(ValueError, match=match) as err:
        record_dataset(env_id, Bad(), 1, "test/spread/bad-v0", env_kwargs=kwargs,
                       ref_min_score=0.0, show_progress=False)
    assert "agent 'agent_0'" in str(err.value)
    _assert_nothing_written(minari_root, "test/spread/bad-v0")


def test_other_bad_arguments(minari_root):
    env_id, kwargs = SPREAD
    with pytest.raises(ValueError, match="num_episodes must be >= 1"):
        _record_spread("test/spread/zero-v0", n=0)
    with pytest.raises(TypeError, match="no act"):
        record_dataset(env_id, object(), 1, "test/spread/noact-v0", env_kwargs=kwargs)
    with pytest.raises(ValueError, match="Unknown env id"):
        record_dataset("nope/nope", RandomPolicy(make_env(env_id, **kwargs)), 1,
                       "test/spread/noenv-v0")
    with pytest.raises(TypeError, match="'bogus'"):
        record_dataset(env_id, RandomPolicy(make_env(env_id, **kwargs)), 1,
                       "test/spread/bogus-v0", env_kwargs={"bogus": 1})
    assert not any(minari_root.iterdir())


def test_metadata_must_be_json_and_numpy_scalars_are_converted(minari_root):
    env_id, kwargs = SPREAD
    policy = RandomPolicy(make_env(env_id, **kwargs), seed=0)
    with pytest.raises(TypeError, match=r"extra_metadata\['x'\]\[0\] holds a object"):
        record_dataset(env_id, policy, 1, "test/spread/json-v0", env_kwargs=kwargs,
                       extra_metadata={"x": [object()]}, show_progress=False)
    with pytest.raises(ValueError, match="env_kwargs .* already built env"):
        record_dataset(make_env(env_id, **kwargs), policy, 1, "test/spread/json-v0",
                       env_kwargs=kwargs, show_progress=False)
    assert not any(minari_root.iterdir())
    ds = record_dataset(env_id, policy, 1, "test/spread/json-v0",
                        env_kwargs={"N": np.int64(2), "max_cycles": np.int32(4)},
                        ref_min_score=np.float32(-3.5), extra_metadata={"arr": np.arange(2)},
                        show_progress=False)
    meta = ds.storage.metadata
    assert meta["multiagent"]["env_kwargs"] == {"N": 2, "max_cycles": 4}
    assert meta["multiagent"]["arr"] == [0, 1] and meta["ref_min_score"] == -3.5
    assert ds.recover_environment().unwrapped.env_kwargs == {"N": 2, "max_cycles": 4}


def test_masked_env_with_a_policy_that_ignores_masks_fails_cleanly(minari_root):
    env_id = f"{TOY}:make_masked_env"

    class Greedy:
        def act(self, obs):
            return {a: 0 for a in obs}  # sometimes masked out

    with pytest.raises(ValueError, match="illegal action"):
        record_dataset(env_id, Greedy(), 2, "test/masked/greedy-v0", ref_min_score=0.0,
                       show_progress=False)
    _assert_nothing_written(minari_root, "test/masked/greedy-v0")
    # RandomPolicy respects the masks, so recording with it works
    ds = record_dataset(env_id, RandomPolicy(make_env(env_id), seed=0), 2,
                        "test/masked/random-v0", num_ref_episodes=2, show_progress=False)
    b = load_episodes(ds)
    taken = b.actions[..., 0].astype(int)
    legal = np.take_along_axis(b.action_masks[:, :-1], taken[..., None], axis=-1)[..., 0]
    assert legal[b.acted].all()


def test_recording_from_an_env_object_warns_and_still_loads():
    env = make_env(f"{TOY}:make_hetero_env", max_cycles=3)
    with pytest.warns(UserWarning, match="recover_environment"):
        ds = record_dataset(env, RandomPolicy(env, seed=0), 2, "test/hetero/obj-v0",
                            ref_min_score=0.0, show_progress=False)
    b = load_episodes(ds)
    assert b.metadata["env_id"] is None and b.lengths.tolist() == [3, 3]
