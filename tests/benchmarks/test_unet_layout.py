"""``python -m benchmarks.unet_layout``: the U-Net's two eager layouts, alternated."""

from __future__ import annotations

import json

import pytest

from benchmarks import unet_layout
from tests.benchmarks.harness_helpers import DATASET, make_dataset
from tests.benchmarks.test_madiff_train_ab import TINY

TINY_EAQ = {"batch_size": 4, "dim": 8, "dim_mults": [1, 2], "q_hidden": 16,
            "n_diffusion_steps": 10, "q_warmup_steps": 1}


def test_times_both_layouts_for_every_workload(tmp_path, capsys):
    make_dataset(episodes=4)
    out = tmp_path / "layout.json"
    rc = unet_layout.main([
        "--madiff-dataset", DATASET, "--madiff-config", json.dumps(TINY),
        "--eaq-config", json.dumps(TINY_EAQ), "--threads", "1", "--blocks", "2",
        "--block-steps", "2", "--warmup", "1", "--sample-batch", "8", "--out", str(out),
    ])
    assert rc == 0
    rows = json.loads(out.read_text())["rows"]
    kinds = [name.split(",")[0] for name in rows]
    assert kinds == ["MADiff training step", "EAQ fit step", "EAQ U-Net forward"]
    for row in rows.values():
        assert [len(v) for v in row["blocks"].values()] == [2, 2]
        assert row["ratio"] == pytest.approx(row["nhwc_ms"] / row["channels_first_ms"])
    assert "| EAQ fit step, batch 4 (" in capsys.readouterr().out


def test_refuses_overrides_that_are_not_an_object():
    with pytest.raises(SystemExit, match="JSON object"):
        unet_layout.main(["--madiff-config", "[1]"])
