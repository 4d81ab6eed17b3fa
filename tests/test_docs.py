"""The README and docs/ stay true to the code: the quick start runs, documented commands parse.

Users copy these snippets; an option renamed in the code but not in the docs would fail
only for them.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# The quick start's training and augmentation sizes, shrunk for a test; every pair must
# match the README once, so editing the snippet breaks this test instead of skipping it.
QUICK_START_SIZES = [
    ("num_episodes=100", "num_episodes=6"),
    ("MADiffConfig(n_steps=2000)", "MADiffConfig(n_steps=20)"),
    ("eaq.augment(ds, ratio=1.0)", "eaq.augment(ds, ratio=1.0, n_steps=10)"),
]


def _quick_start() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_quick_start_runs(tmp_path, monkeypatch) -> None:
    code = _quick_start()
    for old, new in QUICK_START_SIZES:
        assert code.count(old) == 1, f"README quick start no longer contains {old!r}"
        code = code.replace(old, new)
    monkeypatch.chdir(tmp_path)  # policy.save("madiff.safetensors") writes to the cwd
    ns: dict = {}
    exec(compile(code, "README.md (quick start)", "exec"), ns)

    assert ns["batch"].obs.shape[:1] == (6,)
    assert (tmp_path / "madiff.safetensors").is_file()
    assert not ns["env"].agents and ns["futures"] is not None
    augmented = ns["augmented"]
    assert augmented.spec.dataset_id == "mpe2/simple_spread/random-eaq-v0"
    assert augmented.total_episodes == 12


def _documented_commands() -> list[tuple[str, str]]:
    """Every ``diffusion-agents ...`` and ``python -m benchmarks....`` command in the README
    and docs/: lines of fenced blocks (with ``\\`` continuations) and inline code spans
    (which may wrap across lines)."""
    found = []
    for path in DOCS:
        text = path.read_text()
        spans = []
        for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
            spans += [line.split(" #")[0] for line in block.replace("\\\n", " ").splitlines()]
        spans += re.findall(r"`([^`]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
        for span in spans:
            span = " ".join(span.split())
            start = min((i for i in (span.find("diffusion-agents "),
                                     span.find("python -m benchmarks.")) if i >= 0),
                        default=-1)
            if start >= 0:
                found.append((path.name, span[start:]))
    return found


_PLACEHOLDER = re.compile(r"^[A-Z][A-Z_0-9]*$|\.\.\.|[\[\]<>|]")


def _parser_and_args(argv: list[str]) -> tuple[argparse.ArgumentParser, list[str]] | None:
    if argv[0] == "diffusion-agents":
        from benchmarks.cli import build_parser

        return build_parser(), argv[1:]
    module = importlib.import_module(argv[2])
    if not hasattr(module, "add_arguments"):  # a script with its own main(): not checked
        return None
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return parser, argv[3:]


def test_documented_commands_parse() -> None:
    """Commands shown with placeholders (``--seed S``, ``DATASET``, ``[--flag]``, ``...``)
    or as a bare name in prose are skipped; the rest must parse with today's options."""
    checked, failures = 0, []
    for doc, command in _documented_commands():
        try:
            argv = shlex.split(command)
        except ValueError:
            failures.append(f"{doc}: unbalanced quotes: {command}")
            continue
        head = 2 if argv[0] == "diffusion-agents" else 3
        words = [a for a in argv if not a.startswith(("{", "[{"))]  # JSON values
        if len(argv) <= head + 1 or any(_PLACEHOLDER.search(a) for a in words):
            continue
        parsed = _parser_and_args(argv)
        if parsed is None:
            continue
        parser, args = parsed
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                parser.parse_args(args)
        except SystemExit as exc:
            if exc.code:
                failures.append(f"{doc}: {command}\n    {err.getvalue().strip()[-300:]}")
        checked += 1
    assert not failures, "\n".join(failures)
    assert checked >= 50  # the docs hold about 60 complete commands; the scan must find them


@pytest.mark.parametrize("bad", ["--no-such-option 1", "--episodes many"])
def test_the_command_check_catches_a_stale_option(bad) -> None:
    """The check above is not vacuous: a documented command with a stale option fails."""
    argv = shlex.split(f"diffusion-agents madiff --dataset mpe2/simple_spread/medium-v0 {bad}")
    parser, args = _parser_and_args(argv)
    with pytest.raises(SystemExit) as exc, contextlib.redirect_stderr(io.StringIO()):
        parser.parse_args(args)
    assert exc.value.code == 2


def _python_blocks() -> list:
    return [pytest.param(path.name, i, block, id=f"{path.name}:{i}") for path in DOCS
            for i, block in enumerate(re.findall(r"```python\n(.*?)```", path.read_text(), re.S))]


@pytest.mark.parametrize("doc, index, block", _python_blocks())
def test_python_snippets_parse_and_their_imports_exist(doc, index, block) -> None:
    """Every ``python`` block of the README and docs/ is valid Python whose imports resolve
    (the README's quick start also runs, above)."""
    import ast

    tree = ast.parse(block, f"{doc} block {index}")
    imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    exec(compile(ast.Module(imports, type_ignores=[]), f"{doc} block {index}", "exec"), {})
