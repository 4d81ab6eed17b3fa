"""Leaderboard grids in TOML: parsing and validation (before any run starts).

A config names a grid ``tasks × datasets × algorithms × seeds``::

    name = "quick"
    seeds = [0, 1, 2]
    eval_episodes = 20
    workers = 2                 # default parallel runs (CLI --workers overrides)
    algorithms = ["random", "behaviour", "bc", "iql_cql", "bc+eaq"]   # default for tasks

    [[tasks]]
    env = "mpe2/simple_spread_v3"
    env_kwargs = { N = 3, max_cycles = 25 }
    datasets = ["mpe2/simple_spread/medium-v0"]   # and/or behaviour tiers:
    # tiers = ["medium", "expert"]   # ids from benchmarks.behaviour.dataset_ids
    # algorithms = [...]        # optional per-task override
    # transform_options = { eaq = { config = { n_steps = 500 } } }   # per-task, per-key

    [algorithm_options.bc]
    steps = 2000

    [transform_options.eaq]
    config = { n_steps = 1000 }

    [datasets]                  # building missing datasets with benchmarks.behaviour
    build_missing = true
    options = { episodes = 200 }   # benchmarks.behaviour_config.DatasetConfig fields

    [aliases]                   # a registered algorithm or transform under a second name,
    eaq_l003 = "eaq"            # with its own options: "bc+eaq_l003" beside "bc+eaq"

An algorithm entry ``"<algorithm>+<transform>"`` trains ``<algorithm>`` on the dataset
produced by ``<transform>`` (EAQ and EAQ-without-Q are transforms, not algorithms).

:func:`load_config` refuses, with one error naming the entry, a malformed TOML, an unknown
key, env, algorithm, transform or dataset, bad options, and algorithms that cannot run on
the env (e.g. a discrete-only learner on continuous actions).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TOP_KEYS = {
    "name", "description", "seeds", "eval_episodes", "algorithms", "tasks",
    "algorithm_options", "transform_options", "datasets", "results_dir", "workers",
    "aliases",
}
TASK_KEYS = {
    "env", "env_kwargs", "datasets", "tiers", "algorithms", "name",
    "algorithm_options", "transform_options",
}
DATASET_KEYS = {"build_missing", "options"}


class ConfigError(ValueError):
    """A leaderboard config is malformed or names something unknown."""


@dataclasses.dataclass(frozen=True)
class Task:
    """One env with its datasets and algorithm entries (``"bc"``, ``"bc+eaq"``)."""

    env: str
    env_kwargs: dict[str, Any]
    datasets: tuple[str, ...]
    algorithms: tuple[str, ...]
    name: str
    # per-task options, merged key by key over the top-level [algorithm_options.<name>] /
    # [transform_options.<name>] tables (e.g. fewer EAQ steps on a bigger env)
    algorithm_options: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    transform_options: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def options(self, kind: str, name: str, top: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """``top[name]`` with this task's ``<kind>_options[name]`` keys on top."""
        own = getattr(self, f"{kind}_options").get(name, {})
        return {**top.get(name, {}), **own}


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run: (env, dataset, algorithm[, transform], seed), plus the options it used.

    ``key`` identifies the run and its settings: a finished run with the same key is skipped
    on rerun; changing an option changes the key, so that run is redone.
    """

    task: str
    env: str
    env_kwargs: dict[str, Any]
    dataset: str
    algorithm: str
    transform: str | None
    seed: int
    eval_episodes: int
    algorithm_options: dict[str, Any]
    transform_options: dict[str, Any]

    @property
    def entry(self) -> str:
        return self.algorithm + (f"+{self.transform}" if self.transform else "")

    @property
    def key(self) -> str:
        blob = json.dumps(dataclasses.asdict(self), sort_keys=True, default=str)
        digest = hashlib.sha1(blob.encode()).hexdigest()[:10]
        slug = "_".join(
            s.replace("/", "-").replace(":", "-")
            for s in (self.task, self.dataset.split("/")[-1], self.entry, f"s{self.seed}")
        )
        return f"{slug}_{digest}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class GridConfig:
    """A validated leaderboard config."""

    name: str
    description: str
    seeds: tuple[int, ...]
    eval_episodes: int
    tasks: tuple[Task, ...]
    algorithm_options: dict[str, dict[str, Any]]
    transform_options: dict[str, dict[str, Any]]
    build_missing: bool
    build_options: dict[str, Any]
    results_dir: str | None
    source: str  # the TOML text, stored with every result
    path: str | None = None
    workers: int = 1  # default parallel runs (local processes) when the CLI gives none

    def runs(self) -> list[RunSpec]:
        """Every run of the grid, in a fixed order."""
        from benchmarks.algorithms import parse_entry

        out = []
        for task in self.tasks:
            for dataset in task.datasets:
                for entry in task.algorithms:
                    algo, transform = parse_entry(entry)
                    for seed in self.seeds:
                        out.append(RunSpec(
                            task=task.name, env=task.env, env_kwargs=dict(task.env_kwargs),
                            dataset=dataset, algorithm=algo, transform=transform,
                            seed=int(seed), eval_episodes=self.eval_episodes,
                            algorithm_options=task.options(
                                "algorithm", algo, self.algorithm_options
                            ),
                            transform_options=(
                                task.options("transform", transform, self.transform_options)
                                if transform else {}
                            ),
                        ))
        return out

    def transforms_needed(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Distinct (dataset, transform, options) to build before training."""
        seen: dict[tuple[str, str], dict[str, Any]] = {}
        for run in self.runs():
            if run.transform:
                key = (run.dataset, run.transform)
                if key in seen and seen[key] != run.transform_options:
                    raise ConfigError(
                        f"Transform {run.transform!r} of {run.dataset!r} is asked with two "
                        f"option sets ({seen[key]} and {run.transform_options}); one "
                        "dataset gets one output per transform."
                    )
                seen[key] = run.transform_options
        return [(d, tf, opts) for (d, tf), opts in seen.items()]


