"""The README and docs/ stay true to the code: examples run, commands parse, links resolve.

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

# Snippets that run in a test, with their training and data sizes shrunk: every pair must
# match its snippet once, so editing a snippet breaks this test instead of skipping it.
# Snippets that read "mpe2/simple_spread/medium-v0" get a small random dataset of that id.
RUNNABLE = {
    "README.md:0": [
        ("num_episodes=100", "num_episodes=6"),
        ("MADiffConfig(n_steps=2000)", "MADiffConfig(n_steps=20)"),
        ("eaq.augment(ds, ratio=1.0)", "eaq.augment(ds, ratio=1.0, n_steps=10)"),
    ],
    "madiff.md:0": [("MADiffConfig(n_steps=10_000)", "MADiffConfig(n_steps=20)")],
    "eaq.md:1": [
        ("n_steps=3000", "n_steps=10"),
        ("aug.sample(1000, seed=1)", "aug.sample(8, seed=1)"),
        ("num_episodes=5000", "num_episodes=8"),
    ],
    "smac.md:0": [("num_episodes=100", "num_episodes=2")],
}


def _python_blocks() -> dict[str, str]:
    """``{"README.md:0": code, ...}``: the ``python`` blocks of the README and docs/."""
    return {f"{path.name}:{i}": block for path in DOCS
            for i, block in enumerate(re.findall(r"```python\n(.*?)```", path.read_text(), re.S))}


def _record_medium(n: int) -> None:
    from wrappers import RandomPolicy, make_env, record_dataset

    env = make_env("mpe2/simple_spread_v3", N=3)
    record_dataset("mpe2/simple_spread_v3", RandomPolicy(env, seed=0), num_episodes=n,
                   dataset_id="mpe2/simple_spread/medium-v0", env_kwargs={"N": 3},
                   show_progress=False)


@pytest.mark.parametrize("name", sorted(RUNNABLE))
def test_snippet_runs(name, tmp_path, monkeypatch) -> None:
    code = _python_blocks()[name]
    for old, new in RUNNABLE[name]:
        assert code.count(old) == 1, f"{name} no longer contains {old!r}"
        code = code.replace(old, new)
    if "mpe2/simple_spread/medium-v0" in code:
        _record_medium(6)
    monkeypatch.chdir(tmp_path)  # snippets save to relative paths
    ns: dict = {}
    exec(compile(code, name, "exec"), ns)
    CHECKS[name](ns, tmp_path)


def _check_readme(ns: dict, cwd: Path) -> None:
    assert ns["batch"].obs.shape[:1] == (6,)
    assert (cwd / "madiff.safetensors").is_file()
    assert not ns["env"].agents and ns["futures"] is not None
    assert ns["augmented"].spec.dataset_id == "mpe2/simple_spread/random-eaq-v0"
    assert ns["augmented"].total_episodes == 12


def _check_madiff(ns: dict, cwd: Path) -> None:
    assert (cwd / "madiff.safetensors").is_file() and (cwd / "runs").is_dir()
    assert set(ns["actions"]) == set(ns["obs"])


def _check_eaq(ns: dict, cwd: Path) -> None:
    import minari

    assert (cwd / "runs/eaq_medium/config.json").is_file()
    assert ns["res"].batch.obs.shape[0] <= 8
    assert minari.load_dataset("mpe2/simple_spread/medium-eaq-v0").total_episodes == 6 + 8


def _check_smax(ns: dict, cwd: Path) -> None:
    assert ns["batch"].obs.shape[0] == 2 and ns["batch"].alive.dtype == bool


CHECKS = {"README.md:0": _check_readme, "madiff.md:0": _check_madiff, "eaq.md:1": _check_eaq,
          "smac.md:0": _check_smax}


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


@pytest.mark.parametrize("name", sorted(_python_blocks()))
def test_python_snippets_parse_and_their_imports_exist(name) -> None:
    """Every ``python`` block of the README and docs/ is valid Python whose imports resolve
    (those in ``RUNNABLE`` also run, above)."""
    import ast

    tree = ast.parse(_python_blocks()[name], name)
    imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    exec(compile(ast.Module(imports, type_ignores=[]), name, "exec"), {})


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped (``-`` and
    ``_`` kept), spaces to hyphens."""
    text = re.sub(r"`|\[|\]\([^)]*\)", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    anchors: set[str] = set()
    for heading in re.findall(r"^#+ (.+)$", text, re.M):
        slug, n = _slug(heading), 1
        while slug in anchors:  # repeated headings get -1, -2, ...
            slug, n = f"{_slug(heading)}-{n}", n + 1
        anchors.add(slug)
    return anchors


def test_relative_links_and_anchors_resolve() -> None:
    """Every relative link of the README and docs/ names a file of the repository, and
    every ``#anchor`` into a Markdown file names one of its headings."""
    broken, checked = [], 0
    for path in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            checked += 1
            if not dest.exists():
                broken.append(f"{path.name}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{path.name}: {target} (no such heading)")
    assert not broken, "\n".join(broken)
    assert checked >= 150
    assert _slug("The README's training-speed notes, sessions 6-33") == (
        "the-readmes-training-speed-notes-sessions-6-33")
