"""``python -m benchmarks.madiff_ddpm``: more DDPM episodes for one seed's evaluation report."""

from __future__ import annotations

import json

from benchmarks import madiff_ddpm
from benchmarks.cli import main as cli
from benchmarks.madiff_eval import PAIRED_DDPM
from tests.benchmarks.harness_helpers import DATASET, make_dataset

TINY = {
    "base_width": 8, "dim_mults": [1], "inv_hidden": [32, 32], "history": 1, "horizon": 3,
    "batch_size": 8, "ema_start": 5, "n_diffusion_steps": 20, "sampling_steps": 2,
    "checkpoint_every": 10_000, "inverse_steps": 6,
}


def _report(tmp_path) -> tuple:
    make_dataset(episodes=8)
    path = tmp_path / "s1.json"
    rc = cli([
        "madiff", "--dataset", DATASET, "--seeds", "1", "--seed-start", "1", "--episodes", "4",
        "--steps", "10", "--bc-steps", "10", "--ddpm-episodes", "1",
        "--config", json.dumps(TINY), "--out", str(path),
    ])
    assert rc == 0
    return path, json.loads(path.read_text())


def test_extends_the_ddpm_row_of_the_same_model_and_merges(tmp_path):
    path, report = _report(tmp_path)
    assert report["seed_start"] == 1 and madiff_ddpm.report_seed(report) == 1
    out, ckpt = tmp_path / "s1_more.json", tmp_path / "s1.safetensors"
    rc = madiff_ddpm.main([
        str(path), "--episodes", "2", "--check", "4", "--save-checkpoint", str(ckpt),
        "--out", str(out),
    ])
    assert rc == 0
    ext = json.loads(out.read_text())
    row = ext["scores"]["madiff-d, 200-step DDPM"][0]
    assert len(row) == 3 and row[0] == report["scores"]["madiff-d, 200-step DDPM"][0][0]
    assert ext["scores"]["madiff-d"] == report["scores"]["madiff-d"]  # other rows untouched
    assert list(ext["ddpm_extension"]) == ["1-2"]
    # a saved checkpoint extends it again without retraining
    rc = madiff_ddpm.main([
        str(out), "--episodes", "1", "--checkpoint", str(ckpt), "--out", str(out),
    ])
    assert rc == 0
    ext = json.loads(out.read_text())
    assert len(ext["scores"]["madiff-d, 200-step DDPM"][0]) == 4
    assert list(ext["ddpm_extension"]) == ["1-2", "3-3"]
    merged = tmp_path / "merged.json"
    assert cli(["madiff", "--merge", str(out), "--out", str(merged)]) == 0
    merged = json.loads(merged.read_text())
    assert PAIRED_DDPM in merged["table"] and merged["seeds"] == [1]
    # per-episode scores survive the merge, so later runs can be paired with them
    assert merged["scores"]["madiff-d"] == [
        [round(x, 4) for x in ext["scores"]["madiff-d"][0]]
    ]


def test_refuses_a_model_that_does_not_reproduce_the_report(tmp_path, capsys):
    path, report = _report(tmp_path)
    report["scores"]["madiff-d"][0][0] += 1.0  # as if another model had been scored
    path.write_text(json.dumps(report))
    out = tmp_path / "more.json"
    assert madiff_ddpm.main([str(path), "--episodes", "1", "--out", str(out)]) == 1
    assert not out.exists()
    assert "does not reproduce" in capsys.readouterr().err
    # too many episodes: the default row has 4, one already with DDPM
    assert madiff_ddpm.main([str(path), "--episodes", "4", "--out", str(out)]) == 2
    assert not out.exists()
