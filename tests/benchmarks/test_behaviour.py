"""Behaviour-policy datasets: tiers, reference scores, skipping, the policy wrapper.

Two small PettingZoo envs are written here and reached through ``make_env``'s
``"package.module:factory"`` ids: a line-walk task PPO learns in a few thousand steps (so the
tier ordering is a real check), and a masked env whose agents die mid-episode.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import stat
from typing import Any

import minari
import numpy as np
import pytest
from gymnasium import spaces
from pettingzoo.utils.env import ParallelEnv

from benchmarks import behaviour
from benchmarks.behaviour import (
    DatasetConfig,
    PPOConfig,
    build_datasets,
    dataset_ids,
    dataset_namespace,
    format_summary,
    load_behaviour_policy,
    summarize,
)
from benchmarks.behaviour_policy import (
    AgentEncoder,
    BehaviourPolicy,
    FlatAgentsEnv,
    SnapshotSequencePolicy,
    make_vec_env,
    train_ppo,
)
from wrappers import load_episodes, make_env, record_dataset

# ---------------------------------------------------------------------------------------
# Toy envs
# ---------------------------------------------------------------------------------------


class WalkEnv(ParallelEnv):
    """Agents on a line walk to their own goals: obs ``[pos, goal, t / T]``, Discrete(3)."""

    metadata = {"render_modes": [], "name": "walk_v0", "is_parallelizable": True}

    def __init__(self, n_agents: int = 2, max_cycles: int = 8) -> None:
        self.possible_agents = [f"walker_{i}" for i in range(n_agents)]
        self.agents: list[str] = []
        self.max_cycles = max_cycles
        self.rng = np.random.default_rng(0)

    @functools.cache  # noqa: B019
    def observation_space(self, agent: str) -> spaces.Space:
        return spaces.Box(-np.inf, np.inf, (3,), np.float32)

    @functools.cache  # noqa: B019
    def action_space(self, agent: str) -> spaces.Space:
        return spaces.Discrete(3)

    def _obs(self) -> dict[str, np.ndarray]:
        t = self.t / self.max_cycles
        return {
            a: np.array([self.pos[i], self.goal[i], t], np.float32)
            for i, a in enumerate(self.possible_agents)
        }

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.t = 0
        self.agents = list(self.possible_agents)
        n = len(self.agents)
        self.pos = self.rng.uniform(-1, 1, n).astype(np.float32)
        self.goal = self.rng.uniform(-1, 1, n).astype(np.float32)
        return self._obs(), {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]):
        for i, a in enumerate(self.possible_agents):
            self.pos[i] += np.float32(0.25 * (int(actions[a]) - 1))
        self.t += 1
        rew = {
            a: -float(abs(self.pos[i] - self.goal[i]))
            for i, a in enumerate(self.possible_agents)
        }
        trunc = self.t >= self.max_cycles
        obs = self._obs()
        terms = {a: False for a in self.agents}
        truncs = {a: trunc for a in self.agents}
        infos = {a: {} for a in self.agents}
        if trunc:
            self.agents = []
        return obs, rew, terms, truncs, infos


class DyingMaskedEnv(ParallelEnv):
    """Discrete(4) agents with action masks; agent ``i`` dies on step ``deaths[i]``.

    Action ``(t + i) % 4`` is illegal for agent ``i`` at step ``t``; an illegal action, or an
    action for an agent that is gone, raises. Reward: the action index / 4.
    """

    metadata = {
        "render_modes": [],
        "name": "dying_masked_v0",
        "is_parallelizable": True,
    }

    def __init__(
        self, deaths: tuple | list = (2, 4, None), max_cycles: int = 6
    ) -> None:
        self.deaths = tuple(deaths)
        self.possible_agents = [f"unit_{i}" for i in range(len(self.deaths))]
        self.agents: list[str] = []
        self.max_cycles = max_cycles

    @functools.cache  # noqa: B019
    def observation_space(self, agent: str) -> spaces.Space:
        return spaces.Dict(
            {
                "observation": spaces.Box(-np.inf, np.inf, (2,), np.float32),
                "action_mask": spaces.MultiBinary(4),
            }
        )

    @functools.cache  # noqa: B019
    def action_space(self, agent: str) -> spaces.Space:
        return spaces.Discrete(4)

    def mask(self, i: int) -> np.ndarray:
        m = np.ones(4, np.int8)
        m[(self.t + i) % 4] = 0
        return m

    def _obs(self, agents: list[str]) -> dict[str, Any]:
        out = {}
        for a in agents:
            i = self.possible_agents.index(a)
            o = np.array([self.t / self.max_cycles, i], np.float32)
            out[a] = {"observation": o, "action_mask": self.mask(i)}
        return out

    def reset(self, seed: int | None = None, options: dict | None = None):
        self.t = 0
        self.agents = list(self.possible_agents)
        return self._obs(self.agents), {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]):
        extra = set(actions) - set(self.agents)
        if extra:
            raise ValueError(f"actions for agents not in the episode: {sorted(extra)}")
        rew = {}
        for a in self.agents:
            i = self.possible_agents.index(a)
            act = int(actions[a])
            if not self.mask(i)[act]:
                raise ValueError(f"{a} took illegal action {act} at step {self.t}")
            rew[a] = act / 4
        self.t += 1
        acting = list(self.agents)
        idx = {a: self.possible_agents.index(a) for a in acting}
        terms = {a: self.deaths[idx[a]] == self.t for a in acting}
        truncs = {a: self.t >= self.max_cycles and not terms[a] for a in acting}
        obs = self._obs(acting)
        infos = {a: {} for a in acting}
        self.agents = [a for a in acting if not (terms[a] or truncs[a])]
        return obs, rew, terms, truncs, infos


def make_walk_env(n_agents: int = 2, max_cycles: int = 8) -> WalkEnv:
    return WalkEnv(n_agents=n_agents, max_cycles=max_cycles)


def make_dying_masked_env(deaths: tuple | list = (2, 4, None), max_cycles: int = 6):
    return DyingMaskedEnv(deaths=deaths, max_cycles=max_cycles)


WALK = "tests.benchmarks.test_behaviour:make_walk_env"
DYING = "tests.benchmarks.test_behaviour:make_dying_masked_env"

TINY = DatasetConfig(
    episodes=40,
    eval_episodes=20,
    ref_episodes=40,
    ppo=PPOConfig(
        total_timesteps=12_288,
        n_envs=8,
        n_steps=64,
        batch_size=256,
        n_epochs=4,
        learning_rate=3e-3,
        num_snapshots=12,
    ),
)


@pytest.fixture(scope="module")
def walk_root(tmp_path_factory):
    """All tiers of the walk env, built once into a module-wide Minari root."""
    root = tmp_path_factory.mktemp("walk_minari")
    mp = pytest.MonkeyPatch()
    mp.setenv("MINARI_DATASETS_PATH", str(root))
    try:
        logs: list[str] = []
        build_datasets(WALK, config=TINY, seed=0, show_progress=False, log=logs.append)
    finally:
        mp.undo()
    return root


@pytest.fixture
def walk(walk_root, tmp_path, monkeypatch):
    """A private copy of the built walk datasets, as this test's Minari root."""
    root = tmp_path / "walk"
    shutil.copytree(walk_root, root)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


