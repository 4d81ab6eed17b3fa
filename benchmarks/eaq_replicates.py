"""How many fits, how many training seeds? The noise of a pooled augmentation gain.

    python -m benchmarks.eaq_replicates RESULTS_DIR --source DATASET --replicates PATTERN
        [--entry iql_cql] [--versus PATTERN] [--coverage 200] [--out FILE.json]

Reads ``RESULTS_DIR/runs.jsonl`` (a ``diffusion-agents bench`` grid that lists a source
dataset and several replicate augmentations of it, e.g. EAQ fits with other transform
seeds), builds the ``(fits, seeds, episodes)`` paired differences that the leaderboard's
"Replicate augmentations pooled" row summarizes, and prints:

- the pooled mean with its bootstrap interval (``stats.pooled_paired_difference``);
- the variance components (``stats.replicate_variance_components``) as standard deviations
  in the score's unit: how much one fit differs from another for every learner, one
  learner run's own luck, what an evaluation episode shares across fits;
- the standard error of the pooled mean and its share per component, for this design and
  for twice the fits, the training seeds or the evaluation episodes: which narrows the
  interval (1.96 standard errors is the normal-theory half-width; the bootstrap's is wider);
- with ``--versus PATTERN``: a second setting's replicates of the same source (e.g. λ = 0
  against λ = 0.3), and the difference of the two pooled means with an interval that
  resamples the shared training seeds, then each setting's fits, then episodes
  (``stats.pooled_group_difference``);
- with ``--coverage N``: how often the bootstrap's 95 % interval covers the true mean in
  ``N`` simulated designs of the same size drawn from normal effects with the measured
  components (a check that the interval is neither too narrow nor needlessly wide).

``PATTERN`` is an ``fnmatch`` pattern on the dataset id's last part (``poor-eaqsl03d128s*``).
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import stats
from benchmarks.cli import script_main
from benchmarks.report import paired_seed_diffs, read_runs, runs_by_dataset


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results_dir", help="a bench results folder holding runs.jsonl")
    p.add_argument("--source", required=True, help="the source dataset id (or its last part)")
    p.add_argument("--replicates", required=True,
                   help="fnmatch pattern on the replicates' last id part, e.g. 'poor-eaqsl03d128s*'")
    p.add_argument("--entry", default="iql_cql", help="the learner (default iql_cql)")
    p.add_argument("--versus", default=None,
                   help="fnmatch pattern of a second setting's replicates of the same source: "
                        "also print the pooled difference between the two settings")
    p.add_argument("--coverage", type=int, default=0,
                   help="simulated designs for the interval's coverage (default 0: skip)")
    p.add_argument("--out", default=None, help="also write the report as JSON")


def _last(dataset_id: str) -> str:
    return dataset_id.split("/")[-1]


def replicate_diffs(
    runs: list[dict[str, Any]], source: str, pattern: str, entry: str
) -> tuple[np.ndarray, list[str], list[int]]:
    """``(fits, seeds, episodes)`` normalized-score differences replicate − source, over the
    seeds every replicate shares with the source on the same evaluation episodes; with the
    replicates' ids and the seeds. The grid must train ``entry`` on the source in one task."""
    by_key = runs_by_dataset(runs)
    tasks = sorted(t for (t, d, e) in by_key if e == entry and _last(d) == _last(source))
    if len(tasks) != 1:
        raise ValueError(
            f"need {entry} runs on the source {source!r} in exactly one task of these results, "
            f"found {tasks}"
        )
    by = {_last(d): seeds for (t, d, e), seeds in by_key.items() if t == tasks[0] and e == entry}
    src = by[_last(source)]
    reps = sorted(d for d in by if d != _last(source) and fnmatch.fnmatch(d, pattern))
    if len(reps) < 2:
        raise ValueError(f"need >= 2 replicates matching {pattern!r} with {entry} runs, found {reps}")
    unnormalized = [
        d for d in [_last(source), *reps] if any(r.get("normalized") is None for r in by[d].values())
    ]
    if unnormalized:
        raise ValueError(f"no normalized scores (the dataset has no reference scores): {unnormalized}")
    diffs, seeds = paired_seed_diffs(src, [by[d] for d in reps], "normalized")
    if len(seeds) < 2:
        raise ValueError(f"the replicates share fewer than 2 paired seeds with {source!r}")
    return diffs, reps, seeds