def _where(path: str | None) -> str:
    return f"{path}: " if path else ""


def _dataset_exists(dataset_id: str) -> bool:
    from minari.storage.datasets_root_dir import get_dataset_path

    try:
        return (get_dataset_path(dataset_id) / "data").exists()
    except Exception:
        return False


def _buildable(env: str, env_kwargs: dict[str, Any], dataset_id: str) -> str | None:
    """None when benchmarks.behaviour can build ``dataset_id``, else the reason."""
    from benchmarks.harness import can_build

    try:
        return can_build(env, env_kwargs, dataset_id)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def _tier_ids(env: str, env_kwargs: dict[str, Any], tiers: Any, fail, label: str) -> list[str]:
    """Dataset ids of behaviour ``tiers`` of the env (``benchmarks.behaviour`` names them)."""
    from benchmarks.harness import dataset_builder

    if not isinstance(tiers, list) or not all(isinstance(t, str) for t in tiers):
        raise fail(f"{label}.tiers: expected a list of tier names, got {tiers!r}")
    builder = dataset_builder()
    if builder is None:
        raise fail(f"{label}.tiers: benchmarks.behaviour is not available to name datasets")
    try:
        return list(builder.dataset_ids(env, env_kwargs, tiers).values())
    except ValueError as exc:
        raise fail(f"{label}.tiers {tiers!r}: {exc}") from None