# ---------------------------------------------------------------------------------------
# Tiers
# ---------------------------------------------------------------------------------------


def test_tiers_are_ordered_by_return_and_carry_ref_scores(walk):
    ids = dataset_ids(WALK)
    rows = {r.tier: r for r in summarize(ids.values())}
    assert set(rows) == set(behaviour.TIERS)
    mean = {t: r.mean_return for t, r in rows.items()}
    assert mean["expert"] > mean["medium"] > mean["poor"] >= mean["random"], mean
    refs = set()
    for tier, did in ids.items():
        ds = minari.load_dataset(did)
        meta = ds.storage.metadata
        assert ds.total_episodes == TINY.episodes
        refs.add((meta["ref_min_score"], meta["ref_max_score"]))
        assert meta["multiagent"]["tier"] == tier
        batch = load_episodes(ds)
        assert batch.ref_min_score is not None and batch.ref_max_score is not None
    assert len(refs) == 1  # every tier shares the same reference scores
    ref_min, ref_max = refs.pop()
    assert ref_max > ref_min
    # the expert and random tiers score near 100 and 0 with their own episodes
    assert rows["expert"].normalized == pytest.approx(100.0, abs=15.0)
    assert rows["random"].normalized == pytest.approx(0.0, abs=15.0)
    manifest = json.loads(
        (behaviour.policies_dir(dataset_namespace(WALK)) / "manifest.json").read_text()
    )
    assert manifest["ref_min_score"] == ref_min and manifest["ref_max_score"] == ref_max
    umask = os.umask(0)
    os.umask(umask)
    for f in behaviour.policies_dir(dataset_namespace(WALK)).rglob("*.*"):
        # readable like the datasets beside them, not tempfile's private 0o600
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~umask, f
    medium_i = manifest["tiers"]["medium"]["snapshot"]
    assert manifest["tiers"]["poor"]["snapshot"] <= medium_i
    assert manifest["tiers"]["medium-replay"]["snapshots"] == list(range(medium_i + 1))
    table = format_summary(summarize(ids.values()))
    assert "medium-replay" in table and "normalized" in table


