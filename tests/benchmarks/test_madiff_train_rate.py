"""``python -m benchmarks.madiff_train_rate``: steps per second of whole training runs."""

from __future__ import annotations

import json

import pytest

from benchmarks import madiff_train_rate
from tests.benchmarks.harness_helpers import DATASET, make_dataset
from tests.benchmarks.test_madiff_train_ab import TINY


def test_times_each_config_over_a_whole_run(tmp_path, capsys):
    make_dataset(episodes=4)
    out = tmp_path / "rate.json"
    configs = {"tiny": TINY, "tiny, one block": {**TINY, "res_blocks": 1}}
    rc = madiff_train_rate.main([
        "--dataset", DATASET, "--configs", json.dumps(configs), "--threads", "1",
        "--steps", "12", "--segment", "3", "--out", str(out),
    ])
    assert rc == 0
    report = json.loads(out.read_text())
    assert list(report["runs"]) == ["tiny", "tiny, one block"]
    for r in report["runs"].values():
        # steps 5 -> 8 -> 11 -> 12: three segments, the last one a single step
        assert len(r["segment_steps_per_s"]) == 3
        assert r["steps_per_s"] > 0 and r["startup_s"] > 0
    assert "| tiny, one block |" in capsys.readouterr().out


@pytest.mark.parametrize("argv, match", [
    (["--configs", "[]"], "non-empty"),
    (["--configs", "{not json"], "not valid JSON"),
    (["--steps", "10", "--segment", "250"], "at least"),
])
def test_refuses_bad_arguments(argv, match):
    with pytest.raises(SystemExit, match=match):
        madiff_train_rate.main(argv)
