"""End-to-end: a tiny grid with seconds-scale models, resume after a kill, executors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import minari
import pytest

from benchmarks.config import parse_config
from benchmarks.harness import run_benchmark
from tests.benchmarks import harness_helpers as hh

REPO = Path(__file__).resolve().parents[2]


def _returns(out: Path) -> dict[str, list[float]]:
    return {
        p.stem: json.loads(p.read_text())["returns"]
        for p in sorted((out / "runs").glob("*.json"))
    }


def test_tiny_grid_end_to_end(tmp_path):
    hh.make_dataset()
    cfg = parse_config(
        hh.grid_toml(["random", "behaviour", "bc", "iql_cql", "bc+eaq"], extra=hh.EAQ_TINY)
    )
    out = tmp_path / "res"
    res = run_benchmark(cfg, out=out, show_progress=False, log=None, bootstrap_reps=200)
    assert res.total == 10 and len(res.ran) == 10 and not res.failed and not res.skipped
    for name in ("leaderboard.md", "results.json", "runs.jsonl", "summary.json",
                 "config.toml", "plots/aggregate.png", "plots/per_task.png"):
        assert (out / name).is_file(), name
    lines = (out / "runs.jsonl").read_text().splitlines()
    assert len(lines) == 10
    rec = json.loads(lines[0])
    assert len(rec["returns"]) == 2 and rec["versions"]["torch"]
    assert rec["run"]["seed"] in (0, 1) and rec["eval_seeds"][0] >= 1_000_000
    # normalized with the dataset's reference scores (-4, -1)
    assert rec["normalized"][0] == pytest.approx(100 * (rec["returns"][0] + 4.0) / 3.0)
    one = json.loads(next((out / "runs").glob("*.json")).read_text())
    assert "name = \"tiny\"" in one["config"]["toml"]
    # marl-eval layout: env -> task -> algorithm -> run_<seed> -> step_0 / absolute_metrics
    me = json.loads((out / "results.json").read_text())
    task = me["mpe2"]["mpe2-simple_spread_v3:tiny-v0"]
    assert set(task) == {"random", "behaviour", "bc", "iql_cql", "bc+eaq"}
    assert set(task["bc"]) == {"run_0", "run_1"}
    assert task["bc"]["run_0"]["step_0"]["step_count"] == 20
    assert len(task["bc"]["run_0"]["absolute_metrics"]["normalized_return"]) == 2
    md = (out / "leaderboard.md").read_text()
    assert "| iql_cql |" in md and "IQM" in md and "tiny-v0" in md
    assert "| bc+eaq > bc |" in md  # probability of improvement of learner+EAQ vs learner
    assert "| random | `defaults` |" in md  # the settings each entry ran with
    assert "| bc | `steps=20, batch_size=32, hidden=16` |" in md
    assert "eaq.config.n_steps=5" in md and "eaq.augment.num_episodes=4" in md
    # bc+eaq trained on the new EAQ dataset; the source dataset is untouched
    eaq_rec = [json.loads(x) for x in lines if json.loads(x)["entry"] == "bc+eaq"][0]
    assert eaq_rec["train_dataset"] == "mpe2/simple_spread/tiny-eaq-v0"
    assert minari.load_dataset("mpe2/simple_spread/tiny-eaq-v0").total_episodes == 12 + 4
    assert minari.load_dataset(hh.DATASET).total_episodes == 12
    # the behaviour policy of a random dataset is the random policy: same seeds, same returns
    r = _returns(out)
    beh = [v for k, v in r.items() if "_behaviour_" in k]
    rnd = [v for k, v in r.items() if "_random_" in k]
    assert sorted(beh) == sorted(rnd)
    # same seed -> same result on CPU; a rerun skips everything
    again = run_benchmark(cfg, out=out, show_progress=False, log=None, bootstrap_reps=200)
    assert len(again.skipped) == 10 and not again.ran


def test_resume_after_kill_and_ray_executor(tmp_path, minari_root):
    hh.make_dataset()
    toml = tmp_path / "grid.toml"
    toml.write_text(hh.grid_toml(["random", "bc", "sleepy"]))
    out = tmp_path / "res"
    script = (
        "import sys; from tests.benchmarks import harness_helpers; "
        "from benchmarks.config import load_config; from benchmarks.harness import run_benchmark; "
        f"run_benchmark(load_config({str(toml)!r}), out={str(out)!r}, show_progress=False, "
        "log=None, plots=False)"
    )
    env = dict(os.environ, HARNESS_TEST_SLEEP="60", MINARI_DATASETS_PATH=str(minari_root))
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 300  # generous: CI machines can be slow to import torch
        while len(list((out / "runs").glob("*.json"))) < 4:
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.time() < deadline, "the harness subprocess made no progress"
            time.sleep(0.2)
        time.sleep(0.5)  # now inside the first 60 s "sleepy" run
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    finished = {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")}
    assert len(finished) == 4  # random s0, s1, bc s0, s1; sleepy was killed mid-run
    assert not list((out / "runs").glob(".*.tmp"))  # nothing half-written
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        cfg = parse_config(toml.read_text())
        res = run_benchmark(cfg, out=out, executor="ray", workers=2, show_progress=False,
                            log=None, bootstrap_reps=200, plots=False)
    finally:
        ray.shutdown()
    assert len(res.skipped) == 4 and len(res.ran) == 2 and not res.failed
    assert {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")
            if p.name in finished} == finished
    assert len((out / "runs.jsonl").read_text().splitlines()) == 6
    # Ray results equal a sequential run's for the same seeds
    seq = tmp_path / "seq"
    run_benchmark(cfg, out=seq, show_progress=False, log=None, bootstrap_reps=200, plots=False)
    assert _returns(seq) == _returns(out)


def test_local_processes_match_sequential(tmp_path):
    hh.make_dataset()
    cfg = parse_config(hh.grid_toml(["bc", "iql_cql"], seeds=[3]))
    seq, par = tmp_path / "seq", tmp_path / "par"
    run_benchmark(cfg, out=seq, show_progress=False, log=None, bootstrap_reps=100, plots=False)
    res = run_benchmark(cfg, out=par, executor="local", workers=2, show_progress=False,
                        log=None, bootstrap_reps=100, plots=False)
    assert not res.failed and len(res.ran) == 2
    assert _returns(par) == _returns(seq)