def test_existing_datasets_are_skipped_and_missing_tiers_reuse_policies(
    walk, monkeypatch
):
    ids = dataset_ids(WALK)
    files = {p: os.stat(p).st_mtime_ns for p in walk.rglob("*") if p.is_file()}

    def no_training(*args, **kwargs):
        raise AssertionError("PPO must not be retrained")

    monkeypatch.setattr("benchmarks.behaviour_policy.train_ppo", no_training)
    logs: list[str] = []
    out = build_datasets(WALK, config=TINY, show_progress=False, log=logs.append)
    assert {t: d.spec.dataset_id for t, d in out.items()} == ids
    assert sum("skipping" in line for line in logs) == len(ids)
    assert {p: os.stat(p).st_mtime_ns for p in files} == files  # nothing rewritten

    before = minari.load_dataset(ids["medium"]).storage.metadata
    minari.delete_dataset(ids["medium"])
    logs.clear()
    out = build_datasets(
        WALK,
        tiers=["medium", "expert"],
        config=TINY,
        show_progress=False,
        log=logs.append,
    )
    assert list(out) == ["medium", "expert"]
    after = out["medium"].storage.metadata
    assert after["ref_min_score"] == before["ref_min_score"]
    assert after["ref_max_score"] == before["ref_max_score"]
    assert any("reusing" in line for line in logs)


def test_policy_path_in_metadata_reloads_the_recording_policy(walk):
    ids = dataset_ids(WALK)
    ds = minari.load_dataset(ids["expert"])
    ma = ds.storage.metadata["multiagent"]
    path = walk / ma["behaviour_policy_path"]
    assert path.exists() and path.suffix == ".zip"
    policy = load_behaviour_policy(ds, deterministic=True)
    again = BehaviourPolicy.load(path, deterministic=True)
    env = make_env(WALK)
    obs, _ = env.reset(seed=3)
    for _ in range(4):
        a1, a2 = policy.act(obs), again.act(obs)
        assert a1 == a2
        obs, *_ = env.step(a1)
    replay = load_behaviour_policy(ids["medium-replay"])
    assert isinstance(replay, SnapshotSequencePolicy)
    replay_meta = minari.load_dataset(ids["medium-replay"]).storage.metadata[
        "multiagent"
    ]
    assert len(replay.policies) == len(replay_meta["behaviour_policy_paths"])
    with pytest.raises(ValueError, match="behaviour_build"):
        load_behaviour_policy(_plain_dataset())


