"""The README's main job (``make run`` -> ``diffusion-agents main``).

For now it builds the default behaviour datasets (MPE ``simple_spread_v3``, 3 agents, every
tier) in ``$MINARI_DATASETS_PATH``, skipping those that exist, and prints their summary.
Later steps (the quick leaderboard) go after :func:`build_default_datasets` in :func:`run`.
"""

from __future__ import annotations

import argparse
import time
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


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
    return 0
