"""The leaderboard harness: a TOML grid of (env, dataset, algorithm[+transform], seed) runs
→ trained policies → evaluation in the real env → normalized scores, tables and plots.

Flow of :func:`run_benchmark`:

1. the config is validated (:mod:`benchmarks.config`) before anything runs;
2. *prepare*, in this process: missing datasets are built (``benchmarks.behaviour``) and
   each (dataset, transform) pair is built once (e.g. ``eaq.augment``);
3. runs whose result file already exists are skipped (resume after a crash or Ctrl-C);
4. the others go to an executor (:mod:`benchmarks.executors`); each result is written
   atomically to ``<out>/runs/<key>.json`` with the config, versions and seed behind it;
5. ``runs.jsonl``, ``results.json`` (marl-eval format), ``leaderboard.md`` and the plots
   are rebuilt from the result files (:mod:`benchmarks.report`).

Command line: ``diffusion-agents bench CONFIG [--out DIR] [--executor local|ray|sequential]
[--workers N]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import importlib
import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wrappers.files import atomic_path

EVAL_SEED_BASE = 1_000_000  # eval episode i of run seed s resets the env with base + 1000 s + i
WIN_KEYS = ("battle_won", "won", "win")
RESULT_FORMAT = 1


# ---------------------------------------------------------------------------------------
# small utilities
# ---------------------------------------------------------------------------------------


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (:func:`write_text_atomic`)."""
    write_text_atomic(path, json.dumps(obj, indent=1, default=_json_default))


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (``wrappers.files.atomic_path``)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _json_default(x: Any) -> Any:
    try:
        import numpy as np

        if isinstance(x, np.generic):
            return x.item()
        if isinstance(x, np.ndarray):
            return x.tolist()
    except ImportError:  # pragma: no cover
        pass
    if dataclasses.is_dataclass(x):
        return dataclasses.asdict(x)
    return str(x)


def versions() -> dict[str, Any]:
    """Package versions, git commit and machine, stored with every result."""
    out: dict[str, Any] = {"python": platform.python_version()}
    for mod in ("numpy", "torch", "minari", "pettingzoo", "mpe2", "gymnasium", "rliable",
                "jax", "jaxmarl", "ray"):
        try:
            from importlib.metadata import version

            out[mod] = version(mod)
        except Exception:
            continue
    try:
        from importlib.metadata import version

        out["diffusion-agents"] = version("diffusion-agents")
    except Exception:
        pass
    try:
        out["git_commit"] = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip() or None
    except Exception:
        out["git_commit"] = None
    out["machine"] = f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs"
    out["host"] = socket.gethostname()
    return out


# ---------------------------------------------------------------------------------------
# datasets: building missing ones, transforms, reference scores
# ---------------------------------------------------------------------------------------


def dataset_builder() -> Any | None:
    """``benchmarks.behaviour`` (it builds behaviour-policy dataset tiers), or None."""
    try:
        module = importlib.import_module("benchmarks.behaviour")
    except ImportError:
        return None
    return module if hasattr(module, "build_datasets") else None


def behaviour_tier(env_id: str, env_kwargs: dict[str, Any], dataset_id: str) -> str | None:
    """The behaviour tier whose id for this env is ``dataset_id`` (None if none is)."""
    builder = dataset_builder()
    if builder is None:
        return None
    ids = builder.dataset_ids(env_id, env_kwargs)
    return next((tier for tier, did in ids.items() if did == dataset_id), None)


def can_build(env_id: str, env_kwargs: dict[str, Any], dataset_id: str) -> str | None:
    """None when ``dataset_id`` can be built for the env, else the reason."""
    builder = dataset_builder()
    if builder is None:
        return "benchmarks.behaviour (the dataset builder) is not available"
    ids = builder.dataset_ids(env_id, env_kwargs)
    if dataset_id not in ids.values():
        return f"the behaviour tiers of this env are {sorted(ids.values())}"
    return None


def dataset_build_config(options: dict[str, Any], env_id: str = "") -> Any:
    """``benchmarks.behaviour_config.DatasetConfig`` from the TOML ``[datasets] options``,
    over the env family's defaults (:meth:`DatasetConfig.for_env`)."""
    from benchmarks.behaviour_config import DatasetConfig

    return DatasetConfig.for_env(env_id, **dict(options))