def _plain_dataset():
    from wrappers import RandomPolicy

    env = make_env(WALK)
    return record_dataset(
        WALK, RandomPolicy(env, seed=0), 2, "plain/walk/random-v0", show_progress=False
    )


# ---------------------------------------------------------------------------------------
# The policy wrapper and the training env
# ---------------------------------------------------------------------------------------


def test_policy_acts_for_exactly_the_agents_present_and_respects_masks():
    config = PPOConfig(
        total_timesteps=1536,
        n_envs=4,
        n_steps=32,
        batch_size=128,
        n_epochs=2,
        num_snapshots=2,
    )
    run = train_ppo(DYING, {}, config, seed=0, show_progress=False)
    assert type(run.model).__name__ == "MaskablePPO"
    policy = BehaviourPolicy(run.model, run.encoder, seed=1, env_id=DYING)
    env = make_env(DYING)
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        policy.reset()
        seen = set()
        while env.agents:
            acts = policy.act(obs)
            assert set(acts) == set(env.agents) == set(obs)
            seen.add(len(acts))
            for a, act in acts.items():
                assert obs[a]["action_mask"][act] == 1
            obs, *_ = env.step(acts)  # raises on an illegal or extra action
            obs = {a: obs[a] for a in env.agents}  # the dead keep a last observation
        assert seen == {3, 2, 1}
    sub = {"unit_2": env.reset(seed=0)[0]["unit_2"]}
    assert set(policy.act(sub)) == {"unit_2"}
    assert policy.act({}) == {}
    with pytest.raises(KeyError, match="unit_9"):
        policy.act({"unit_9": sub["unit_2"]})
    # a dataset recorded through the adapter round-trips with its alive flags
    ds = record_dataset(DYING, policy, 3, "toy/dying/ppo-v0", show_progress=False)
    batch = load_episodes(ds)
    assert batch.alive[:, :, 0].sum(axis=1).tolist() == [3, 3, 3]


def test_same_seed_same_policy():
    config = PPOConfig(
        total_timesteps=1024,
        n_envs=2,
        n_steps=64,
        batch_size=128,
        n_epochs=2,
        num_snapshots=2,
    )
    a = train_ppo(WALK, {}, config, seed=5, show_progress=False)
    b = train_ppo(WALK, {}, config, seed=5, show_progress=False)
    for k, v in a.model.policy.state_dict().items():
        assert np.array_equal(v.numpy(), b.model.policy.state_dict()[k].numpy()), k


def test_fast_pipeline_equals_supersuit_wrappers_on_heterogeneous_agents():
    """Our encoder reproduces pad_observations_v0 + pad_action_space_v0 + agent_indicator_v0."""
    env_id = "mpe2/simple_world_comm_v3"  # 34- and 28-wide observations, Discrete(20) and (5)
    fast, enc = make_vec_env(env_id, {}, n_envs=2, seed=7)
    slow, _ = make_vec_env(env_id, {}, n_envs=2, seed=7, supersuit_wrappers=True)
    assert (
        enc.masked and enc.mask_width == 20
    )  # padded actions of the Discrete(5) agents masked
    o1, o2 = fast.reset(), slow.reset()
    rng = np.random.default_rng(0)
    for _ in range(30):
        np.testing.assert_array_equal(o1, o2)
        masks = fast.env_method("action_masks")
        acts = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
        o1, r1, d1, _ = fast.step(acts)
        o2, r2, d2, _ = slow.step(acts)
        np.testing.assert_array_equal(r1, r2)
    # the policy-side encoding of raw observations equals SuperSuit's wrapper stack
    import supersuit as ss

    stack = ss.agent_indicator_v0(
        ss.pad_action_space_v0(
            ss.pad_observations_v0(FlatAgentsEnv(make_env(env_id), enc, encode=False))
        )
    )
    wrapped, _ = stack.reset(seed=7)
    raw, _ = make_env(env_id).reset(seed=7)
    for agent in enc.agents:
        np.testing.assert_array_equal(enc.encode(agent, raw[agent]), wrapped[agent])


