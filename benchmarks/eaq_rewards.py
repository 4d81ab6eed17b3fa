"""Per-step reward fidelity of EAQ-augmented datasets: synthetic against real team rewards.

    python -m benchmarks.eaq_rewards DATASET_ID [DATASET_ID ...] [--out FILE.json]

For each augmented dataset (real + synthetic episodes, the synthetic ones marked by EAQ),
prints one row for its real episodes and one for its synthetic ones: the share of steps
whose team reward is exactly 0, the mean, median, 90th and 99th percentile and largest
step reward, the share of episodes whose last step earns more than ``--win`` (a SMAX win
pays about 1 on the last step), and the mean episode return. A generator that has learned
*when* a reward comes matches the real rows; one that has learned only its average level
has few zeros, a raised median and no large values (docs/eaq.md, "Reward fidelity").
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np

from benchmarks.cli import script_main


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("datasets", nargs="+", help="augmented dataset ids")
    p.add_argument("--win", type=float, default=0.5,
                   help="a last-step team reward above this counts as a win (default 0.5)")
    p.add_argument("--out", default=None, help="also write the rows as JSON")


def reward_stats(batch, rows: np.ndarray, win: float) -> dict[str, float]:
    """Step-reward statistics of the episodes ``rows`` of an :class:`EpisodeBatch`."""
    team = batch.team_rewards[rows]
    steps = team[batch.valid[rows]]
    last = team[np.arange(len(rows)), batch.lengths[rows] - 1]
    return {
        "episodes": int(len(rows)),
        "zero_share": float(np.mean(steps == 0.0)),
        "mean": float(steps.mean()),
        "median": float(np.median(steps)),
        "p90": float(np.percentile(steps, 90)),
        "p99": float(np.percentile(steps, 99)),
        "max": float(steps.max()),
        "win_share": float(np.mean(last > win)),
        "return_mean": float(batch.returns[rows].mean()),
    }


def real_and_synthetic(batch: Any, ds_id: str) -> list[tuple[str, np.ndarray]]:
    """``[("real", rows), ("synthetic", rows)]`` of an augmented dataset's
    :class:`EpisodeBatch`, leaving out an empty group; says on stderr when ``ds_id`` has no
    synthetic episodes."""
    if not batch.synthetic.any():
        print(f"{ds_id}: no synthetic episodes (not an EAQ augmentation?)", file=sys.stderr)
    groups = (("real", np.flatnonzero(~batch.synthetic)), ("synthetic", np.flatnonzero(batch.synthetic)))
    return [(name, rows) for name, rows in groups if rows.size]


def run(args: argparse.Namespace) -> int:
    from wrappers import load_episodes

    out: list[dict[str, Any]] = []
    cols = ("episodes", "zero_share", "mean", "median", "p90", "p99", "max", "win_share",
            "return_mean")
    print("| dataset | episodes of | " + " | ".join(cols) + " |")
    print("| --- | --- |" + " ---: |" * len(cols))
    for ds_id in args.datasets:
        batch = load_episodes(ds_id)
        for name, rows in real_and_synthetic(batch, ds_id):
            s = reward_stats(batch, rows, args.win)
            out.append({"dataset": ds_id, "episodes_of": name, **s})
            vals = " | ".join(
                str(s[c]) if c == "episodes" else f"{s[c]:.4g}" for c in cols
            )
            print(f"| {ds_id} | {name} | {vals} |")
    print(f"\nCommand: python -m benchmarks.eaq_rewards {' '.join(args.datasets)}")
    if args.out:
        from pathlib import Path

        from benchmarks.harness import write_json_atomic

        write_json_atomic(Path(args.out), out)
    return 0


def main(argv: list[str] | None = None) -> int:
    return script_main("benchmarks.eaq_rewards", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
