"""The README's main job (``make run`` -> ``diffusion-agents main``).

It builds the default behaviour datasets (MPE ``simple_spread_v3``, 3 agents, every
tier) in ``$MINARI_DATASETS_PATH``, skipping those that exist, prints their summary, then
runs the quick leaderboard (``benchmarks/configs/quick.toml``, see docs/leaderboard.md).
"""

from __future__ import annotations

import argparse
import time
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument(
        "--no-leaderboard", action="store_true",
        help="only build the datasets (skip the quick leaderboard)",
    )
    parser.add_argument("--out", default=None, help="leaderboard results folder")


def build_default_datasets(
    *, show_progress: bool = True, log: Any = print
) -> dict[str, Any]:
    """Build (or find) the default MPE spread datasets; returns ``{tier: MinariDataset}``."""
    from benchmarks.behaviour import DEFAULT_ENV_ID, build_datasets

    return build_datasets(DEFAULT_ENV_ID, show_progress=show_progress, log=log)


def run(args: argparse.Namespace) -> int:
    from benchmarks.behaviour import _datasets_root, format_summary, summarize

    start = time.perf_counter()
    datasets = build_default_datasets(show_progress=not args.no_progress)
    built = time.perf_counter() - start
    print(format_summary(summarize(datasets)))
    print(
        f"Behaviour datasets in {_datasets_root()} ready in {built:.1f} s wall-clock "
        "(reproduce: diffusion-agents datasets make --env mpe2/simple_spread_v3)."
    )
    if getattr(args, "no_leaderboard", False):
        return 0
    # the quick leaderboard on those datasets (benchmarks/configs/quick.toml)
    from benchmarks.config import load_config
    from benchmarks.harness import run_benchmark

    outcome = run_benchmark(
        load_config("quick"), out=getattr(args, "out", None),
        show_progress=not args.no_progress,
    )
    print(
        f"main job done in {time.perf_counter() - start:.1f} s wall-clock "
        "(reproduce: diffusion-agents main)."
    )
    return 1 if outcome.failed else 0
