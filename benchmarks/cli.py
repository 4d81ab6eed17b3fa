"""``diffusion-agents`` command line.

Each sub-command lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; modules keep their heavy imports (torch, jax) inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable

COMMANDS: dict[str, tuple[str, str]] = {
    "main": ("benchmarks.main_job", "the README's main job (quick leaderboard)"),
    "datasets": ("benchmarks.behaviour", "build behaviour-policy datasets"),
    "bench": ("benchmarks.harness", "run a leaderboard grid (TOML) and report scores"),
    "smax-perf": ("benchmarks.smax_perf", "SMAX adapter vs native jitted step, env steps/s"),
    "madiff": ("benchmarks.madiff_eval", "MADiff-D vs BC vs data on MPE spread, guidance on/off"),
    "perf": ("benchmarks.perf", "MADiff CPU speed: act latency, training steps/s, memory"),
    "augment": ("benchmarks.eaq_cmd", "EAQ-augment a multi-agent Minari dataset (new dataset)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffusion-agents",
        description="Diffusion models for offline multi-agent RL.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def script_main(
    module: str,
    doc: str | None,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], int],
    argv: list[str] | None = None,
) -> int:
    """``main()`` of a benchmark script run as ``python -m <module>``.

    The script keeps the sub-command pair (``add_arguments``, ``run``); this builds its
    parser, with the module docstring kept as written, and runs it.
    """
    parser = argparse.ArgumentParser(
        prog=f"python -m {module}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return int(run(parser.parse_args(argv)) or 0)


def json_object(text: str, flag: str) -> dict:
    """A command-line JSON object (config overrides, env kwargs), or a clear exit naming
    ``flag``."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"{flag} is not valid JSON ({exc}): {text!r}") from None
    if not isinstance(value, dict):
        raise SystemExit(f"{flag} must be a JSON object, got {text!r}.")
    return value


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args._module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