def ensure_datasets(
    env_id: str, env_kwargs: dict[str, Any], dataset_ids: list[str], options: dict[str, Any],
    *, show_progress: bool = True, log: Callable[[str], None] | None = None,
) -> list[str]:
    """Build the missing ones of ``dataset_ids`` (behaviour tiers of the env) in one go;
    returns the ids built now. Existing datasets are never touched."""
    from benchmarks.config import _dataset_exists

    missing = [d for d in dataset_ids if not _dataset_exists(d)]
    if not missing:
        return []
    tiers = []
    for d in missing:
        reason = can_build(env_id, env_kwargs, d)
        if reason is not None:
            raise FileNotFoundError(f"Dataset {d!r} is missing and cannot be built: {reason}.")
        tiers.append(behaviour_tier(env_id, env_kwargs, d))
    builder = dataset_builder()
    builder.build_datasets(
        env_id, env_kwargs=env_kwargs, tiers=tiers,
        config=dataset_build_config(options, env_id),
        show_progress=show_progress, log=log,
    )
    return missing


def transformed_id(dataset_id: str, transform: str) -> str:
    """``"mpe2/simple_spread/medium-v0"`` + ``"eaq"`` -> ``"mpe2/simple_spread/medium-eaq-v0"``."""
    base, sep, ver = dataset_id.rpartition("-v")
    if not sep or not ver.isdigit():
        return f"{dataset_id}-{transform.replace('_', '-')}"
    return f"{base}-{transform.replace('_', '-')}-v{ver}"


def ensure_transform(
    dataset_id: str, transform: str, options: dict[str, Any], *, show_progress: bool = True
) -> str:
    """Build the transform's output for ``dataset_id`` once; return its dataset id.

    An existing output is reused only when the harness built it with the same options
    (stored beside it in ``harness_transform.json``); an output with other options, or one
    made outside the harness (no stamp, so its settings are unknown), fails the call rather
    than silently mixing settings.
    """
    from benchmarks.algorithms import TRANSFORMS, TransformContext
    from benchmarks.config import _dataset_exists

    out_id = transformed_id(dataset_id, transform)
    spec = TRANSFORMS[transform]
    cfg = spec.make_config(options)
    stamp = {"transform": transform, "source": dataset_id, "options": options}
    stamp_file = Path(_dataset_path(out_id)) / "harness_transform.json"
    if _dataset_exists(out_id):
        if not stamp_file.exists():
            raise ValueError(
                f"Dataset {out_id!r} exists but was not built by the harness (no "
                f"{stamp_file.name} beside it), so its settings are unknown; delete it "
                "(`minari delete`) or rename it."
            )
        old = json.loads(stamp_file.read_text())
        if old != json.loads(json.dumps(stamp)):
            raise ValueError(
                f"Dataset {out_id!r} exists but was built with {old}, not {stamp}; delete "
                "it (`minari delete`) or change the options back."
            )
        return out_id
    ctx = TransformContext(
        source_id=dataset_id, output_id=out_id, seed=getattr(cfg, "seed", 0), config=cfg,
        show_progress=show_progress,
    )
    ds = spec.load()(ctx)
    got = ds.spec.dataset_id if hasattr(ds, "spec") else str(ds)
    if got != out_id:
        raise RuntimeError(f"Transform {transform!r} wrote {got!r}, expected {out_id!r}.")
    # record the settings beside the dataset (its metadata is the transform's to write)
    write_json_atomic(stamp_file, stamp)
    return out_id


def _dataset_path(dataset_id: str) -> Path:
    from minari.storage.datasets_root_dir import get_dataset_path

    return get_dataset_path(dataset_id)


def dataset_info(dataset_id: str) -> dict[str, Any]:
    """Reference scores, size and mean return of a dataset (from its metadata and rewards)."""
    import minari
    import numpy as np

    ds = minari.load_dataset(dataset_id)
    meta = ds.storage.metadata
    returns = [float(np.sum(ep.rewards)) for ep in ds.iterate_episodes()]
    ma = meta.get("multiagent", {}) or {}
    return {
        "dataset_id": dataset_id,
        "ref_min_score": _opt_float(meta.get("ref_min_score")),
        "ref_max_score": _opt_float(meta.get("ref_max_score")),
        "num_episodes": len(returns),
        "mean_return": float(np.mean(returns)) if returns else None,
        "behaviour_policy": ma.get("behaviour_policy"),
        "info_keys": list(ma.get("info_keys", [])),
        # what a derived dataset (an EAQ or oracle augmentation) was made from: the report pairs them
        "source_dataset_id": (ma.get("eaq") or ma.get("oracle") or {}).get("source_dataset_id"),
        "generator": generator_key(ma.get("eaq")),
    }


# settings that draw another replicate of the same transform, not another transform
REPLICATE_SETTINGS = ("seed", "device")


