"""``python -m benchmarks.cuda_perf`` and ``benchmarks.eaq_fit_length`` at toy scale, on the
CPU (``--device cpu``): the report's rows and JSON, and refused arguments."""

from __future__ import annotations

import json

import pytest

from benchmarks import cuda_perf, eaq_fit_length
from tests.benchmarks.harness_helpers import DATASET, make_dataset
from tests.benchmarks.test_madiff_train_ab import TINY


def test_cuda_perf_reports_train_and_eaq_rows_on_any_device(tmp_path, capsys):
    make_dataset(episodes=4)
    out = tmp_path / "perf.json"
    rc = cuda_perf.main([
        "--dataset", DATASET, "--device", "cpu", "--sections", "train,eaq",
        "--config", json.dumps(TINY), "--train-steps", "60", "--eaq-steps", "12",
        "--eaq-episodes", "8", "--out", str(out),
    ])
    assert rc == 0
    report = json.loads(out.read_text())
    assert [r["batch_size"] for r in report["train"]] == [4, 256, 4]
    assert all(r["steps_per_s"] > 0 for r in report["train"]), report["train"]
    assert [r["device"] for r in report["eaq"]] == ["cpu", "cpu"]
    assert all(r["episodes_per_min"] > 0 for r in report["eaq"])
    assert report["act"] == [] and report["config_overrides"] == TINY
    assert "| train, default size, batch 256 | cpu |" in capsys.readouterr().out


@pytest.mark.parametrize("argv, match", [
    (["--sections", "act,warp"], "unknown"),
    (["--config", "{no"], "not valid JSON"),
    (["--sections", "eaq", "--eaq-steps", "10"], "must be > 10"),
])
def test_cuda_perf_refuses_bad_arguments(argv, match):
    make_dataset(episodes=2)
    with pytest.raises(SystemExit, match=match):
        cuda_perf.main(["--dataset", DATASET, "--device", "cpu", *argv])


def test_eaq_fit_length_scores_each_checkpoint(tmp_path, capsys):
    make_dataset(episodes=6)
    out = tmp_path / "fit.json"
    cfg = {"dim": 8, "dim_mults": [1], "q_hidden": 16, "n_diffusion_steps": 10,
           "sample_steps": 2, "sample_batch_size": 16, "range_margin": 5.0}
    rc = eaq_fit_length.main([
        "--dataset", DATASET, "--checkpoints", "4,8", "--episodes", "4", "--threads", "1",
        "--config", json.dumps(cfg), "--out", str(out),
    ])
    assert rc == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["steps"] for r in rows] == [4, 8]
    for r in rows:
        assert r["dyn_err_synthetic"] > 0 and r["dyn_err_real"] > 0 and r["acceptance"] > 0
    assert "| 8 |" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="positive"):
        eaq_fit_length.main(["--dataset", DATASET, "--checkpoints", "0"])