def coverage(components: dict[str, float], shape: tuple[int, int, int], sims: int,
             seed: int = 0, reps: int = 1000) -> float:
    """Share of ``sims`` simulated designs whose pooled bootstrap interval covers 0, the
    true mean of data drawn from zero-mean normal effects with these variances."""
    rng = np.random.default_rng(seed)
    n_f, n_s, n_e = shape
    sd = {k: np.sqrt(v) for k, v in components.items()}
    hits = 0
    for i in range(sims):
        x = (rng.normal(0, sd["fit"], (n_f, 1, 1)) + rng.normal(0, sd["seed"], (1, n_s, 1))
             + rng.normal(0, sd["fit_x_seed"], (n_f, n_s, 1))
             + rng.normal(0, sd["episode"], (1, n_s, n_e)) + rng.normal(0, sd["residual"], shape))
        est = stats.pooled_paired_difference(x, reps=reps, seed=i)
        hits += est.low <= 0.0 <= est.high
    return hits / sims


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except ValueError as exc:  # too few replicates or shared seeds: say so, no traceback
        raise SystemExit(f"eaq_replicates: {exc}") from None


def _run(args: argparse.Namespace) -> int:
    runs = read_runs(args.results_dir)
    diffs, reps, seeds = replicate_diffs(runs, args.source, args.replicates, args.entry)
    n_f, n_s, n_e = diffs.shape
    est = stats.pooled_paired_difference(diffs)
    comp = stats.replicate_variance_components(diffs)
    print(f"{args.entry}: {n_f} replicates ({', '.join(reps)}) - {_last(args.source)}; "
          f"{n_s} seeds × {n_e} episodes")
    print(f"pooled mean {est.fmt(2)} (normalized points)\n")
    print("| component | standard deviation |")
    print("| --- | ---: |")
    for k in stats.COMPONENTS:
        print(f"| {k} | {np.sqrt(comp[k]):.2f} |")
    designs = [(n_f, n_s, n_e), (2 * n_f, n_s, n_e), (n_f, 2 * n_s, n_e), (n_f, n_s, 2 * n_e)]
    print("\n| fits | seeds | episodes | standard error | ≈ 95 % half-width | "
          + " | ".join(f"share {k}" for k in stats.COMPONENTS) + " |")
    print("| ---: | ---: | ---: | ---: | ---: |" + " ---: |" * len(stats.COMPONENTS))
    projections = []
    for f, s, e in designs:
        se = stats.pooled_standard_error(comp, f, s, e)
        projections.append({"fits": f, "seeds": s, "episodes": e, **se})
        shares = " | ".join(f"{se[k]:.0%}" for k in stats.COMPONENTS)
        print(f"| {f} | {s} | {e} | {se['total']:.2f} | {1.96 * se['total']:.2f} | {shares} |")
    report: dict[str, Any] = {
        "entry": args.entry, "source": args.source, "replicates": reps, "seeds": seeds,
        "episodes": n_e, "pooled": est.to_dict(), "per_fit": diffs.mean(axis=(1, 2)).tolist(),
        "components": comp, "projections": projections,
    }
    if args.versus:
        other, other_reps, other_seeds = replicate_diffs(runs, args.source, args.versus, args.entry)
        common = sorted(set(seeds) & set(other_seeds))
        if len(common) < 2:
            raise ValueError(f"{args.replicates!r} and {args.versus!r} share fewer than 2 paired seeds")
        a = diffs[:, [seeds.index(s) for s in common]]
        b = other[:, [other_seeds.index(s) for s in common]]
        vs, alone = stats.pooled_group_difference(a, b), stats.pooled_paired_difference(b)
        report["versus"] = {
            "replicates": other_reps, "seeds": common, "pooled": alone.to_dict(),
            "difference": vs.to_dict(),
        }
        print(f"\n{args.replicates} ({n_f} fits) − {args.versus} ({len(other_reps)} fits), "
              f"{len(common)} shared seeds: {vs.fmt(2)} (normalized points; the second pooled "
              f"alone {alone.fmt(2)})")
    if args.coverage:
        cov = coverage(comp, diffs.shape, args.coverage)
        report["coverage"] = {"sims": args.coverage, "share": cov}
        print(f"\nsimulated coverage of the 95 % interval: {cov:.1%} of {args.coverage} designs")
    if args.out:
        from benchmarks.harness import write_json_atomic

        write_json_atomic(Path(args.out), report)
    return 0


def main(argv: list[str] | None = None) -> int:
    return script_main(__name__, __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