def generator_key(eaq: dict[str, Any] | None) -> str | None:
    """What made an EAQ augmentation, less its seed and device: the EAQ settings, λ, the
    fit length and the number of synthetic episodes, as sorted JSON. Augmentations of one
    source with the same key are replicates (``report.replicate_differences`` pools them)."""
    if not eaq or not isinstance(eaq.get("settings"), dict):
        return None
    from diffusion_agents.eaq import EAQConfig

    settings = eaq["settings"]
    try:  # an older record lacks the options added since: their defaults applied
        settings = EAQConfig.from_dict(settings).to_dict()
    except (TypeError, ValueError):
        pass
    settings = {k: v for k, v in settings.items() if k not in REPLICATE_SETTINGS}
    key = {
        "settings": settings,
        **{k: eaq.get(k) for k in (
            "q_weight", "fit_steps", "num_synthetic_episodes", "synthetic_only",
            "reward_scale",  # a diagnostic copy with rescaled synthetic rewards (eaq_reward_scale)
        )},
    }
    return json.dumps(key, sort_keys=True, default=str)


def _opt_float(x: Any) -> float | None:
    return None if x is None else float(x)


def normalize(value: float, ref_min: float | None, ref_max: float | None) -> float | None:
    """``100 (R - min) / (max - min)``, or None without both reference scores."""
    if ref_min is None or ref_max is None or ref_max == ref_min:
        return None
    return 100.0 * (value - ref_min) / (ref_max - ref_min)


# ---------------------------------------------------------------------------------------
# evaluation in the real env
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class Evaluation:
    """Per-episode results of a policy: team returns, lengths, and wins where reported."""

    returns: list[float]
    lengths: list[int]
    wins: list[float] | None
    seeds: list[int]


def evaluate(
    policy: Any, env_id: str, env_kwargs: dict[str, Any], episodes: int, seed: int,
    *, max_steps: int = 100_000,
) -> Evaluation:
    """Roll ``policy`` out for ``episodes`` episodes of ``make_env(env_id, **env_kwargs)``.

    The team return sums, per step, the mean reward of the agents that acted (the dataset
    convention's team reward). Episode ``i`` resets with seed
    ``EVAL_SEED_BASE + 1000 * seed + i``, so runs with the same seed meet the same episodes.
    A win is recorded where an agent's info reports one of :data:`WIN_KEYS`.
    """
    import numpy as np

    from wrappers import make_env

    env = make_env(env_id, **env_kwargs)
    returns, lengths, wins, seeds = [], [], [], []
    win_reported = False
    try:
        for i in range(episodes):
            ep_seed = EVAL_SEED_BASE + 1000 * seed + i
            obs, infos = env.reset(seed=ep_seed)
            if hasattr(policy, "reset"):
                policy.reset()
            total, steps, won = 0.0, 0, 0.0
            while env.agents:
                present = {a: obs[a] for a in env.agents if a in obs}
                acts = policy.act(present)
                missing = [a for a in env.agents if a not in acts]
                if missing:
                    raise KeyError(
                        f"{type(policy).__name__}.act() returned no action for {missing}."
                    )
                obs, rew, _term, _trunc, infos = env.step({a: acts[a] for a in env.agents})
                acted = [a for a in rew if a in acts] or list(rew)
                total += float(np.mean([rew[a] for a in acted])) if acted else 0.0
                steps += 1
                for info in (infos or {}).values():
                    if isinstance(info, dict):
                        for key in WIN_KEYS:
                            if key in info:
                                win_reported = True
                                won = max(won, float(info[key]))
                if steps >= max_steps:
                    raise RuntimeError(f"{env_id}: episode exceeded {max_steps} steps.")
            returns.append(total)
            lengths.append(steps)
            wins.append(won)
            seeds.append(ep_seed)
    finally:
        try:
            env.close()
        except Exception:
            pass
    return Evaluation(returns, lengths, wins if win_reported else None, seeds)


# ---------------------------------------------------------------------------------------
# one run (executed in a worker)
# ---------------------------------------------------------------------------------------


