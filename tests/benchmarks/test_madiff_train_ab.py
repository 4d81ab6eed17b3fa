"""``python -m benchmarks.madiff_train_ab``: alternated training-step timings of variants."""

from __future__ import annotations

import json

import pytest

from benchmarks import madiff_train_ab
from tests.benchmarks.harness_helpers import DATASET, make_dataset

TINY = {"base_width": 8, "dim_mults": [1, 2], "inv_hidden": [16], "horizon": 5,
        "batch_size": 4, "ema_start": 1, "n_diffusion_steps": 10}


def test_times_every_variant_against_the_first(tmp_path, capsys):
    make_dataset(episodes=4)
    out = tmp_path / "ab.json"
    variants = {"two blocks": TINY, "one block": {**TINY, "res_blocks": 1}}
    rc = madiff_train_ab.main([
        "--dataset", DATASET, "--variants", json.dumps(variants), "--threads", "1",
        "--blocks", "3", "--block-steps", "2", "--warmup", "1", "--no-compile",
        "--out", str(out),
    ])
    assert rc == 0
    report = json.loads(out.read_text())
    assert list(report["variants"]) == ["two blocks", "one block"]
    assert [len(v) for v in report["block_ms"].values()] == [3, 3]
    first, second = report["variants"].values()
    assert first["ratio"] == 1.0 and second["ratio"] > 0
    assert second["unet_parameters"] < first["unet_parameters"]  # fewer residual blocks
    assert "| one block |" in capsys.readouterr().out


def test_refuses_an_empty_variant_list():
    with pytest.raises(SystemExit, match="non-empty"):
        madiff_train_ab.main(["--variants", "{}"])
