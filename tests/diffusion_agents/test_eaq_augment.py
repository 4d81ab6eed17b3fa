"""eaq.augment(): a new Minari dataset, the source untouched, refused inputs write nothing."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import gymnasium as gym
import minari
import numpy as np
import pytest

from diffusion_agents import eaq
from diffusion_agents.eaq import EAQAugmenter, EAQConfig
from wrappers import (
    DatasetConventionError,
    RandomPolicy,
    load_episodes,
    make_env,
    record_dataset,
)
from wrappers.minari_io import write_dataset

# A small, fast model: the plumbing tests check files and metadata, not sample quality.
TINY = EAQConfig(
    n_steps=60, batch_size=16, dim=8, dim_mults=(1,), q_hidden=32, q_warmup_steps=20,
    n_diffusion_steps=20, sample_steps=5, sample_batch_size=64, range_margin=5.0,
    max_sample_rounds=20,
)
SOURCE = "mpe2/spread2/tiny-v0"


def _record_source(n: int = 8) -> minari.MinariDataset:
    kwargs = {"N": 2, "max_cycles": 4}
    env = make_env("mpe2/simple_spread_v3", **kwargs)
    return record_dataset(
        "mpe2/simple_spread_v3", RandomPolicy(env, seed=0), n, SOURCE, env_kwargs=kwargs,
        ref_min_score=-20.0, ref_max_score=-5.0, show_progress=False,
    )


def _tree(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (hidden ones too)."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def test_augment_writes_a_new_dataset_and_leaves_the_source_byte_identical(minari_root):
    src = _record_source()
    before = _tree(minari_root)
    out = eaq.augment(src, ratio=1.5, seed=0, config=TINY, show_progress=False)

    assert out.spec.dataset_id == "mpe2/spread2/tiny-eaq-v0"
    after = _tree(minari_root)
    assert {k: v for k, v in after.items() if k in before} == before  # source untouched
    assert not [k for k in after if ".partial" in k]

    again = minari.load_dataset("mpe2/spread2/tiny-eaq-v0")  # stock Minari reads it
    assert again.total_episodes == 8 + 12
    batch = load_episodes(again)
    assert batch.synthetic.tolist() == [False] * 8 + [True] * 12
    real = load_episodes(src)
    np.testing.assert_array_equal(batch.obs[:8], real.obs)
    np.testing.assert_array_equal(batch.actions[:8], real.actions)
    syn = batch.select(np.arange(8, 20))
    assert set(np.unique(syn.actions[..., 0][syn.acted])) <= set(range(5))
    assert syn.states is not None and np.abs(syn.states[:, 0]).sum() > 0
    meta = again.storage.metadata
    info = meta["multiagent"]["eaq"]
    assert info["source_dataset_id"] == SOURCE
    # the leaderboard pairs a derived dataset with its source through this field
    from benchmarks.harness import dataset_info

    assert dataset_info(out.spec.dataset_id)["source_dataset_id"] == SOURCE
    assert dataset_info(SOURCE)["source_dataset_id"] is None
    assert info["num_real_episodes"] == 8 and info["num_synthetic_episodes"] == 12
    assert 0 < info["acceptance_rate"] <= 1
    assert info["q_weight"] == TINY.q_weight and info["settings"]["n_steps"] == 60
    assert meta["ref_min_score"] == -20.0 and meta["ref_max_score"] == -5.0
    ep = next(iter(again.iterate_episodes([19])))
    assert ep.infos["synthetic"].all() and ep.infos["synthetic"].shape == (len(ep.rewards) + 1,)
    assert "synthetic" not in next(iter(again.iterate_episodes([0]))).infos

    # synthetic_only and an explicit id
    only = eaq.augment(
        src, num_episodes=5, new_dataset_id="mpe2/spread2/tiny-syn-v0", synthetic_only=True,
        seed=1, config=TINY, show_progress=False,
    )
    assert only.total_episodes == 5
    assert load_episodes(only).synthetic.all()
    assert _tree(minari_root / "mpe2" / "spread2" / "tiny-v0") == {
        k.split("tiny-v0/", 1)[1]: v for k, v in before.items() if "tiny-v0/" in k
    }


def _single_agent_dataset() -> str:
    env = minari.DataCollector(gym.make("CartPole-v1"))
    env.reset(seed=0)
    for _ in range(3):
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            env.reset()
    env.create_dataset("cartpole/single/plain-v0", algorithm_name="random")
    return "cartpole/single/plain-v0"


def test_refused_inputs_write_nothing(minari_root):
    src = _record_source(n=3)
    single = _single_agent_dataset()
    one = record_dataset(
        "mpe2/simple_v3", RandomPolicy(make_env("mpe2/simple_v3"), seed=0), 2,
        "mpe2/simple/one-v0", env_kwargs={"max_cycles": 3}, ref_min_score=0.0,
        show_progress=False,
    )
    # Dict spaces, real episodes, but no "multiagent" metadata block: not our convention
    wrong = write_dataset(
        "mpe2/spread2/nometa-v0",
        (
            __import__("minari").data_collector.episode_buffer.EpisodeBuffer(
                observations=ep.observations, actions=ep.actions, rewards=ep.rewards,
                terminations=ep.terminations, truncations=ep.truncations, infos=ep.infos,
            )
            for ep in src.iterate_episodes()
        ),
        observation_space=src.observation_space, action_space=src.action_space,
        metadata={}, show_progress=False,
    )
    taken = eaq.augment(src, num_episodes=2, seed=0, config=TINY, show_progress=False)
    before = _tree(minari_root)

    with pytest.raises(DatasetConventionError, match="not a multi-agent dataset"):
        eaq.augment(single, config=TINY, show_progress=False)
    with pytest.raises(ValueError, match="single agent"):
        eaq.augment(one, config=TINY, show_progress=False)
    with pytest.raises(DatasetConventionError, match="multiagent"):
        eaq.augment(wrong, config=TINY, show_progress=False)
    with pytest.raises(FileExistsError, match="tiny-eaq-v0"):
        eaq.augment(src, config=TINY, show_progress=False)
    with pytest.raises(ValueError, match="source id"):
        eaq.augment(src, new_dataset_id=SOURCE, config=TINY, show_progress=False)
    with pytest.raises(ValueError, match="Malformed"):
        eaq.augment(src, new_dataset_id="bad id!", config=TINY, show_progress=False)
    with pytest.raises(ValueError, match="not both"):
        eaq.augment(src, new_dataset_id="mpe2/spread2/x-v0", num_episodes=2, ratio=1.0,
                    config=TINY, show_progress=False)
    assert _tree(minari_root) == before
    assert taken.total_episodes == 5


def test_augmenter_save_load_and_same_seed_same_samples(tmp_path):
    src = _record_source(n=6)
    aug = EAQAugmenter(TINY.replace(n_steps=30)).fit(src, show_progress=False)
    a = aug.sample(10, seed=5, show_progress=False)
    b = aug.sample(10, seed=5, show_progress=False)
    np.testing.assert_array_equal(a.raw, b.raw)
    path = aug.save(tmp_path / "ckpt")
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "weights.safetensors"]
    loaded = EAQAugmenter.load(path)
    c = loaded.sample(10, seed=5, show_progress=False)
    np.testing.assert_array_equal(a.raw, c.raw)
    np.testing.assert_array_equal(a.batch.actions, c.batch.actions)
    with pytest.raises(FileExistsError):
        aug.save(path)
    (path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        EAQAugmenter.load(path)
    # same seed -> same fit
    again = EAQAugmenter(TINY.replace(n_steps=30)).fit(src, show_progress=False)
    np.testing.assert_array_equal(again.sample(10, seed=5, show_progress=False).raw, a.raw)


def test_cli_augment_fits_saves_and_samples_from_a_saved_model(tmp_path, capsys):
    import json

    from benchmarks.cli import main

    _record_source(n=4)
    cfg = json.dumps(TINY.replace(n_steps=20).to_dict())
    ckpt = tmp_path / "eaq_model"
    args = ["augment", SOURCE, "--num-episodes", "3", "--config", cfg, "--quiet"]
    assert main([*args, "--save-model", str(ckpt), "--seed", "3"]) == 0
    assert "wrote mpe2/spread2/tiny-eaq-v0: 4 real + 3 synthetic" in capsys.readouterr().out
    assert main([*args, "--from-model", str(ckpt), "--new-id", "mpe2/spread2/tiny2-v0"]) == 0
    assert minari.load_dataset("mpe2/spread2/tiny2-v0").total_episodes == 7
    # the record keeps the fit's seed apart from the sampling seed it was drawn with
    for new_id, sample_seed in (("tiny-eaq-v0", 3), ("tiny2-v0", 0)):
        info = minari.load_dataset(f"mpe2/spread2/{new_id}").storage.metadata["multiagent"]["eaq"]
        assert info["fit_settings"] == {"seed": 3, "device": "cpu"}, info["fit_settings"]
        assert info["settings"]["seed"] == sample_seed
    # sampling settings apply to a saved model; training settings cannot silently change
    sampling = json.dumps({"sample_steps": 2})
    base = ["augment", SOURCE, "--num-episodes", "3", "--quiet", "--from-model", str(ckpt)]
    assert main([*base, "--config", sampling, "--new-id", "mpe2/spread2/tiny3-v0"]) == 0
    info = minari.load_dataset("mpe2/spread2/tiny3-v0").storage.metadata["multiagent"]["eaq"]
    assert info["settings"]["sample_steps"] == 2, info
    with pytest.raises(SystemExit, match="fixed by the saved model.*'dim': \\(8, 16\\)"):
        main([*base, "--config", json.dumps({"dim": 16}), "--new-id", "mpe2/spread2/x-v0"])
    with pytest.raises(SystemExit, match="'q_weight'"):
        main([*base, "--q-weight", "0.9", "--new-id", "mpe2/spread2/x-v0"])


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_other_parameterizations_fit_sample_and_round_trip(tmp_path, prediction):
    with pytest.raises(ValueError, match="prediction"):
        EAQConfig(prediction="score")
    src = _record_source(n=6)
    aug = EAQAugmenter(TINY.replace(n_steps=30, prediction=prediction)).fit(src, show_progress=False)
    assert aug.model.diffusion.prediction == prediction
    res = aug.sample(10, seed=5, show_progress=False)
    assert res.num_accepted == 10 and np.isfinite(res.raw).all()
    loaded = EAQAugmenter.load(aug.save(tmp_path / "ckpt"))
    assert loaded.config.prediction == prediction
    np.testing.assert_array_equal(loaded.sample(10, seed=5, show_progress=False).raw, res.raw)
