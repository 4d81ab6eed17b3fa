"""Behaviour-policy datasets: ``expert``, ``medium``, ``poor``, ``random``, ``medium-replay``.

One shared-parameter PPO run (:mod:`benchmarks.behaviour_policy`) per env makes every tier
(see :class:`~benchmarks.behaviour_config.DatasetConfig` for the definitions). Datasets are
real Minari datasets written by :func:`wrappers.record_dataset` under ids

    ``<family>/<scenario>[-<kwargs>]/<tier>-v0``   e.g. ``mpe2/simple_spread/expert-v0``

(an MPE2 module's ``_vN`` suffix is dropped; env kwargs that differ from the env's defaults
are appended as ``-<key><value>``, e.g. ``mpe2/simple_spread-N2/expert-v0``). The policies
are saved beside them in ``<datasets root>/<namespace>/policies/`` with a ``manifest.json``
holding the reference scores and the snapshot evaluations, so missing tiers can be recorded
later without retraining, and ``load_behaviour_policy(dataset)`` reloads the policy that
recorded a dataset.

Command line::

    diffusion-agents datasets make --env mpe2/simple_spread_v3 [--env-kwargs JSON]
        [--tiers expert medium ...] [--episodes N] [--timesteps N] [--seed S]
    diffusion-agents datasets summary [--env ENV_ID]

This module imports no torch at import time; training code is loaded on first use.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import json
import math
import re
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.behaviour_config import TIERS, DatasetConfig, PPOConfig
from benchmarks.cli import json_object

DEFAULT_ENV_ID = "mpe2/simple_spread_v3"
MANIFEST_VERSION = 1
# Episode-seed offsets per tier (episode i of a tier is reset with seed + offset + i).
_TIER_SEED = {tier: 1_000_000 * (k + 1) for k, tier in enumerate(TIERS)}
_REF_SEED = {"random": 10_000_000, "expert": 11_000_000, "snapshots": 12_000_000}
# Per-agent info entries kept in the datasets of an env family (win flags, death counts).
_INFO_KEYS = {
    "smax": ("battle_won", "dead_allies", "dead_enemies"),
    "smacv2": ("battle_won", "dead_allies", "dead_enemies"),
}


# ---------------------------------------------------------------------------------------
# Dataset ids
# ---------------------------------------------------------------------------------------


def _env_defaults(env_id: str) -> dict[str, Any]:
    """Keyword defaults of the env's factory (used to drop default kwargs from ids)."""
    try:
        if ":" in env_id:
            module_name, _, attr = env_id.partition(":")
            fn = getattr(importlib.import_module(module_name), attr)
        elif env_id.startswith("mpe2/"):
            module = importlib.import_module(f"mpe2.{env_id.split('/', 1)[1]}")
            fn = getattr(module, "raw_env", module.parallel_env)
        else:
            return {}
        sig = inspect.signature(fn)
    except (ImportError, AttributeError, TypeError, ValueError):
        return {}
    return {
        name: p.default
        for name, p in sig.parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def canonical_env_kwargs(
    env_id: str, env_kwargs: Mapping[str, Any] | None
) -> dict[str, Any]:
    """``env_kwargs`` without the entries equal to the env factory's defaults, key-sorted."""
    defaults = _env_defaults(env_id)
    return {
        k: v
        for k, v in sorted((env_kwargs or {}).items())
        if not (k in defaults and defaults[k] == v)
    }


def _clean(text: str) -> str:
    return re.sub(r"[^-\w]+", "_", text).strip("_")


def dataset_namespace(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> str:
    """Minari namespace of an env's behaviour datasets, e.g. ``"mpe2/simple_spread"``."""
    if ":" in env_id:
        module_name, _, attr = env_id.partition(":")
        family, scenario = "custom", f"{_clean(module_name)}-{_clean(attr)}"
    else:
        family, sep, scenario = env_id.partition("/")
        if not sep or not scenario:
            raise ValueError(
                f"Cannot name datasets for env id {env_id!r}: expected '<family>/<scenario>' "
                "or 'package.module:factory'."
            )
        if family == "mpe2":
            scenario = re.sub(r"_v\d+$", "", scenario)
        family, scenario = _clean(family), _clean(scenario)
    tag = "-".join(
        f"{_clean(str(k))}{_clean(str(v))}"
        for k, v in canonical_env_kwargs(env_id, env_kwargs).items()
    )
    return f"{family}/{scenario}" + (f"-{tag}" if tag else "")


def dataset_ids(
    env_id: str,
    env_kwargs: Mapping[str, Any] | None = None,
    tiers: Sequence[str] = TIERS,
    *,
    namespace: str | None = None,
    version: int = 0,
) -> dict[str, str]:
    """``{tier: dataset id}``, e.g. ``{"expert": "mpe2/simple_spread/expert-v0", ...}``."""
    tiers = _check_tiers(tiers)
    ns = namespace or dataset_namespace(env_id, env_kwargs)
    return {tier: f"{ns}/{tier}-v{version}" for tier in tiers}


def _check_tiers(tiers: Iterable[str]) -> list[str]:
    tiers = list(tiers)
    bad = [t for t in tiers if t not in TIERS]
    if bad or not tiers:
        raise ValueError(
            f"Unknown dataset tier(s) {bad or tiers}; choose from {list(TIERS)}."
        )
    return list(dict.fromkeys(tiers))


def _default_info_keys(env_id: str) -> tuple[str, ...]:
    return _INFO_KEYS.get(env_id.partition("/")[0], ())


def _datasets_root() -> Path:
    from minari.storage.datasets_root_dir import get_dataset_path

    return Path(get_dataset_path())


def _dataset_exists(dataset_id: str) -> bool:
    from minari.storage.datasets_root_dir import get_dataset_path

    return Path(get_dataset_path(dataset_id), "data").exists()


def policies_dir(namespace: str) -> Path:
    """Where the behaviour policies of a namespace live: ``<root>/<namespace>/policies``."""
    return _datasets_root() / namespace / "policies"


# ---------------------------------------------------------------------------------------
# Training, tier selection, manifest
# ---------------------------------------------------------------------------------------


def _normalized(ret: float, ref_min: float, ref_max: float) -> float:
    return 100.0 * (ret - ref_min) / (ref_max - ref_min)


def _pick(scores: Sequence[float], target: float, upto: int) -> int:
    """Index ``<= upto`` whose score is closest to ``target`` (earliest on ties)."""
    return min(range(upto + 1), key=lambda i: (abs(scores[i] - target), i))


def train_behaviour_policies(
    env_id: str,
    env_kwargs: Mapping[str, Any] | None = None,
    config: DatasetConfig | None = None,
    *,
    namespace: str | None = None,
    seed: int = 0,
    show_progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train PPO, measure the reference scores, pick the tiers' policies, save them.

    Writes ``<root>/<namespace>/policies/{expert,medium,poor}.zip``, the medium-replay
    snapshots ``replay/snapshot_XX.zip`` and ``manifest.json``; returns the manifest.
    """
    from benchmarks.behaviour_policy import BehaviourPolicy, torch_threads, train_ppo
    from wrappers import JointEnv, RandomPolicy
    from wrappers.minari_io import rollout_returns

    config = config or DatasetConfig.for_env(env_id)
    env_kwargs = dict(env_kwargs or {})
    ns = namespace or dataset_namespace(env_id, env_kwargs)
    out = policies_dir(ns)
    log = log or (lambda msg: None)
    t0 = time.perf_counter()
    run = train_ppo(
        env_id, env_kwargs, config.ppo, seed=seed, show_progress=show_progress
    )
    log(f"trained PPO for {run.timesteps} agent-steps in {run.seconds:.1f} s")
    t1 = time.perf_counter()
    joint = JointEnv(env_id, env_kwargs)
    det = config.deterministic

    def policy_for(state_dict: Any, name: str, pseed: int) -> Any:
        run.model.policy.load_state_dict(state_dict)
        return BehaviourPolicy(
            run.model,
            run.encoder,
            deterministic=det,
            seed=pseed,
            name=name,
            env_id=env_id,
            env_kwargs=env_kwargs,
        )

    final_sd = {k: v.detach().clone() for k, v in run.model.policy.state_dict().items()}
    with torch_threads(1):
        ref_min = float(
            rollout_returns(
                joint,
                RandomPolicy(joint.parallel_env, seed=seed),
                config.ref_episodes,
                seed=seed + _REF_SEED["random"],
            ).mean()
        )
        expert = policy_for(final_sd, "ppo-expert", seed)
        ref_max = float(
            rollout_returns(
                joint, expert, config.ref_episodes, seed=seed + _REF_SEED["expert"]
            ).mean()
        )
        if not ref_max > ref_min:
            warnings.warn(
                f"{env_id}: the trained expert (mean team return {ref_max:.3f}) is not better "
                f"than random ({ref_min:.3f}); normalized scores are meaningless. Train "
                "longer (--timesteps) or tune PPOConfig.",
                stacklevel=2,
            )
        span_ok = ref_max != ref_min
        snaps = []
        bar_eval = run.snapshots
        if show_progress:
            from tqdm.auto import tqdm

            bar_eval = tqdm(run.snapshots, desc="evaluating snapshots", leave=False)
        for i, snap in enumerate(bar_eval):
            pol = policy_for(snap.state_dict, f"ppo-snapshot-{i}", seed)
            ret = float(
                rollout_returns(
                    joint, pol, config.eval_episodes, seed=seed + _REF_SEED["snapshots"]
                ).mean()
            )
            norm = _normalized(ret, ref_min, ref_max) if span_ok else math.nan
            snaps.append(
                {
                    "index": i,
                    "rollout": snap.rollout,
                    "rollouts": snap.rollouts,
                    "timesteps": snap.timesteps,
                    "mean_return": ret,
                    "normalized": norm,
                }
            )
    # Candidates exclude snapshot 0, the untrained network: "poor" is a trained policy
    # (the untrained one scored below the uniform random policy on simple_spread_v3).
    scores = [s["normalized"] if span_ok else 0.0 for s in snaps]
    if len(snaps) > 1:
        scores[0] = math.inf
    medium_i = _pick(scores, config.medium_target, len(snaps) - 1)
    poor_i = _pick(scores, config.poor_target, medium_i)
    log(
        f"reference scores: random {ref_min:.3f}, expert {ref_max:.3f}; medium = snapshot "
        f"{medium_i} ({scores[medium_i]:.1f}), poor = snapshot {poor_i} ({scores[poor_i]:.1f})"
    )

    out.mkdir(parents=True, exist_ok=True)
    root = _datasets_root()

    def save(state_dict: Any, name: str, rel: str) -> str:
        policy_for(state_dict, name, seed).save(out / rel)
        return (out / rel).relative_to(root).as_posix()

    tiers: dict[str, Any] = {
        "expert": {
            "path": save(final_sd, "ppo-expert", "expert.zip"),
            "timesteps": run.timesteps,
            "eval_return": ref_max,
            "normalized": 100.0 if span_ok else math.nan,
        }
    }
    for tier, idx in (("medium", medium_i), ("poor", poor_i)):
        snap = run.snapshots[idx]
        tiers[tier] = {
            "path": save(snap.state_dict, f"ppo-{tier}", f"{tier}.zip"),
            "snapshot": idx,
            "timesteps": snap.timesteps,
            "eval_return": snaps[idx]["mean_return"],
            "normalized": snaps[idx]["normalized"],
        }
    replay = [
        save(
            run.snapshots[i].state_dict,
            f"ppo-snapshot-{i}",
            f"replay/snapshot_{i:02d}.zip",
        )
        for i in range(medium_i + 1)
    ]
    # Training data until medium was reached: each earlier snapshot weighted by the rollouts
    # it collected, the medium snapshot by one rollout.
    weights = [run.snapshots[i].rollouts for i in range(medium_i)] + [1]
    tiers["medium-replay"] = {
        "paths": replay,
        "snapshots": list(range(medium_i + 1)),
        "weights": weights,
        "timesteps": [run.snapshots[i].timesteps for i in range(medium_i + 1)],
    }
    tiers["random"] = {"eval_return": ref_min, "normalized": 0.0}
    manifest = {
        "format_version": MANIFEST_VERSION,
        "env_id": env_id,
        "env_kwargs": env_kwargs,
        "namespace": ns,
        "seed": seed,
        "config": config.to_dict(),
        "algorithm": type(run.model).__name__,
        "train_seconds": run.seconds,
        "eval_seconds": time.perf_counter() - t1,
        "timesteps": run.timesteps,
        "ref_min_score": ref_min,
        "ref_max_score": ref_max,
        "snapshots": snaps,
        "tiers": tiers,
        "created_seconds": time.perf_counter() - t0,
    }
    from benchmarks.behaviour_policy import _write_json_atomic

    _write_json_atomic(out / "manifest.json", manifest)
    return manifest


def read_manifest(namespace: str) -> dict[str, Any] | None:
    """The saved training manifest of a namespace, or None."""
    path = policies_dir(namespace) / "manifest.json"
    if not path.exists():
        return None
    manifest = json.loads(path.read_text())
    if manifest.get("format_version") != MANIFEST_VERSION:
        raise ValueError(
            f"{path} has format_version {manifest.get('format_version')!r}; this code reads "
            f"{MANIFEST_VERSION}. Delete the folder to retrain."
        )
    return manifest


def tier_policy(
    manifest: dict[str, Any],
    tier: str,
    *,
    num_episodes: int = 1,
    seed: int = 0,
    deterministic: bool | None = None,
) -> Any:
    """The policy object of a tier, loaded from the files the manifest names."""
    from benchmarks.behaviour_policy import BehaviourPolicy, SnapshotSequencePolicy
    from wrappers import RandomPolicy, make_env

    _check_tiers([tier])
    env = make_env(manifest["env_id"], **manifest.get("env_kwargs", {}))
    root = _datasets_root()
    if tier == "random":
        return RandomPolicy(env, seed=seed)
    info = manifest["tiers"][tier]
    if tier == "medium-replay":
        pols = [
            BehaviourPolicy.load(
                root / p, env=env, seed=seed + k, deterministic=deterministic
            )
            for k, p in enumerate(info["paths"])
        ]
        return SnapshotSequencePolicy(
            pols,
            num_episodes,
            name=f"ppo-snapshots-0-{len(pols) - 1}",
            weights=info.get("weights"),
        )
    return BehaviourPolicy.load(
        root / info["path"], env=env, seed=seed, deterministic=deterministic
    )


def load_behaviour_policy(
    dataset: Any, *, seed: int = 0, deterministic: bool | None = None
) -> Any:
    """Reload the policy that recorded a behaviour dataset (a ``MinariDataset`` or an id).

    ``medium-replay`` gives a :class:`~benchmarks.behaviour_policy.SnapshotSequencePolicy`
    cycling through the snapshots over the dataset's episode count; ``random`` a
    :class:`wrappers.RandomPolicy`.
    """
    import minari

    ds = minari.load_dataset(dataset) if isinstance(dataset, str) else dataset
    ma = ds.storage.metadata.get("multiagent") or {}
    build = ma.get("behaviour_build")
    if not isinstance(build, dict) or "tier" not in build:
        raise ValueError(
            f"Dataset {ds.spec.dataset_id!r} was not made by benchmarks.behaviour (no "
            "'behaviour_build' entry in its multiagent metadata)."
        )
    manifest = read_manifest(build["namespace"])
    if manifest is None:
        raise FileNotFoundError(
            f"Dataset {ds.spec.dataset_id!r}: its behaviour policies are gone from "
            f"{policies_dir(build['namespace'])}."
        )
    return tier_policy(
        manifest,
        build["tier"],
        num_episodes=ds.total_episodes,
        seed=seed,
        deterministic=deterministic,
    )


# ---------------------------------------------------------------------------------------
# Building datasets
# ---------------------------------------------------------------------------------------


def build_datasets(
    env_id: str = DEFAULT_ENV_ID,
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    tiers: Sequence[str] = TIERS,
    config: DatasetConfig | None = None,
    seed: int = 0,
    namespace: str | None = None,
    info_keys: Sequence[str] | None = None,
    show_progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Make the missing behaviour datasets of an env; return ``{tier: MinariDataset}``.

    Existing datasets are skipped (and never touched). Policies and reference scores saved
    by an earlier build of the namespace (``policies/manifest.json``) are reused, so tiers
    recorded at different times share the same reference scores; otherwise PPO is trained.

    Args:
        env_id, env_kwargs: the env (any :func:`wrappers.make_env` id).
        tiers: subset of ``("expert", "medium", "poor", "random", "medium-replay")``.
        config: episodes per tier, PPO settings, tier targets (:class:`DatasetConfig`;
            default ``DatasetConfig.for_env(env_id)``).
        namespace: Minari namespace to use instead of :func:`dataset_namespace`'s.
        info_keys: per-agent info keys to record (default: SMAX/SMACv2's
            ``battle_won``, ``dead_allies``, ``dead_enemies``; none for other envs).
        log: called with one-line progress messages (e.g. ``print``).
    """
    import minari

    from benchmarks.behaviour_policy import torch_threads
    from wrappers import record_dataset

    config = config or DatasetConfig.for_env(env_id)
    env_kwargs = dict(env_kwargs or {})
    tiers = _check_tiers(tiers)
    ns = namespace or dataset_namespace(env_id, env_kwargs)
    ids = dataset_ids(env_id, env_kwargs, tiers, namespace=ns)
    log = log or (lambda msg: None)
    out: dict[str, Any] = {}
    missing = []
    for tier in tiers:
        if _dataset_exists(ids[tier]):
            log(f"{ids[tier]} exists, skipping")
            out[tier] = minari.load_dataset(ids[tier])
        else:
            missing.append(tier)
    if not missing:
        return out
    manifest = read_manifest(ns)
    if manifest is not None:
        if manifest["env_id"] != env_id or manifest.get("env_kwargs", {}) != env_kwargs:
            raise ValueError(
                f"{policies_dir(ns)} holds policies for {manifest['env_id']} "
                f"{manifest.get('env_kwargs')}, not {env_id} {env_kwargs}; pick another namespace."
            )
        if (
            manifest["config"]["ppo"] != config.ppo.to_dict()
            or manifest["seed"] != seed
        ):
            log(
                f"reusing the behaviour policies in {policies_dir(ns)} (trained with other "
                "settings; delete that folder to retrain)"
            )
        else:
            log(f"reusing the behaviour policies in {policies_dir(ns)}")
    else:
        manifest = train_behaviour_policies(
            env_id,
            env_kwargs,
            config,
            namespace=ns,
            seed=seed,
            show_progress=show_progress,
            log=log,
        )
    if info_keys is None:
        info_keys = _default_info_keys(env_id)
    for tier in missing:
        t = time.perf_counter()
        policy = tier_policy(
            manifest,
            tier,
            num_episodes=config.episodes,
            seed=seed + TIERS.index(tier),
            deterministic=config.deterministic,
        )
        info = manifest["tiers"][tier]
        build = {
            "tier": tier,
            "namespace": ns,
            "manifest": (policies_dir(ns) / "manifest.json")
            .relative_to(_datasets_root())
            .as_posix(),
            "seed": manifest["seed"],
            "algorithm": manifest["algorithm"],
            "train_timesteps": manifest["timesteps"],
            "deterministic": config.deterministic,
            **{k2: v for k2, v in info.items() if k2 not in ("path", "paths")},
        }
        extra = {"behaviour_build": build, "tier": tier}
        if "path" in info:
            extra["behaviour_policy_path"] = info["path"]
        if "paths" in info:
            extra["behaviour_policy_paths"] = info["paths"]
        with torch_threads(1):
            ds = record_dataset(
                env_id,
                policy,
                config.episodes,
                ids[tier],
                env_kwargs=env_kwargs,
                seed=seed + _TIER_SEED[tier],
                ref_min_score=manifest["ref_min_score"],
                ref_max_score=manifest["ref_max_score"],
                behaviour_policy=getattr(policy, "name", tier),
                description=(
                    f"{config.episodes} episodes of the '{tier}' behaviour policy "
                    f"({getattr(policy, 'name', tier)}) on {env_id} {env_kwargs or ''}; see "
                    "docs/datasets.md."
                ),
                extra_metadata=extra,
                info_keys=info_keys,
                show_progress=show_progress,
            )
        log(
            f"recorded {ids[tier]} ({config.episodes} episodes) in {time.perf_counter() - t:.1f} s"
        )
        out[tier] = ds
    return {tier: out[tier] for tier in tiers}


# ---------------------------------------------------------------------------------------
# Summaries
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TierSummary:
    """One row of the summary table."""

    tier: str
    dataset_id: str
    episodes: int
    steps: int
    mean_return: float
    std_return: float
    normalized: float | None


def summarize(datasets: Mapping[str, Any] | Iterable[Any]) -> list[TierSummary]:
    """Rows (tier, episodes, steps, mean team return, normalized score) for datasets.

    ``datasets`` is ``{tier: MinariDataset}`` (what :func:`build_datasets` returns) or an
    iterable of datasets or ids.
    """
    import minari
    import numpy as np

    items = (
        list(datasets.items())
        if isinstance(datasets, Mapping)
        else [(None, d) for d in datasets]
    )
    rows = []
    for tier, ds in items:
        ds = minari.load_dataset(ds) if isinstance(ds, str) else ds
        meta = ds.storage.metadata
        ma = meta.get("multiagent") or {}
        tier = tier or ma.get("tier") or ds.spec.dataset_id
        returns = np.array([float(np.sum(ep.rewards)) for ep in ds.iterate_episodes()])
        lo, hi = meta.get("ref_min_score"), meta.get("ref_max_score")
        mean = float(returns.mean()) if returns.size else math.nan
        norm = None
        if lo is not None and hi is not None and hi != lo:
            norm = 100.0 * (mean - float(lo)) / (float(hi) - float(lo))
        rows.append(
            TierSummary(
                tier=str(tier),
                dataset_id=ds.spec.dataset_id,
                episodes=int(ds.total_episodes),
                steps=int(ds.total_steps),
                mean_return=mean,
                std_return=float(returns.std()) if returns.size else math.nan,
                normalized=norm,
            )
        )
    return rows


def format_summary(rows: Sequence[TierSummary]) -> str:
    """A Markdown table of :func:`summarize` rows."""
    lines = [
        "| tier | dataset | episodes | steps | mean return (± std) | normalized score |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        norm = "n/a" if r.normalized is None else f"{r.normalized:.1f}"
        lines.append(
            f"| {r.tier} | {r.dataset_id} | {r.episodes} | {r.steps} | "
            f"{r.mean_return:.2f} ± {r.std_return:.2f} | {norm} |"
        )
    return "\n".join(lines)


def local_behaviour_datasets(
    env_id: str | None = None, env_kwargs: Mapping[str, Any] | None = None
) -> list[str]:
    """Ids of the local behaviour datasets (of one env when ``env_id`` is given)."""
    import minari

    if env_id is not None:
        return [
            i for i in dataset_ids(env_id, env_kwargs).values() if _dataset_exists(i)
        ]
    found = []
    for did, meta in minari.list_local_datasets().items():
        ma = meta.get("multiagent") if isinstance(meta, dict) else None
        if isinstance(ma, dict) and isinstance(ma.get("behaviour_build"), dict):
            found.append(did)
    return sorted(found)


# ---------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    make = sub.add_parser("make", help="build the missing behaviour datasets of an env")
    make.add_argument(
        "--env", default=DEFAULT_ENV_ID, help=f"env id (default {DEFAULT_ENV_ID})"
    )
    make.add_argument(
        "--env-kwargs", default="{}", help="JSON env kwargs, e.g. '{\"N\": 2}'"
    )
    make.add_argument("--tiers", nargs="+", default=list(TIERS), choices=list(TIERS))
    make.add_argument(
        "--episodes",
        type=int,
        default=DatasetConfig().episodes,
        help="episodes per tier",
    )
    make.add_argument(
        "--timesteps",
        type=int,
        default=None,
        help=f"PPO agent-steps (default {PPOConfig().total_timesteps}; "
        f"{DatasetConfig.for_env('smax/').ppo.total_timesteps} for SMAX/SMACv2)",
    )
    make.add_argument("--seed", type=int, default=0)
    make.add_argument(
        "--namespace", default=None, help="Minari namespace (default: from the env id)"
    )
    make.add_argument(
        "--deterministic",
        action="store_true",
        help="record the policies' most likely actions",
    )
    make.add_argument("--no-progress", action="store_true")
    subs = sub.add_parser(
        "subset", help="write N episodes of a dataset as a new dataset (data-scarce studies)"
    )
    subs.add_argument("source", help="source dataset id")
    subs.add_argument("--episodes", type=int, required=True, help="episodes to keep")
    subs.add_argument("--new-id", required=True, help="id of the new dataset")
    subs.add_argument(
        "--seed", type=int, default=0, help="seed of the random draw (default 0)"
    )
    subs.add_argument(
        "--first", action="store_true", help="keep the first N episodes instead of a draw"
    )
    subs.add_argument("--no-progress", action="store_true")
    summ = sub.add_parser("summary", help="summarize existing behaviour datasets")
    summ.add_argument("--env", default=None, help="only this env's datasets")
    summ.add_argument("--env-kwargs", default="{}")


def run(args: argparse.Namespace) -> int:
    if args.action == "summary":
        env_kwargs = json_object(args.env_kwargs, "--env-kwargs")
        ids = local_behaviour_datasets(args.env, env_kwargs)
        if not ids:
            print(f"No behaviour datasets found under {_datasets_root()}.")
            return 1
        print(format_summary(summarize(ids)))
        return 0
    if args.action == "subset":
        from wrappers.minari_io import subset_dataset

        try:
            ds = subset_dataset(
                args.source, args.episodes, args.new_id,
                seed=None if args.first else args.seed, show_progress=not args.no_progress,
            )
        except (ValueError, FileExistsError, FileNotFoundError, OSError) as exc:
            raise SystemExit(f"datasets subset: {exc}") from None
        print(format_summary(summarize([ds.spec.dataset_id])))
        return 0
    env_kwargs = json_object(args.env_kwargs, "--env-kwargs")
    ppo = {} if args.timesteps is None else {"total_timesteps": args.timesteps}
    config = DatasetConfig.for_env(
        args.env, episodes=args.episodes, ppo=ppo, deterministic=args.deterministic
    )
    start = time.perf_counter()
    datasets = build_datasets(
        args.env,
        env_kwargs=env_kwargs,
        tiers=args.tiers,
        config=config,
        seed=args.seed,
        namespace=args.namespace,
        show_progress=not args.no_progress,
        log=print,
    )
    print(format_summary(summarize(datasets)))
    print(
        f"datasets root: {_datasets_root()}; wall-clock {time.perf_counter() - start:.1f} s"
    )
    return 0


__all__ = [
    "DEFAULT_ENV_ID",
    "TIERS",
    "DatasetConfig",
    "PPOConfig",
    "TierSummary",
    "build_datasets",
    "canonical_env_kwargs",
    "dataset_ids",
    "dataset_namespace",
    "format_summary",
    "load_behaviour_policy",
    "local_behaviour_datasets",
    "policies_dir",
    "read_manifest",
    "summarize",
    "tier_policy",
    "train_behaviour_policies",
]