def execute_run(payload: dict[str, Any]) -> dict[str, Any]:
    """Train and evaluate one run; a pure function of ``payload`` (runs in any worker).

    ``payload``: ``run`` (RunSpec dict), ``train_dataset``, ``dataset_info``,
    ``minari_root``, ``threads``, ``show_progress``.
    """
    import numpy as np

    if payload.get("minari_root"):
        os.environ["MINARI_DATASETS_PATH"] = payload["minari_root"]
    from benchmarks.algorithms import ALGORITHMS, TrainContext

    run = payload["run"]
    # the spec travels with the payload, so plug-ins registered in the parent process work
    # in spawned or Ray workers too
    spec = payload.get("spec") or ALGORITHMS[run["algorithm"]]
    cfg = spec.make_config(run["algorithm_options"])
    torch = None
    try:
        import torch as _torch

        torch = _torch
    except ImportError:  # pragma: no cover
        pass
    if torch is not None:
        prev_threads = torch.get_num_threads()
        prev_det = torch.are_deterministic_algorithms_enabled()
        torch.set_num_threads(int(payload.get("threads", 1)))
        torch.use_deterministic_algorithms(True)
    try:
        ctx = TrainContext(
            dataset_id=payload["train_dataset"], source_dataset_id=run["dataset"],
            env_id=run["env"], env_kwargs=dict(run["env_kwargs"]), seed=int(run["seed"]),
            config=cfg, show_progress=bool(payload.get("show_progress", False)),
        )
        t0 = time.perf_counter()
        policy = spec.load()(ctx)
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ev = evaluate(policy, run["env"], run["env_kwargs"], run["eval_episodes"], run["seed"])
        eval_s = time.perf_counter() - t0
    finally:
        if torch is not None:
            torch.set_num_threads(prev_threads)
            torch.use_deterministic_algorithms(prev_det)
    info = payload["dataset_info"]
    norm = [normalize(r, info["ref_min_score"], info["ref_max_score"]) for r in ev.returns]
    mean_return = float(np.mean(ev.returns))
    return {
        "format": RESULT_FORMAT,
        "key": payload["key"],
        "run": run,
        "entry": run["algorithm"] + (f"+{run['transform']}" if run["transform"] else ""),
        "train_dataset": payload["train_dataset"],
        "algorithm_config": dataclasses.asdict(cfg),
        "returns": ev.returns,
        "lengths": ev.lengths,
        "eval_seeds": ev.seeds,
        "wins": ev.wins,
        "normalized": None if norm[0] is None else norm,
        "mean_return": mean_return,
        "mean_normalized": normalize(mean_return, info["ref_min_score"], info["ref_max_score"]),
        "win_rate": None if ev.wins is None else float(np.mean(ev.wins)),
        "train_seconds": train_s,
        "eval_seconds": eval_s,
        "threads": int(payload.get("threads", 1)),
    }


# ---------------------------------------------------------------------------------------
# the grid
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class BenchmarkOutcome:
    """What :func:`run_benchmark` did."""

    out: Path
    total: int
    skipped: list[str]
    ran: list[str]
    failed: dict[str, str]
    wall_seconds: float
    leaderboard: str


def results_dir_for(config, out: str | os.PathLike | None) -> Path:
    if out is not None:
        return Path(out)
    if config.results_dir:
        return Path(config.results_dir)
    return Path("results") / config.name