def parse_config(
    text: str, *, path: str | None = None, check_datasets: bool = True,
    check_envs: bool = True,
) -> GridConfig:
    """Parse and validate TOML ``text``; raise :class:`ConfigError` naming the bad entry.

    ``check_datasets=False`` skips the dataset-existence checks; ``check_envs=False`` does
    not build the envs (nor check algorithms against their action spaces).
    """
    from benchmarks.algorithms import (
        ALGORITHMS,
        TRANSFORMS,
        parse_entry,
        register_alias,
    )

    where = _where(path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}malformed TOML: {exc}") from None

    def fail(msg: str) -> ConfigError:
        return ConfigError(f"{where}{msg}")

    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        raise fail(f"unknown key(s) {unknown}; allowed: {sorted(TOP_KEYS)}")
    seeds = raw.get("seeds", [0, 1, 2])
    if (
        not isinstance(seeds, list) or not seeds
        or not all(isinstance(s, int) and s >= 0 for s in seeds)
        or len(set(seeds)) != len(seeds)
    ):
        raise fail(f"seeds = {seeds!r}: expected a non-empty list of distinct ints >= 0")
    eval_episodes = raw.get("eval_episodes", 20)
    if not isinstance(eval_episodes, int) or eval_episodes < 1:
        raise fail(f"eval_episodes = {eval_episodes!r}: expected an int >= 1")
    workers = raw.get("workers", 1)
    if not isinstance(workers, int) or workers < 1:
        raise fail(f"workers = {workers!r}: expected an int >= 1")
    default_algos = raw.get("algorithms")
    datasets_block = raw.get("datasets", {})
    if not isinstance(datasets_block, dict) or set(datasets_block) - DATASET_KEYS:
        raise fail(f"[datasets] accepts only {sorted(DATASET_KEYS)}, got {datasets_block!r}")
    build_missing = bool(datasets_block.get("build_missing", False))
    build_options = dict(datasets_block.get("options", {}))

    # -- aliases: a plug-in under a second name (its own options, outputs and rows) ------
    aliases = raw.get("aliases", {})
    if not isinstance(aliases, dict):
        raise fail(f"[aliases]: expected a table of name = \"registered name\", got {aliases!r}")
    for alias, base in aliases.items():
        try:
            register_alias(alias, base)
        except ValueError as exc:
            raise fail(f"[aliases] {alias}: {exc}") from None

    # -- algorithm / transform options ---------------------------------------------------
    def checked_options(section: str, registry: dict, kind: str) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name, opts in raw.get(section, {}).items():
            if name not in registry:
                raise fail(
                    f"[{section}.{name}]: unknown {kind} {name!r}; known: {sorted(registry)}"
                )
            try:
                registry[name].make_config(opts)
            except ValueError as exc:
                raise fail(f"[{section}.{name}]: {exc}") from None
            out[name] = dict(opts)
        return out

    algo_opts = checked_options("algorithm_options", ALGORITHMS, "algorithm")
    tf_opts = checked_options("transform_options", TRANSFORMS, "transform")

    # -- tasks ---------------------------------------------------------------------------
    raw_tasks = raw.get("tasks")
    if not isinstance(raw_tasks, list) or not raw_tasks:
        raise fail("no [[tasks]]: a config needs at least one task (env + datasets)")
    tasks: list[Task] = []
    names: set[str] = set()
    for k, rt in enumerate(raw_tasks):
        label = f"tasks[{k}]"
        if not isinstance(rt, dict):
            raise fail(f"{label}: expected a table")
        bad = sorted(set(rt) - TASK_KEYS)
        if bad:
            raise fail(f"{label}: unknown key(s) {bad}; allowed: {sorted(TASK_KEYS)}")
        env = rt.get("env")
        if not isinstance(env, str) or not env:
            raise fail(f"{label}.env: missing or not a string")
        env_kwargs = rt.get("env_kwargs", {})
        if not isinstance(env_kwargs, dict):
            raise fail(f"{label}.env_kwargs: expected a table, got {env_kwargs!r}")
        env_obj = _check_env(env, env_kwargs, fail, label) if check_envs else None
        datasets = rt.get("datasets", [])
        if not isinstance(datasets, list) or not all(isinstance(d, str) for d in datasets):
            raise fail(f"{label}.datasets: expected a list of dataset ids")
        if "tiers" in rt:
            datasets = datasets + [
                d for d in _tier_ids(env, env_kwargs, rt["tiers"], fail, label)
                if d not in datasets
            ]
        if not datasets:
            raise fail(f"{label}: no datasets (give 'datasets' ids or behaviour 'tiers')")
        for j, d in enumerate(datasets):
            _check_dataset_id(d, fail, f"{label}.datasets[{j}]")
        if build_missing:
            try:
                from benchmarks.harness import dataset_build_config

                dataset_build_config(build_options)
            except (TypeError, ValueError) as exc:
                raise fail(f"[datasets] options {build_options!r}: {exc}") from None
        for j, d in enumerate(datasets):
            if check_datasets and not _dataset_exists(d):
                reason = (
                    _buildable(env, env_kwargs, d) if build_missing
                    else "set [datasets] build_missing = true to build it"
                )
                if reason is not None:
                    root = os.environ.get("MINARI_DATASETS_PATH", "~/.minari/datasets")
                    raise fail(
                        f"{label}.datasets[{j}] {d!r}: no such local dataset (root {root}) "
                        f"and it cannot be built: {reason}"
                    )
        algos = rt.get("algorithms", default_algos)
        if not isinstance(algos, list) or not algos or not all(isinstance(a, str) for a in algos):
            raise fail(
                f"{label}.algorithms: expected a non-empty list of names (or a top-level "
                "'algorithms' list)"
            )
        for j, entry in enumerate(algos):
            _check_entry(entry, env_obj, fail, f"{label}.algorithms[{j}]", ALGORITHMS, TRANSFORMS, parse_entry)
        task_opts: dict[str, dict[str, dict[str, Any]]] = {}
        for section, registry, kind, top in (
            ("algorithm_options", ALGORITHMS, "algorithm", algo_opts),
            ("transform_options", TRANSFORMS, "transform", tf_opts),
        ):
            table = rt.get(section, {})
            if not isinstance(table, dict):
                raise fail(f"{label}.{section}: expected a table of {kind} names")
            task_opts[section] = {}
            for nm, opts in table.items():
                if nm not in registry:
                    raise fail(
                        f"{label}.{section}.{nm}: unknown {kind} {nm!r}; known: "
                        f"{sorted(registry)}"
                    )
                if not isinstance(opts, dict):
                    raise fail(f"{label}.{section}.{nm}: expected a table of options")
                try:
                    registry[nm].make_config({**top.get(nm, {}), **opts})
                except ValueError as exc:
                    raise fail(f"{label}.{section}.{nm}: {exc}") from None
                task_opts[section][nm] = dict(opts)
        name = rt.get("name") or env.split(":")[-1].replace("/", "-")
        if name in names:
            name = f"{name}-{k}"
        names.add(name)
        tasks.append(Task(
            env=env, env_kwargs=dict(env_kwargs), datasets=tuple(datasets),
            algorithms=tuple(algos), name=str(name),
            algorithm_options=task_opts["algorithm_options"],
            transform_options=task_opts["transform_options"],
        ))
    grid = GridConfig(
        name=str(raw.get("name", Path(path).stem if path else "grid")),
        description=str(raw.get("description", "")),
        seeds=tuple(int(s) for s in seeds),
        eval_episodes=int(eval_episodes),
        tasks=tuple(tasks),
        algorithm_options=algo_opts,
        transform_options=tf_opts,
        build_missing=build_missing,
        build_options=build_options,
        results_dir=raw.get("results_dir"),
        source=text,
        path=path,
        workers=int(workers),
    )
    try:
        grid.transforms_needed()
    except ConfigError as exc:
        raise fail(str(exc)) from None
    return grid


