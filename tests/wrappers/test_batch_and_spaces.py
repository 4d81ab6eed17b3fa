"""EpisodeBatch helpers, per-agent space helpers, info keys, namespaces and write races."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import minari
import numpy as np
import pytest
from gymnasium import spaces

from tests.wrappers.replay import LoggingPolicy
from wrappers import RandomPolicy, load_episodes, make_env, record_dataset
from wrappers.minari_io import batch_to_buffers, write_dataset
from wrappers.spaces import (
    action_dim,
    action_mask,
    action_to_vector,
    flatten_obs,
    obs_dim,
    vector_to_action,
    zero_like,
)

TOY = "tests.wrappers.toy_envs"


def _dying(dataset_id="test/dying/b-v0", n=4, **kw):
    env_id = f"{TOY}:make_dying_env"
    kwargs = {"deaths": [2, 3, 4], "jitter": 3, "max_cycles": 20}
    return record_dataset(env_id, LoggingPolicy(make_env(env_id, **kwargs), seed=1), n,
                          dataset_id, env_kwargs=kwargs, ref_min_score=-5.0,
                          ref_max_score=5.0, show_progress=False, **kw)


def test_select_onehot_returns_and_max_episodes():
    b = load_episodes(_dying())
    assert b.num_episodes == 4
    assert "EpisodeBatch(dataset_id='test/dying/b-v0', episodes=4" in repr(b)
    sub = b.select([2, 0])
    assert sub.num_episodes == 2 and sub.horizon == b.horizon
    np.testing.assert_array_equal(sub.obs, b.obs[[2, 0]])
    np.testing.assert_array_equal(sub.returns, b.returns[[2, 0]])
    assert sub.states is not None and sub.states.shape[0] == 2
    first = load_episodes("test/dying/b-v0", max_episodes=2)
    np.testing.assert_array_equal(first.lengths, b.lengths[:2])
    # one-hot: exactly one 1 per acted discrete agent-step, all zero otherwise
    oh = b.onehot_actions()
    assert oh.shape == b.actions.shape[:3] + (3,)
    for i, k in enumerate(b.n_actions):
        if k:
            np.testing.assert_array_equal(oh[..., i, :].sum(-1), b.acted[..., i])
            idx = oh[..., i, :].argmax(-1)
            np.testing.assert_array_equal(idx[b.acted[..., i]], b.actions[..., i, 0][b.acted[..., i]])
        else:
            assert not oh[..., i, :].any()
    assert b.discrete == (True, False, True)
    # returns ignore padding; normalize uses the stored reference scores
    np.testing.assert_allclose(b.returns, [b.team_rewards[e, : n].sum() for e, n in enumerate(b.lengths)], rtol=1e-6)
    np.testing.assert_allclose(b.normalize(5.0), 100.0)
    rtg = b.return_to_go(gamma=0.5)
    e = 0
    t = int(b.lengths[e]) - 1
    np.testing.assert_allclose(rtg[e, t], b.team_rewards[e, t], rtol=1e-6)
    np.testing.assert_allclose(rtg[e, t - 1], b.team_rewards[e, t - 1] + 0.5 * b.team_rewards[e, t], rtol=1e-6)


def test_onehot_with_discrete_start():
    env_id = f"{TOY}:make_dying_env"
    kwargs = {"deaths": [2, 3, 4], "jitter": 3, "max_cycles": 20, "action_start": 1}
    ds = record_dataset(env_id, LoggingPolicy(make_env(env_id, **kwargs), seed=1), 3,
                        "test/dying/start-v0", env_kwargs=kwargs, ref_min_score=0.0,
                        show_progress=False)
    b = load_episodes(ds)
    oh = b.onehot_actions()
    for i in (0, 2):  # Discrete(3, start=1) agents
        acted = b.acted[..., i]
        np.testing.assert_array_equal(oh[..., i, :].sum(-1), acted)
        np.testing.assert_array_equal(oh[..., i, :].argmax(-1)[acted] + 1, b.actions[..., i, 0][acted])


def test_info_keys_are_recorded_per_step():
    ds = _dying("test/dying/info-v0", n=2, info_keys=("hits",))
    b = load_episodes(ds)
    seen = set()
    for e, ep in enumerate(ds.iterate_episodes()):
        hits = np.asarray(ep.infos["hits"])
        n = len(ep.rewards)
        assert hits.shape == (n + 1,) and hits[0] == 0.0
        # "hits" is the agent's index: the info is the max over the agents that stepped
        want = [max(i for i in range(3) if b.acted[e, t, i]) for t in range(n)]
        np.testing.assert_array_equal(hits[1:], want)
        seen |= set(want)
    assert seen == {1, 2}  # the max really changes when bot_2 leaves first
    assert ds.storage.metadata["multiagent"]["info_keys"] == ["hits"]
    assert ds.recover_environment().unwrapped.info_keys == ("hits",)


def test_step_infos_survive_load_select_and_rewrite():
    ds = _dying("test/dying/info2-v0", n=3, info_keys=("hits",))
    b = load_episodes(ds)
    assert set(b.step_infos) == {"hits"} and b.step_infos["hits"].shape == b.obs.shape[:2]
    for e, ep in enumerate(ds.iterate_episodes()):
        n = len(ep.rewards)
        np.testing.assert_array_equal(b.step_infos["hits"][e, : n + 1], ep.infos["hits"])
        assert np.isnan(b.step_infos["hits"][e, n + 1 :]).all()
    sub = b.select([2, 0])
    np.testing.assert_array_equal(sub.step_infos["hits"], b.step_infos["hits"][[2, 0]])
    # an episode without the key (NaN, e.g. a synthetic one) is written without it
    sub.step_infos["hits"][1] = np.nan
    out = write_dataset(
        "test/dying/info2-copy-v0", batch_to_buffers(sub),
        observation_space=ds.observation_space, action_space=ds.action_space,
        metadata={"multiagent": dict(b.metadata)}, show_progress=False,
    )
    eps = list(out.iterate_episodes())
    assert "hits" in eps[0].infos and "hits" not in eps[1].infos
    again = load_episodes(out)
    n0 = int(sub.lengths[0]) + 1
    np.testing.assert_array_equal(again.step_infos["hits"][0, :n0], sub.step_infos["hits"][0, :n0])
    assert np.isnan(again.step_infos["hits"][1]).all()


@pytest.mark.parametrize("dataset_id", ["plain-v0", "one/two-v1", "a/b/c/d-v2"])
def test_namespaces(minari_root, dataset_id):
    ds = _dying(dataset_id, n=1)
    assert ds.spec.dataset_id == dataset_id
    assert dataset_id in minari.list_local_datasets()
    load_episodes(dataset_id)
    # siblings in the same and in parent namespaces
    parts = dataset_id.rsplit("/", 1)
    sibling = (parts[0] + "/" if len(parts) == 2 else "") + "other-v0"
    _dying(sibling, n=1)
    assert {dataset_id, sibling} <= set(minari.list_local_datasets())


def test_same_id_written_meanwhile_is_kept(minari_root):
    """A dataset that appears under our id while we record wins; ours is dropped cleanly."""

    class Racer(LoggingPolicy):
        def act(self, obs):
            if self.episode == 1 and len(self.log[-1]) == 1:
                _dying("test/race/x-v0", n=1)  # another writer finishes the same id
            return super().act(obs)

    env = make_env(f"{TOY}:make_hetero_env")
    with pytest.raises(FileExistsError, match="appeared .* while this one was being written"):
        record_dataset(f"{TOY}:make_hetero_env", Racer(env), 2, "test/race/x-v0",
                       ref_min_score=0.0, show_progress=False)
    assert not list(minari_root.rglob(".partial-*"))
    b = load_episodes("test/race/x-v0")  # the other writer's dataset, intact
    assert b.agents == ("bot_0", "bot_1", "bot_2") and b.num_episodes == 1


def test_written_files_are_not_private(minari_root):
    ds = _dying("test/perm/x-v0", n=1)
    root_mode = minari_root.stat().st_mode & 0o777
    folder = Path(ds.spec.data_path).parent
    assert folder.stat().st_mode & 0o777 == root_mode


def test_batch_to_buffers_extra_infos_and_synthetic_flag():
    src = _dying("test/dying/src-v0", n=2)
    b = load_episodes(src)
    digest = {p: hashlib.sha256(p.read_bytes()).hexdigest()
              for p in Path(src.spec.data_path).rglob("*") if p.is_file()}
    out = write_dataset(
        "test/dying/syn-v0",
        batch_to_buffers(b, extra_infos=lambda e: {
            "synthetic": np.ones(int(b.lengths[e]) + 1, bool)}),
        observation_space=src.observation_space, action_space=src.action_space,
        metadata={"multiagent": dict(b.metadata, source="test/dying/src-v0")},
        show_progress=False,
    )
    syn = load_episodes(out)
    assert syn.synthetic.all() and not b.synthetic.any()
    np.testing.assert_array_equal(syn.obs, b.obs)
    # the source dataset is untouched
    assert digest == {p: hashlib.sha256(p.read_bytes()).hexdigest()
                      for p in Path(src.spec.data_path).rglob("*") if p.is_file()}


def test_batch_to_buffers_clips_generated_discrete_actions():
    src = _dying("test/dying/gen-v0", n=1)
    b = load_episodes(src)
    acts = b.actions.copy()
    acts[..., 0, 0] = np.where(b.acted[..., 0], 7.4, 0.0)  # out of Discrete(3) range
    gen = dataclasses.replace(b, actions=acts)
    out = write_dataset("test/dying/gen2-v0", batch_to_buffers(gen),
                        observation_space=src.observation_space,
                        action_space=src.action_space,
                        metadata={"multiagent": b.metadata}, show_progress=False)
    again = load_episodes(out)
    assert (again.actions[..., 0, 0][b.acted[..., 0]] == 2).all()


# -- space helpers ---------------------------------------------------------------------------


def test_space_helpers():
    masked = spaces.Dict({"observation": spaces.Box(-1, 1, (2, 3), np.float32),
                          "action_mask": spaces.MultiBinary(4)})
    o = {"observation": np.ones((2, 3), np.float32), "action_mask": np.array([0, 1, 1, 0], np.int8)}
    assert obs_dim(masked) == 6 and flatten_obs(masked, o).shape == (6,)
    assert action_mask(masked, o).tolist() == [False, True, True, False]
    assert action_mask(spaces.Box(-1, 1, (2,)), np.zeros(2)) is None
    assert obs_dim(spaces.Discrete(5)) == 5
    np.testing.assert_array_equal(flatten_obs(spaces.Discrete(5), 3), [0, 0, 0, 1, 0])
    with pytest.raises(ValueError, match="no 'observation' key"):
        obs_dim(spaces.Dict({"action_mask": spaces.MultiBinary(2), "obs": spaces.Discrete(2)}))
    with pytest.raises(TypeError, match="Unsupported action space"):
        action_dim(spaces.Text(5))
    for space, action in [
        (spaces.Discrete(4, start=2), np.int64(5)),
        (spaces.MultiDiscrete([3, 4]), np.array([2, 3])),
        (spaces.MultiBinary(3), np.array([1, 0, 1], np.int8)),
        (spaces.Box(-1, 1, (2, 2), np.float32), np.full((2, 2), 0.5, np.float32)),
    ]:
        vec = action_to_vector(space, action)
        assert vec.shape == (action_dim(space),)
        back = vector_to_action(space, vec)
        assert space.contains(back) and np.array_equal(back, action)
        assert space.contains(vector_to_action(space, vec + 9.0)) or isinstance(space, spaces.Box)
    assert zero_like(spaces.Discrete(3, start=1)) == 1
    z = zero_like(masked)
    assert z["observation"].shape == (2, 3) and not z["action_mask"].any()


def test_random_policy_respects_masks_and_seeds():
    env = make_env(f"{TOY}:make_masked_env", n_agents=3, n_actions=5, max_cycles=30)
    pol_a, pol_b = RandomPolicy(env, seed=3), RandomPolicy(env, seed=3)
    obs, _ = env.reset(seed=0)
    seen = []
    while env.agents:
        acts = pol_a.act(obs)
        assert acts == pol_b.act(obs)
        for a, act in acts.items():
            assert obs[a]["action_mask"][act]
        seen.append(acts)
        obs, *_ = env.step(acts)
    assert len(seen) == 30
    het = make_env(f"{TOY}:make_odd_spaces_env")
    obs, _ = het.reset(seed=0)
    acts = RandomPolicy(het, seed=0).act(obs)
    assert all(het.action_space(a).contains(np.asarray(x, dtype=het.action_space(a).dtype)
                                            if not isinstance(het.action_space(a), spaces.Discrete)
                                            else x) for a, x in acts.items())
