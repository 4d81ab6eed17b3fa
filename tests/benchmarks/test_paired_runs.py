"""benchmarks.paired_runs: any two datasets of a grid, paired per entry (runs written here)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import paired_runs


def _run(dataset: str, seed: int, scores: np.ndarray, entry: str, eval_seeds=None) -> dict:
    return {
        "run": {"task": "t", "dataset": f"ns/{dataset}", "seed": seed},
        "entry": entry,
        "eval_seeds": eval_seeds or [100 * seed + e for e in range(len(scores))],
        "normalized": scores.tolist(),
        "returns": scores.tolist(),
    }


def test_pairs_two_derived_datasets_per_entry(tmp_path, capsys) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for s in range(4):
        base = rng.normal(20, 5, 30)
        rows += [_run("a-v0", s, base + 3.0, "iql"), _run("b-v0", s, base, "iql")]
        rows += [_run("a-v0", s, base - 1.0, "bc"), _run("b-v0", s, base, "bc")]
    rows.append(_run("a-v0", 9, np.zeros(30), "iql"))  # no partner: not paired
    rows.append(_run("b-v0", 9, np.zeros(30), "iql", eval_seeds=[7] * 30))
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert paired_runs.main([str(tmp_path), "--task", "t", "a-v0", "ns/b-v0"]) == 0
    out = capsys.readouterr().out
    assert "| bc | -1.0 [-1.0, -1.0] (normalized) | 4 × 30 |" in out
    assert "| iql | +3.0 [3.0, 3.0] (normalized) | 4 × 30 |" in out

    with pytest.raises(ValueError, match="dataset 'c-v0' in task 't': found none"):
        paired_runs.main([str(tmp_path), "--task", "t", "a-v0", "c-v0"])
