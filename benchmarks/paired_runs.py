"""Paired difference of two datasets' runs in a bench results folder: X − Y per entry.

    python -m benchmarks.paired_runs RESULTS_DIR --task TASK X_DATASET Y_DATASET [--entry E ...]

The leaderboard pairs each derived dataset with its source only; this pairs any two datasets
of one task, per entry (algorithm), over the seeds both ran on the same evaluation episodes
(:func:`benchmarks.report.paired_estimate`: the mean per-episode difference, with a
two-level bootstrap over seeds, then episodes). Dataset ids may be given by their last part.
"""

from __future__ import annotations

import argparse
import sys

from benchmarks import stats
from benchmarks.cli import script_main
from benchmarks.report import paired_estimate, read_runs, runs_by_dataset


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results_dir", help="a bench results folder holding runs.jsonl")
    p.add_argument("x", help="dataset X (id or its last part)")
    p.add_argument("y", help="dataset Y (id or its last part)")
    p.add_argument("--task", required=True, help="the grid's task name")
    p.add_argument("--entry", action="append", default=None,
                   help="entries to compare (default: every entry both datasets ran)")
    p.add_argument("--reps", type=int, default=stats.DEFAULT_REPS, help="bootstrap resamples")


def run(args: argparse.Namespace) -> int:
    by_key = runs_by_dataset(read_runs(args.results_dir))

    def find(name: str) -> str:
        ids = sorted({d for (t, d, _) in by_key if t == args.task and name in (d, d.split("/")[-1])})
        if len(ids) != 1:
            raise ValueError(f"dataset {name!r} in task {args.task!r}: found {ids or 'none'}")
        return ids[0]

    x, y = find(args.x), find(args.y)
    entries = args.entry or sorted(
        {e for (t, d, e) in by_key if t == args.task and d == x}
        & {e for (t, d, e) in by_key if t == args.task and d == y}
    )
    print(f"| entry | {x.split('/')[-1]} − {y.split('/')[-1]} [95% CI] | seeds × episodes |")
    print("| --- | --- | --- |")
    for e in entries:
        est = paired_estimate(by_key.get((args.task, x, e), {}), by_key.get((args.task, y, e), {}),
                              reps=args.reps, seed=0)
        if est is None:
            print(f"| {e} | no seed ran both on the same episodes | |")
            continue
        print(f"| {e} | {est['value']:+.1f} [{est['low']:.1f}, {est['high']:.1f}] "
              f"({est['unit']}) | {est['seeds']} × {est['episodes'] // max(est['seeds'], 1)} |")
    print(f"\nCommand: python -m benchmarks.paired_runs {args.results_dir} --task {args.task} "
          f"{args.x} {args.y}" + "".join(f" --entry {e}" for e in args.entry or []))
    return 0


def main(argv: list[str] | None = None) -> int:
    return script_main("benchmarks.paired_runs", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
