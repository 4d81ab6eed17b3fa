"""``python -m benchmarks.eaq_decode_ends`` on a tiny augmenter fitted on a toy env whose
agents die: both decodings of the same raw candidates, the real row, JSON and plot;
``EAQAugmenter.draw`` is deterministic per seed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import eaq_decode_ends
from diffusion_agents.eaq import EAQAugmenter
from tests.diffusion_agents.test_eaq_augment import TINY
from wrappers import RandomPolicy, load_episodes, make_env, record_dataset

ENV = "tests.wrappers.toy_envs:make_dying_env"
KWARGS = {"deaths": [2, 4], "max_cycles": 6, "jitter": 1}
DATASET = "toy/dying/decode-v0"


def test_decode_ends_reports_both_rules_on_the_same_candidates(tmp_path, capsys):
    env = make_env(ENV, **KWARGS)
    record_dataset(ENV, RandomPolicy(env, seed=0), 12, DATASET, env_kwargs=KWARGS,
                   ref_min_score=0.0, ref_max_score=1.0, show_progress=False)
    real = load_episodes(DATASET)
    aug = EAQAugmenter(TINY).fit(real, show_progress=False)
    model = aug.save(tmp_path / "model")

    a, b = aug.draw(10, seed=5), aug.draw(10, seed=5)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (10, aug.layout.num_features, aug.layout.horizon)
    assert not np.array_equal(a, aug.draw(10, seed=6))
    with pytest.raises(ValueError, match="num"):
        aug.draw(0)

    out, plot = tmp_path / "ends.json", tmp_path / "ends.png"
    rc = eaq_decode_ends.main(["--model", str(model), "--dataset", DATASET, "--num", "64",
                               "--threads", "1", "--out", str(out), "--plot", str(plot)])
    assert rc == 0
    report = json.loads(out.read_text())
    rows = report["rows"]
    assert set(rows) == {"real", "first", "fit"}
    assert rows["real"]["episodes"] == 12
    assert rows["real"]["length_mean"] == pytest.approx(real.lengths.mean())
    assert rows["real"]["return_mean"] == pytest.approx(real.returns.mean(), rel=1e-5)
    for rule in ("first", "fit"):
        assert 0.0 <= rows[rule]["acceptance"] <= 1.0
        if "length_mean" in rows[rule]:
            assert 1 <= rows[rule]["length_mean"] <= aug.layout.horizon - 1
    assert plot.stat().st_size > 0
    text = capsys.readouterr().out
    assert "| first |" in text and "| fit |" in text and "command:" in text


def test_decode_ends_refuses_a_dataset_of_other_agents(tmp_path):
    env = make_env(ENV, **KWARGS)
    record_dataset(ENV, RandomPolicy(env, seed=0), 6, DATASET, env_kwargs=KWARGS,
                   ref_min_score=0.0, ref_max_score=1.0, show_progress=False)
    model = EAQAugmenter(TINY.replace(n_steps=5)).fit(
        load_episodes(DATASET), show_progress=False).save(tmp_path / "model")
    other = "toy/masked/other-v0"
    masked = "tests.wrappers.toy_envs:make_masked_env"
    record_dataset(masked, RandomPolicy(make_env(masked, n_agents=4), seed=0), 2, other,
                   env_kwargs={"n_agents": 4}, ref_min_score=0.0, ref_max_score=1.0,
                   show_progress=False)
    with pytest.raises(SystemExit, match="agents"):
        eaq_decode_ends.main(["--model", str(model), "--dataset", other, "--num", "8"])