def run_benchmark(
    config,
    *,
    out: str | os.PathLike | None = None,
    executor: str = "local",
    workers: int | None = None,
    threads_per_run: int = 1,
    ray_address: str | None = None,
    show_progress: bool = True,
    log: Callable[[str], None] | None = print,
    bootstrap_reps: int = 2000,
    plots: bool = True,
) -> BenchmarkOutcome:
    """Run (or resume) every run of ``config`` (a :class:`benchmarks.config.GridConfig`).

    ``executor="local"`` with ``workers`` processes (default: the config's ``workers``;
    1 runs in this process), ``"sequential"``, or ``"ray"``.
    """
    from benchmarks import report
    from benchmarks.algorithms import ALGORITHMS
    from benchmarks.executors import execute

    log = log or (lambda _msg: None)
    t_start = time.perf_counter()
    workers = int(workers or config.workers)
    out_dir = results_dir_for(config, out)
    runs_dir = out_dir / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "config.toml", config.source)

    # -- prepare: datasets and transforms, in this process ------------------------------
    infos: dict[str, dict[str, Any]] = {}
    train_ids: dict[tuple[str, str | None], str] = {}
    for task in config.tasks:
        if config.build_missing:
            built = ensure_datasets(
                task.env, task.env_kwargs, list(task.datasets), config.build_options,
                show_progress=show_progress, log=log,
            )
            for d in built:
                log(f"built dataset {d}")
        for d in task.datasets:
            if d not in infos:
                infos[d] = dataset_info(d)
            train_ids[(d, None)] = d
    for d, tf, tf_options in config.transforms_needed():
        log(f"transform {tf} on {d} ...")
        train_ids[(d, tf)] = ensure_transform(d, tf, tf_options, show_progress=show_progress)

    # -- runs: skip finished ----------------------------------------------------------------
    runs = config.runs()
    versions_info = versions()
    minari_root = os.environ.get("MINARI_DATASETS_PATH")
    skipped, pending = [], []
    for r in runs:
        if (runs_dir / f"{r.key}.json").exists():
            skipped.append(r.key)
            continue
        pending.append({
            "key": r.key,
            "run": r.to_dict(),
            "spec": ALGORITHMS[r.algorithm],
            "train_dataset": train_ids[(r.dataset, r.transform)],
            "dataset_info": infos[r.dataset],
            "minari_root": minari_root,
            "threads": threads_per_run,
            "show_progress": show_progress and (executor == "sequential" or workers == 1),
        })
    log(
        f"{config.name}: {len(runs)} runs, {len(skipped)} already finished, "
        f"{len(pending)} to run ({executor}, workers={workers}) -> {out_dir}"
    )
    ran: list[str] = []
    failed: dict[str, str] = {}
    from tqdm.auto import tqdm

    bar = tqdm(total=len(pending), desc=config.name, disable=not show_progress)

    def on_result(payload: dict[str, Any], result: dict[str, Any]) -> None:
        result = dict(result)
        result["config"] = {"name": config.name, "path": config.path, "toml": config.source}
        result["versions"] = versions_info
        result["finished_at"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        write_json_atomic(runs_dir / f"{payload['key']}.json", result)
        (runs_dir / f"{payload['key']}.error.txt").unlink(missing_ok=True)
        ran.append(payload["key"])
        bar.update(1)
        norm = result["mean_normalized"]
        bar.set_postfix_str(
            f"{result['entry']} s{result['run']['seed']}: "
            + (f"{norm:.1f}" if norm is not None else f"R={result['mean_return']:.2f}")
        )

    def on_error(payload: dict[str, Any], tb: str) -> None:
        failed[payload["key"]] = tb
        write_text_atomic(runs_dir / f"{payload['key']}.error.txt", tb)
        bar.update(1)
        log(f"run {payload['key']} FAILED:\n{tb}")

    try:
        execute(executor, execute_run, pending, on_result, on_error, workers=workers,
                ray_address=ray_address)
    finally:
        bar.close()
        keys = [r.key for r in runs]
        results = report.load_results(runs_dir, keys)
        leaderboard = report.write_reports(
            out_dir, config, results, infos, reps=bootstrap_reps, plots=plots,
            command=" ".join(sys.argv) if sys.argv else None,
        )
    wall = time.perf_counter() - t_start
    log(leaderboard)
    log(
        f"{len(ran)} ran, {len(skipped)} skipped, {len(failed)} failed in {wall:.1f} s; "
        f"results in {out_dir}"
    )
    return BenchmarkOutcome(out_dir, len(runs), skipped, ran, failed, wall, leaderboard)


# ---------------------------------------------------------------------------------------
# CLI: diffusion-agents bench
# ---------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config", nargs="?", default="quick",
        help="TOML grid file, or the name of a built-in one (quick, full). Default: quick.",
    )
    parser.add_argument("--out", default=None, help="results folder (default: from config)")
    parser.add_argument(
        "--executor", default="local", choices=("sequential", "local", "ray"),
        help="where runs execute (default: local processes)",
    )
    parser.add_argument("--workers", type=int, default=None,
                        help="parallel runs (default: the config's 'workers', else 1)")
    parser.add_argument("--threads-per-run", type=int, default=1,
                        help="torch threads per run (results depend on it; default 1)")
    parser.add_argument("--ray-address", default=None, help="join this Ray cluster")
    parser.add_argument("--validate", action="store_true",
                        help="only validate the config and list the runs")
    parser.add_argument("--list", action="store_true", help="list algorithms and transforms")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from benchmarks.config import ConfigError, load_config

    if args.list:
        from benchmarks.algorithms import ALGORITHMS, TRANSFORMS

        for title, reg in (("algorithms", ALGORITHMS), ("transforms", TRANSFORMS)):
            print(f"{title}:")
            for name, spec in reg.items():
                missing = spec.missing_requirement()
                state = "ok" if missing is None else f"unavailable: {missing}"
                print(f"  {name:22s} {spec.description} [{state}]")
        return 0
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.validate:
        runs = config.runs()
        print(f"{config.path}: OK, {len(runs)} runs")
        for r in runs:
            print(f"  {r.key}")
        return 0
    outcome = run_benchmark(
        config, out=args.out, executor=args.executor, workers=args.workers,
        threads_per_run=args.threads_per_run, ray_address=args.ray_address,
        show_progress=not args.quiet, plots=not args.no_plots,
    )
    return 1 if outcome.failed else 0
