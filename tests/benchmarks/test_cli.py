"""``benchmarks.cli``: the sub-command table and the scripts' shared ``main()``."""

from __future__ import annotations

import argparse

import pytest

from benchmarks import eaq_rewards, smax_perf
from benchmarks.cli import COMMANDS, build_parser, script_main


def test_script_main_parses_into_run_and_returns_its_status() -> None:
    seen: list[argparse.Namespace] = []

    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--n", type=int, default=1)

    def run(args: argparse.Namespace) -> int:
        seen.append(args)
        return 3

    assert script_main("benchmarks.toy", "Toy.", add_arguments, run, ["--n", "7"]) == 3
    assert seen[0].n == 7


@pytest.mark.parametrize("module", [eaq_rewards, smax_perf])
def test_script_help_names_the_module_and_keeps_its_docstring(module, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        module.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m {module.__name__}")
    assert module.__doc__.strip().splitlines()[0] in out


def test_script_rejects_unknown_options(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        eaq_rewards.main(["x", "--no-such-option"])
    assert exc.value.code == 2
    assert "--no-such-option" in capsys.readouterr().err


def test_every_sub_command_has_a_parser() -> None:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(COMMANDS)
