"""``benchmarks.eaq_replicates``: variance components of a pooled augmentation gain, read
from a bench grid's ``runs.jsonl`` (written here from scores drawn with known effects)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import eaq_replicates


def _run(dataset: str, seed: int, scores: np.ndarray, entry: str = "iql_cql") -> dict:
    return {
        "run": {"task": "t", "dataset": f"ns/{dataset}", "seed": seed},
        "entry": entry,
        "eval_seeds": [1000 * seed + e for e in range(len(scores))],
        "normalized": scores.tolist(),
    }


def _write(tmp_path, fits: int, seeds: int, episodes: int, spread: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    fit_effect = 3.0 + spread * np.resize([-1.0, 1.0], fits)  # fits differ by 2 * spread
    rows, diffs = [], np.zeros((fits, seeds, episodes))
    for s in range(seeds):
        base = rng.normal(20, 5, episodes)  # the source's scores on this seed's episodes
        rows.append(_run("poor-v0", s, base))
        for f in range(fits):
            aug = base + fit_effect[f] + rng.normal(0, 2, episodes)
            diffs[f, s] = aug - base
            rows.append(_run(f"poor-eaqs{f + 1}-v0", s, aug))
    rows.append(_run("poor-other-v0", 0, np.zeros(episodes)))  # not matched by the pattern
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return diffs


def test_report_splits_the_noise_and_projects_more_seeds(tmp_path, capsys) -> None:
    diffs = _write(tmp_path, fits=4, seeds=6, episodes=10, spread=4.0)
    out = tmp_path / "r.json"
    rc = eaq_replicates.main([
        str(tmp_path), "--source", "ns/poor-v0", "--replicates", "poor-eaqs*",
        "--coverage", "20", "--out", str(out),
    ])
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["replicates"] == [f"poor-eaqs{f}-v0" for f in range(1, 5)]
    assert report["pooled"]["value"] == pytest.approx(diffs.mean())
    assert report["per_fit"] == pytest.approx(diffs.mean(axis=(1, 2)).tolist())
    comp = report["components"]
    # the fits differ by ±4 (variance 64/3) for every seed; besides, only a residual sd 2
    assert comp["fit"] == pytest.approx(64 / 3, rel=0.2) and comp["seed"] < 1.0 and comp["episode"] < 1.0
    assert comp["residual"] == pytest.approx(4.0, rel=0.3)
    this, more_fits, more_seeds, more_episodes = report["projections"]
    assert more_fits["total"] < more_seeds["total"] <= this["total"]  # fits are the noise here
    assert more_episodes["episodes"] == 20 and more_episodes["total"] <= this["total"]
    assert 0.0 <= report["coverage"]["share"] <= 1.0
    assert "| fit |" in capsys.readouterr().out


def test_versus_compares_two_settings_of_one_source(tmp_path, capsys) -> None:
    rng = np.random.default_rng(2)
    rows = []
    for s in range(5):
        base = rng.normal(20, 5, 12)
        rows.append(_run("poor-v0", s, base))
        rows += [_run(f"poor-a{f}-v0", s, base + 3.0) for f in range(2)]
        rows += [_run(f"poor-b{f}-v0", s, base + 1.0) for f in range(3)]
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "r.json"
    assert eaq_replicates.main([
        str(tmp_path), "--source", "poor-v0", "--replicates", "poor-a*", "--versus", "poor-b*",
        "--out", str(out),
    ]) == 0
    versus = json.loads(out.read_text())["versus"]
    assert versus["replicates"] == ["poor-b0-v0", "poor-b1-v0", "poor-b2-v0"]
    assert versus["difference"]["value"] == pytest.approx(2.0)
    assert versus["pooled"]["value"] == pytest.approx(1.0)
    assert "poor-a* (2 fits) − poor-b* (3 fits), 5 shared seeds: 2.00 [2.00, 2.00]" in capsys.readouterr().out


def test_bad_inputs_are_named(tmp_path) -> None:
    """One line naming the problem (SystemExit with the message), no traceback."""
    _write(tmp_path, fits=3, seeds=3, episodes=4, spread=0.0)
    with pytest.raises(SystemExit, match="need bc runs on the source 'poor-v0' in exactly one task"):
        eaq_replicates.main([str(tmp_path), "--source", "poor-v0", "--replicates", "poor-eaqs*",
                             "--entry", "bc"])
    with pytest.raises(SystemExit, match="need >= 2 replicates matching 'medium-\\*'"):
        eaq_replicates.main([str(tmp_path), "--source", "poor-v0", "--replicates", "medium-*"])
    rows = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    rows[0]["normalized"] = None  # the source, seed 0
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(SystemExit, match="no normalized scores.*'poor-v0'"):
        eaq_replicates.main([str(tmp_path), "--source", "poor-v0", "--replicates", "poor-eaqs*"])