def test_ids_and_bad_inputs():
    assert (
        dataset_ids("mpe2/simple_spread_v3")["expert"] == "mpe2/simple_spread/expert-v0"
    )
    assert dataset_ids("mpe2/simple_spread_v3", {"N": 3})["medium-replay"] == (
        "mpe2/simple_spread/medium-replay-v0"
    )
    assert dataset_namespace("mpe2/simple_spread_v3", {"N": 2, "max_cycles": 10}) == (
        "mpe2/simple_spread-N2-max_cycles10"
    )
    assert dataset_namespace("smax/smacv2_5_units") == "smax/smacv2_5_units"
    assert (
        dataset_namespace(WALK)
        == "custom/tests_benchmarks_test_behaviour-make_walk_env"
    )
    with pytest.raises(ValueError, match="great"):
        dataset_ids("mpe2/simple_spread_v3", tiers=["great"])
    mixed = {"a": spaces.Discrete(3), "b": spaces.Box(-1, 1, (2,))}
    box = {a: spaces.Box(-1, 1, (2,)) for a in mixed}
    with pytest.raises(ValueError, match="same kind of action space"):
        AgentEncoder(list(mixed), box, mixed)
    with pytest.raises(ValueError, match="poor_target"):
        DatasetConfig(poor_target=60.0, medium_target=50.0)


def test_cli_summary_lists_built_datasets(walk, capsys):
    from benchmarks.cli import main

    assert main(["datasets", "summary", "--env", WALK]) == 0
    out = capsys.readouterr().out
    for did in dataset_ids(WALK).values():
        assert did in out
    assert (
        main(["datasets", "make", "--env", WALK, "--no-progress", "--tiers", "expert"])
        == 0
    )
    assert "skipping" in capsys.readouterr().out


def test_snapshot_schedule_and_replay_shares():
    from benchmarks.behaviour_policy import snapshot_rollouts

    at = snapshot_rollouts(84, 12)
    assert at[0] == 0 and at == sorted(set(at)) and at[-1] < 84 and len(at) <= 12
    assert at[:4] == [0, 1, 2, 4]  # dense early, where PPO improves fastest
    assert snapshot_rollouts(1, 12) == [0]

    class Tag:
        def __init__(self, k):
            self.k = k

        def act(self, obs):
            return {a: self.k for a in obs}

    seq = SnapshotSequencePolicy([Tag(0), Tag(1), Tag(2)], 10, weights=[1, 3, 1])
    played = []
    for _ in range(20):  # wraps around after num_episodes
        seq.reset()
        played.append(seq.act({"a": None})["a"])
    assert played[:10] == [0, 0, 1, 1, 1, 1, 1, 1, 2, 2] and played[10:] == played[:10]
    with pytest.raises(ValueError, match="weights"):
        SnapshotSequencePolicy([Tag(0)], 5, weights=[-1])


# ---------------------------------------------------------------------------------------
# Oracle augmentations (benchmarks.eaq_oracle): real behaviour episodes added to a tier
# ---------------------------------------------------------------------------------------


def _files(root) -> dict[str, bytes]:
    import hashlib

    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).digest()
        for p in root.rglob("*")
        if p.is_file()
    }


