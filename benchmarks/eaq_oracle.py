"""Oracle augmentations: what a perfect episode generator would add to a behaviour dataset.

    python -m benchmarks.eaq_oracle mpe2/simple_spread/medium-v0 [--fresh 2500] \\
        [--ratio 1.0] [--top 0.5 0.2] [--best-of 5] [--seed 0] [--no-progress]

EAQ adds generated episodes to a dataset. A perfect unguided generator (λ = 0) would draw
new episodes from the behaviour's own episode distribution; a perfect Q-total-guided one
would draw them from its high-return part, still with the task's true dynamics. For the
datasets :mod:`benchmarks.behaviour` records, both can be had exactly, because the policy
that recorded each tier is saved: this records ``--fresh`` new episodes of the tier's policy
(env seeds ``90,000,000 + i``, which no tier and no harness evaluation uses) and writes

- ``<name>-fresh-vN``: the fresh episodes alone (kept, so the oracles can be rebuilt);
- ``<name>-oracle-more-vN``: the source + ``ratio × source episodes`` fresh ones, the first
  ones in seed order (the ideal λ = 0 generator);
- ``<name>-oracle-top{P}-vN`` per ``--top q``: the source + the ``ratio × source episodes``
  fresh episodes of highest team return among the first ``ratio × source episodes / q``
  (``P = 100 q``; q = 0.5 keeps the better half: an ideal guided generator);
- ``<name>-oracle-best{k}-vN`` per ``--best-of k``: for each of the first
  ``ratio × source episodes`` starts, the best of ``k`` rollouts of the policy from that same
  start (the extra rollouts recorded as ``<name>-fresh-s{S}-vN``): better behaviour without
  the lucky starts that ``top`` also selects.

Each oracle copies the source's metadata and adds ``multiagent.oracle`` (``source_dataset_id``,
``fresh_dataset_ids``, ``kind``, ``quantile`` or ``k``, ``picks``: ``[fresh set, episode]``
per added episode, ``mean_return_added``), so
the leaderboard's "Derived datasets" table pairs it with its source. Train the same learners
on the source and its oracles (``benchmarks/configs/eaq_oracle.toml``) to read how much any
augmentation of this kind could gain: the ceiling against which EAQ's results are read
(docs/eaq.md, "Oracle augmentations"). Existing datasets are reused, never rewritten.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from benchmarks.cli import script_main

FRESH_SEED_BASE = 90_000_000  # env seed of fresh episode i: base + i


def _with_suffix(dataset_id: str, suffix: str) -> str:
    from wrappers.minari_io import derived_dataset_id

    return derived_dataset_id(dataset_id, suffix)


def oracle_ids(
    source_id: str, tops: tuple[float, ...] = (0.5,), best_ofs: tuple[int, ...] = ()
) -> dict[str, str]:
    """Ids written for ``source_id``: ``{"fresh", "more", "top50", "best5", ...}`` -> id."""
    out = {"fresh": _with_suffix(source_id, "-fresh"), "more": _with_suffix(source_id, "-oracle-more")}
    keys = [f"top{round(100 * q)}" for q in tops] + [f"best{int(k)}" for k in best_ofs]
    for key in keys:
        out[key] = _with_suffix(source_id, f"-oracle-{key}")
    return out


def record_fresh(source: Any, num_episodes: int, fresh_id: str, *, seed: int = 0,
                 show_progress: bool = True) -> Any:
    """Record ``num_episodes`` new episodes of the policy that recorded ``source``."""
    import minari
    from minari.storage.datasets_root_dir import get_dataset_path

    from benchmarks.behaviour import load_behaviour_policy
    from benchmarks.behaviour_policy import torch_threads
    from wrappers import record_dataset

    meta = source.storage.metadata
    ma = meta.get("multiagent") or {}
    build = ma.get("behaviour_build") or {}
    if get_dataset_path(fresh_id).exists():
        ds = minari.load_dataset(fresh_id)
        got = (ds.storage.metadata.get("multiagent") or {}).get("fresh") or {}
        if got.get("source_dataset_id") != source.spec.dataset_id:
            raise ValueError(f"{fresh_id} exists but was not recorded from {source.spec.dataset_id}.")
        if got.get("policy_seed") != FRESH_SEED_BASE + seed:
            raise ValueError(
                f"{fresh_id} was recorded with policy seed {got.get('policy_seed')}, not "
                f"{FRESH_SEED_BASE + seed} (--seed {seed}); delete it to record it again."
            )
        if ds.total_episodes < num_episodes:
            raise ValueError(
                f"{fresh_id} holds {ds.total_episodes} episodes, fewer than the {num_episodes} "
                "asked for; delete it (minari.delete_dataset) to record it again."
            )
        return ds
    policy = load_behaviour_policy(source, seed=FRESH_SEED_BASE + seed,
                                   deterministic=build.get("deterministic"))
    extra = {k: ma[k] for k in ("behaviour_build", "tier", "behaviour_policy_path") if k in ma}
    extra["fresh"] = {"source_dataset_id": source.spec.dataset_id,
                      "env_seed_base": FRESH_SEED_BASE, "policy_seed": FRESH_SEED_BASE + seed}
    with torch_threads(1):
        return record_dataset(
            ma["env_id"], policy, num_episodes, fresh_id,
            env_kwargs=ma.get("env_kwargs") or {},
            seed=FRESH_SEED_BASE,
            ref_min_score=meta.get("ref_min_score"),
            ref_max_score=meta.get("ref_max_score"),
            behaviour_policy=ma.get("behaviour_policy"),
            info_keys=ma.get("info_keys") or (),
            description=(f"{num_episodes} new episodes of the policy that recorded "
                         f"{source.spec.dataset_id} (env seeds {FRESH_SEED_BASE} + i); "
                         "benchmarks.eaq_oracle."),
            extra_metadata=extra,
            show_progress=show_progress,
        )


def pick(returns: Any, n_add: int, quantile: float | None) -> list[int]:
    """Indices of the fresh episodes an oracle adds, in ascending order.

    ``quantile=None``: the first ``n_add``. Otherwise the ``n_add`` of highest return among
    the first ``ceil(n_add / quantile)`` (ties: the earlier episode).
    """
    import numpy as np

    returns = np.asarray(returns, dtype=np.float64)
    if quantile is None:
        pool = n_add
    else:
        if not 0.0 < quantile <= 1.0:
            raise ValueError(f"quantile must be in (0, 1], got {quantile}.")
        pool = math.ceil(n_add / quantile - 1e-9)
    if pool > len(returns):
        raise ValueError(f"needs {pool} fresh episodes, {len(returns)} recorded; raise --fresh.")
    if quantile is None:
        return list(range(n_add))
    order = np.argsort(-returns[:pool], kind="stable")[:n_add]
    return sorted(int(i) for i in order)


def best_of(returns: Any, n_add: int) -> list[int]:
    """Per start ``i < n_add``, which of ``k`` rollouts (rows of ``returns``, ``(k, >= n_add)``)
    scored the highest team return (ties: the lowest row)."""
    import numpy as np

    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 2 or r.shape[1] < n_add:
        raise ValueError(f"best_of needs (k, >= {n_add}) returns, got shape {r.shape}.")
    return [int(j) for j in np.argmax(r[:, :n_add], axis=0)]


def build_oracles(
    source_id: str,
    *,
    fresh: int = 2500,
    ratio: float = 1.0,
    tops: tuple[float, ...] = (0.5, 0.2),
    best_ofs: tuple[int, ...] = (),
    seed: int = 0,
    show_progress: bool = True,
    log=print,
) -> dict[str, Any]:
    """Record the fresh episodes and write the oracle datasets of ``source_id``.

    ``best_ofs``: for each ``k``, an oracle whose added episode ``i`` is the best of ``k``
    rollouts of the behaviour policy from the same start (env seed ``90,000,000 + i``; policy
    seeds ``seed .. seed + k - 1``, the extra ones recorded as ``<name>-fresh-s{S}-vN``):
    better behaviour at the natural start distribution, where ``top{P}`` also picks lucky
    starts.

    Returns ``{key: summary}`` for ``fresh``, ``more``, each ``top{P}`` and ``best{k}``:
    dataset id, episodes, mean team return of the episodes added (and of the source, under
    ``source``).
    """
    import minari
    import numpy as np
    from minari.storage.datasets_root_dir import get_dataset_path

    from wrappers.minari_io import (
        META_KEY,
        derived_metadata,
        episode_buffers,
        write_dataset,
    )

    source = minari.load_dataset(source_id)
    meta = source.storage.metadata
    if not (meta.get(META_KEY) or {}).get("behaviour_build"):
        raise ValueError(
            f"{source_id} was not recorded by benchmarks.behaviour (no multiagent.behaviour_build): "
            "its policy cannot be replayed."
        )
    if any(int(k) < 2 for k in best_ofs):
        raise ValueError(f"best-of oracles need k >= 2, got {list(best_ofs)}.")
    n_src = int(source.total_episodes)
    n_add = max(1, round(ratio * n_src))
    ids = oracle_ids(source_id, tops, best_ofs)
    # fresh[j]: episodes of policy seed seed + j from the same starts (j = 0: the main set)
    fresh_ds = [record_fresh(source, fresh, ids["fresh"], seed=seed, show_progress=show_progress)]
    for j in range(1, max(best_ofs, default=1)):
        fresh_ds.append(record_fresh(source, n_add, _with_suffix(source_id, f"-fresh-s{seed + j}"),
                                     seed=seed + j, show_progress=show_progress))
    fresh_returns = [np.array([float(np.sum(ep.rewards)) for ep in ds.iterate_episodes()])
                     for ds in fresh_ds]
    src_returns = np.array([float(np.sum(ep.rewards)) for ep in source.iterate_episodes()])
    out: dict[str, Any] = {
        "source": {"dataset_id": source_id, "episodes": n_src,
                   "mean_return": float(src_returns.mean())},
        "fresh": {"dataset_id": ids["fresh"], "episodes": int(fresh_ds[0].total_episodes),
                  "mean_return": float(fresh_returns[0].mean())},
    }
    plans: list[tuple[str, dict[str, Any], str]] = [
        ("more", {"kind": "more", "quantile": None}, "the first")
    ]
    for q in tops:
        plans.append((f"top{round(100 * q)}", {"kind": "top", "quantile": q},
                      f"the best {n_add} by team return of the first "
                      f"{math.ceil(n_add / q - 1e-9)}"))
    for k in best_ofs:
        plans.append((f"best{k}", {"kind": "best_of", "k": int(k)},
                      f"per start, the best of {k} rollouts' episodes (policy seeds "
                      f"{FRESH_SEED_BASE + seed}..{FRESH_SEED_BASE + seed + k - 1}), the first {n_add}"))
    for key, how, what in plans:
        did = ids[key]
        if get_dataset_path(did).exists():
            ds = minari.load_dataset(did)
            o = ds.storage.metadata[META_KEY]["oracle"]
            out[key] = {"dataset_id": did, "episodes": int(ds.total_episodes),
                        "mean_return_added": o["mean_return_added"], "reused": True}
            log(f"{did} exists, reused")
            continue
        if how["kind"] == "best_of":
            rows = best_of(np.stack([r[:n_add] for r in fresh_returns[: how["k"]]]), n_add)
            picks = [(j, i) for i, j in enumerate(rows)]
        else:
            picks = [(0, i) for i in pick(fresh_returns[0], n_add, how["quantile"])]
        added = float(np.mean([fresh_returns[j][i] for j, i in picks]))
        used = sorted({j for j, _ in picks})
        metadata = derived_metadata(
            meta, "oracle",
            {
                "source_dataset_id": source_id,
                **how,
                "fresh_dataset_ids": [d.spec.dataset_id for d in fresh_ds],
                "picks": [[j, i] for j, i in picks],  # [fresh dataset, episode] per added episode
                "mean_return_added": added,
            },
            f"{source_id} ({n_src} episodes) + {what} new episodes of its behaviour policy; "
            "benchmarks.eaq_oracle.",
        )

        def episodes(picks=picks):
            yield from episode_buffers(source)
            for j, i in picks:
                yield from episode_buffers(fresh_ds[j], [int(fresh_ds[j].episode_indices[i])])

        write_dataset(did, episodes(), observation_space=source.observation_space,
                      action_space=source.action_space, metadata=metadata,
                      env_spec=source.env_spec, num_episodes=n_src + len(picks),
                      show_progress=show_progress)
        out[key] = {"dataset_id": did, "episodes": n_src + len(picks), "mean_return_added": added}
        log(f"wrote {did}: {n_src} + {len(picks)} episodes from {len(used)} fresh set(s), "
            f"added mean return {added:.3f}")
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", help="a behaviour dataset id, e.g. mpe2/simple_spread/medium-v0")
    p.add_argument("--fresh", type=int, default=2500, help="new behaviour episodes to record")
    p.add_argument("--ratio", type=float, default=1.0, help="added episodes per source episode")
    p.add_argument("--top", type=float, nargs="*", default=[0.5, 0.2],
                   help="quantiles of the guided oracles (0.5: the better half)")
    p.add_argument("--best-of", type=int, nargs="*", default=[],
                   help="k of the best-of-k oracles (each start's best of k rollouts)")
    p.add_argument("--seed", type=int, default=0, help="behaviour policy's sampling seed")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    if args.fresh < 1 or args.ratio <= 0:
        raise SystemExit("--fresh must be >= 1 and --ratio > 0.")
    try:
        out = build_oracles(args.dataset, fresh=args.fresh, ratio=args.ratio,
                            tops=tuple(args.top), best_ofs=tuple(args.best_of),
                            seed=args.seed,
                            show_progress=not args.no_progress)
    except (ValueError, FileNotFoundError) as exc:
        raise SystemExit(f"eaq_oracle: {exc}") from None
    src = out["source"]
    print(f"\nOracle augmentations of {args.dataset} ({src['episodes']} episodes, mean team "
          f"return {src['mean_return']:.3f}); fresh episodes: {out['fresh']['episodes']}, "
          f"mean {out['fresh']['mean_return']:.3f}\n")
    print("| oracle | dataset | episodes | mean return of the added episodes |")
    print("| --- | --- | ---: | ---: |")
    for key, row in out.items():
        if key in ("source", "fresh"):
            continue
        print(f"| {key} | {row['dataset_id']} | {row['episodes']} | {row['mean_return_added']:.3f} |")
    print("\ncommand: python -m benchmarks.eaq_oracle " + " ".join(sys.argv[1:]))
    return 0


def main(argv: list[str] | None = None) -> int:
    return script_main("benchmarks.eaq_oracle", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
