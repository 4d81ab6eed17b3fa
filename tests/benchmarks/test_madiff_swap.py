"""``python -m benchmarks.madiff_swap``: diffusion model x inverse-dynamics head pairings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import madiff_swap
from benchmarks.algorithms.madiff import make_madiff_config
from benchmarks.algorithms.options import MADiffAdapterConfig
from benchmarks.harness import dataset_info, evaluate, normalize
from diffusion_agents import MADiffPolicy
from tests.benchmarks.harness_helpers import DATASET, make_dataset

TINY = {
    "base_width": 8, "dim_mults": [1], "inv_hidden": [32, 32], "history": 1, "horizon": 3,
    "n_steps": 10, "batch_size": 8, "ema_start": 5, "n_diffusion_steps": 20,
    "sampling_steps": 2, "checkpoint_every": 10_000, "learning_rate": 3e-3,
}


def _run(tmp_path, name: str, a: dict, b: dict) -> dict:
    out = tmp_path / f"{name}.json"
    rc = madiff_swap.main([
        "--dataset", DATASET, "--seed", "1", "--a", json.dumps(a), "--b", json.dumps(b),
        "--episodes", "2", "--out", str(out),
    ])
    assert rc == 0
    return json.loads(out.read_text())


def test_diagonal_cell_is_the_harness_run_and_unlike_heads_are_refused(
    tmp_path, capsys, monkeypatch
):
    make_dataset(episodes=8)
    b = {**TINY, "learning_rate": 3e-2}
    report = _run(tmp_path, "ab", TINY, b)
    assert sorted(report["scores"]) == ["A/A", "A/B", "B/A", "B/B"]
    # the B/B cell is what the harness's madiff_d run with B scores on those episodes
    cfg = make_madiff_config("madiff_d", MADiffAdapterConfig(config=b), 1)
    policy = MADiffPolicy.train(DATASET, cfg, seed=1, show_progress=False)
    info, ref = policy.info, dataset_info(DATASET)
    ev = evaluate(policy, info["env_id"], info.get("env_kwargs") or {}, 2, 1)
    score = normalize(float(np.mean(ev.returns)), ref["ref_min_score"], ref["ref_max_score"])
    assert report["scores"]["B/B"] == pytest.approx(score, abs=1e-9)
    # heads of different shapes cannot be swapped: refused with a clear message, before
    # any training
    def no_training(*args, **kwargs):
        raise AssertionError("trained before refusing")

    monkeypatch.setattr(MADiffPolicy, "train", no_training)
    rc = madiff_swap.main(["--dataset", DATASET, "--a", json.dumps(TINY),
                           "--b", json.dumps({**TINY, "inv_hidden": [16]}), "--episodes", "1"])
    assert rc == 2
    assert "differ in shape" in capsys.readouterr().err


def test_same_settings_score_the_same_in_every_cell_and_merge_checks_settings(tmp_path, capsys):
    make_dataset(episodes=8)
    same = _run(tmp_path, "same", TINY, TINY)
    assert len({round(v, 9) for v in same["scores"].values()}) == 1
    other = _run(tmp_path, "other", TINY, {**TINY, "learning_rate": 1e-2})
    assert madiff_swap.main(["--merge", str(tmp_path / "same.json"),
                             str(tmp_path / "other.json")]) == 2
    assert "other settings" in capsys.readouterr().err
    assert madiff_swap.main(["--merge", str(tmp_path / "other.json")] * 2) == 0
    assert "inverse dynamics A" in capsys.readouterr().out
    assert other["seed"] == 1