def _check_env(env: str, env_kwargs: dict[str, Any], fail, label: str) -> Any:
    from wrappers import make_env

    try:
        obj = make_env(env, **env_kwargs)
    except Exception as exc:
        raise fail(f"{label}.env {env!r}: {type(exc).__name__}: {exc}") from None
    try:
        obj.close()
    except Exception:
        pass
    return obj


def _check_dataset_id(dataset_id: str, fail, label: str) -> None:
    from minari.dataset.minari_dataset import parse_dataset_id

    try:
        parse_dataset_id(dataset_id)
    except Exception as exc:
        raise fail(
            f"{label} {dataset_id!r}: malformed dataset id ({exc}); ids look like "
            "'mpe2/simple_spread/medium-v0'"
        ) from None


def _check_entry(entry, env_obj, fail, label, algorithms, transforms, parse_entry) -> None:
    from gymnasium import spaces

    algo, transform = parse_entry(entry)
    if algo not in algorithms:
        raise fail(f"{label} {entry!r}: unknown algorithm {algo!r}; known: {sorted(algorithms)}")
    spec = algorithms[algo]
    missing = spec.missing_requirement()
    if missing:
        raise fail(f"{label} {entry!r}: algorithm {algo!r} is not available ({missing})")
    if transform is not None:
        if transform not in transforms:
            raise fail(
                f"{label} {entry!r}: unknown transform {transform!r}; known: "
                f"{sorted(transforms)}"
            )
        if not spec.uses_dataset:
            raise fail(
                f"{label} {entry!r}: {algo!r} does not train on the data, so a transform "
                "has no effect; drop the '+" + transform + "'"
            )
        missing = transforms[transform].missing_requirement()
        if missing:
            raise fail(f"{label} {entry!r}: transform {transform!r} is not available ({missing})")
    if spec.discrete_only and env_obj is not None:
        cont = [
            a for a in env_obj.possible_agents
            if not isinstance(env_obj.action_space(a), spaces.Discrete)
        ]
        if cont:
            raise fail(
                f"{label} {entry!r}: {algo!r} needs Discrete actions; agents {cont} are not"
            )


def load_config(
    path: str | os.PathLike, *, check_datasets: bool = True, check_envs: bool = True
) -> GridConfig:
    """Read and validate a TOML grid file (see the module docstring)."""
    p = Path(path)
    if not p.is_file():
        builtin = Path(__file__).parent / "configs" / f"{p.name}"
        if not p.suffix:
            builtin = builtin.with_suffix(".toml")
        if builtin.is_file():
            p = builtin
        else:
            raise ConfigError(f"No config file {str(path)!r} (nor a built-in {builtin.name}).")
    return parse_config(
        p.read_text(), path=str(p), check_datasets=check_datasets, check_envs=check_envs
    )