def test_oracle_augmentations_add_new_behaviour_episodes_and_pick_by_return(walk):
    from minari.storage.datasets_root_dir import get_dataset_path

    from benchmarks.eaq_oracle import best_of, build_oracles, oracle_ids, pick
    from benchmarks.harness import dataset_info

    source_id = dataset_ids(WALK)["medium"]
    src_dir = get_dataset_path(source_id)
    before = _files(src_dir)
    logs: list[str] = []
    out = build_oracles(source_id, fresh=40, ratio=0.5, tops=(0.5,), best_ofs=(3,),
                        show_progress=False, log=logs.append)
    ids = oracle_ids(source_id, (0.5,), (3,))
    assert ids["top50"].endswith("medium-oracle-top50-v0") and out["top50"]["dataset_id"] == ids["top50"]
    assert ids["best3"].endswith("medium-oracle-best3-v0")
    assert _files(src_dir) == before  # the source is never modified

    source = load_episodes(source_id)
    fresh = load_episodes(ids["fresh"])
    assert fresh.num_episodes == 40
    # new episodes: other env seeds than the tier's, so other starts
    assert not np.allclose(fresh.obs[:5, 0], source.obs[:5, 0])
    added = {}
    for key in ("more", "top50", "best3"):
        ds = minari.load_dataset(ids[key])
        o = ds.storage.metadata["multiagent"]["oracle"]
        assert ds.total_episodes == 40 + 20 and o["source_dataset_id"] == source_id
        assert dataset_info(ids[key])["source_dataset_id"] == source_id
        batch = load_episodes(ds)
        np.testing.assert_array_equal(batch.obs[:40], source.obs)  # the source first, as is
        assert o["mean_return_added"] == pytest.approx(batch.returns[40:].mean())
        added[key] = (o, batch)
    more, top, best = (added[k][0] for k in ("more", "top50", "best3"))
    assert more["picks"] == [[0, i] for i in range(20)]
    np.testing.assert_array_equal(added["more"][1].obs[40:], fresh.obs[:20])
    # the guided oracle holds the 20 best of the 40 fresh episodes, and no worse one
    chosen = [i for _, i in top["picks"]]
    np.testing.assert_array_equal(added["top50"][1].obs[40:], fresh.obs[chosen])
    assert sorted(fresh.returns[chosen]) == sorted(np.sort(fresh.returns)[-20:])
    assert top["mean_return_added"] >= more["mean_return_added"]
    # best of 3: the same 20 starts as "more", each episode the best of its start's rollouts
    rollouts = [fresh] + [load_episodes(d) for d in best["fresh_dataset_ids"][1:]]
    assert len(rollouts) == 3 and all(r.num_episodes >= 20 for r in rollouts)
    np.testing.assert_array_equal(added["best3"][1].obs[40:, 0], fresh.obs[:20, 0])
    rets = np.stack([r.returns[:20] for r in rollouts])
    assert not np.allclose(rets[0], rets[1])  # other action draws from the same starts
    np.testing.assert_allclose(added["best3"][1].returns[40:], rets.max(axis=0), rtol=1e-6)
    assert best["mean_return_added"] >= more["mean_return_added"]
    assert dataset_info(source_id)["source_dataset_id"] is None

    # a second call reuses everything and rewrites nothing
    made = _files(walk)
    again = build_oracles(source_id, fresh=40, ratio=0.5, tops=(0.5,), best_ofs=(3,),
                          show_progress=False, log=logs.append)
    assert again["top50"]["reused"] and again["best3"]["reused"] and _files(walk) == made
    # refusals name the problem and write nothing
    with pytest.raises(ValueError, match="raise --fresh"):
        build_oracles(source_id, fresh=40, ratio=0.5, tops=(0.25,), show_progress=False,
                      log=logs.append)
    with pytest.raises(ValueError, match="policy seed"):
        build_oracles(source_id, fresh=40, seed=1, show_progress=False, log=logs.append)
    with pytest.raises(ValueError, match="fewer than"):
        build_oracles(source_id, fresh=80, show_progress=False, log=logs.append)
    with pytest.raises(ValueError, match="k >= 2"):
        build_oracles(source_id, fresh=40, best_ofs=(1,), show_progress=False)
    assert _files(walk) == made
    with pytest.raises(ValueError, match="behaviour_build"):
        build_oracles(_plain_dataset().spec.dataset_id, fresh=4, show_progress=False)
    assert pick([3.0, 1.0, 5.0, 5.0], 2, 0.5) == [2, 3]
    assert pick([3.0, 1.0, 5.0, 5.0], 2, None) == [0, 1]
    assert best_of([[1.0, 5.0, 2.0], [3.0, 5.0, 1.0]], 2) == [1, 0]
    with pytest.raises(ValueError, match="quantile"):
        pick([1.0], 1, 0.0)
