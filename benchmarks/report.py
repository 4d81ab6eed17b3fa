"""Reports of a results folder: ``runs.jsonl``, ``results.json`` (marl-eval), ``leaderboard.md``
and plots, all rebuilt from the per-run result files (``runs/<key>.json``).

A *task* is an (env, dataset) pair; each algorithm entry (``"bc"``, ``"bc+eaq"``) has one
score per seed on it: the mean normalized return over its evaluation episodes
(``100 (R - ref_min) / (ref_max - ref_min)`` with the dataset's reference scores).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import stats
from benchmarks.harness import write_json_atomic, write_text_atomic
from wrappers.files import atomic_path

DATA_ROW = "(dataset)"


def load_results(runs_dir: Path, keys: list[str] | None = None) -> list[dict[str, Any]]:
    """Result records of ``runs_dir`` (only ``keys`` when given, in that order)."""
    runs_dir = Path(runs_dir)
    if keys is None:
        files = sorted(p for p in runs_dir.glob("*.json") if not p.name.startswith("."))
    else:
        files = [runs_dir / f"{k}.json" for k in keys]
    out = []
    for f in files:
        if f.exists():
            out.append(json.loads(f.read_text()))
    return out


def read_runs(results_dir: str | Path) -> list[dict[str, Any]]:
    """The result records of a results folder's ``runs.jsonl`` (as :func:`write_reports`
    writes it); FileNotFoundError naming the folder when it has none."""
    path = Path(results_dir) / "runs.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no runs.jsonl in {results_dir}")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def task_label(result: dict[str, Any]) -> str:
    run = result["run"]
    return f"{run['task']}:{run['dataset'].split('/')[-1]}"


def score_table(results: list[dict[str, Any]]) -> dict[str, dict[str, dict[int, float]]]:
    """``{task: {entry: {seed: score}}}``; the score is the mean normalized return (or the
    raw mean return when the dataset has no reference scores)."""
    table: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in results:
        score = r["mean_normalized"] if r["mean_normalized"] is not None else r["mean_return"]
        table[task_label(r)][r["entry"]][int(r["run"]["seed"])] = float(score)
    return table


def _matrix(table, entry: str, tasks: list[str], seeds: list[int]) -> np.ndarray | None:
    """``(seeds, tasks)`` scores of ``entry``; None unless every (seed, task) is present."""
    cols = []
    for t in tasks:
        per_seed = table.get(t, {}).get(entry, {})
        if any(s not in per_seed for s in seeds):
            return None
        cols.append([per_seed[s] for s in seeds])
    return np.array(cols, dtype=np.float64).T


def improvement_pairs(entries: list[str]) -> list[tuple[str, str]]:
    """The comparisons that matter: MADiff-D vs BC (greedy and sampled), and every
    ``X+transform`` vs ``X``."""
    pairs = []
    for bc in ("bc", "bc_sampled"):
        if "madiff_d" in entries and bc in entries:
            pairs.append(("madiff_d", bc))
    for e in entries:
        base, sep, _ = e.partition("+")
        if sep and base in entries:
            pairs.append((e, base))
    return pairs


def _flat_options(options: dict[str, Any], prefix: str = "") -> list[str]:
    """``{"config": {"n_steps": 2000}}`` -> ``["config.n_steps=2000"]``."""
    out = []
    for key, value in options.items():
        if isinstance(value, dict) and value:
            out += _flat_options(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={json.dumps(value, separators=(',', ':'))}")
    return out


def run_settings(results: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """``{entry: {task: "options"}}``: what the grid config set for each entry's algorithm
    (and transform, prefixed by its name); everything else ran at its defaults. A score is
    only readable next to these (the quick preset trains MADiff for 2,000 steps)."""
    out: dict[str, dict[str, str]] = {}
    for r in results:
        run = r["run"]
        parts = _flat_options(run.get("algorithm_options") or {})
        if run.get("transform"):
            parts += _flat_options(run.get("transform_options") or {}, f"{run['transform']}.")
        out.setdefault(r["entry"], {})[task_label(r)] = ", ".join(parts) or "defaults"
    return out


def summarize(
    results: list[dict[str, Any]], infos: dict[str, dict[str, Any]], *,
    reps: int = stats.DEFAULT_REPS, seed: int = 0,
) -> dict[str, Any]:
    """Per-task and aggregate estimates plus probabilities of improvement (JSON-able)."""
    table = score_table(results)
    tasks = sorted(table)
    entries: list[str] = []
    for r in results:
        if r["entry"] not in entries:
            entries.append(r["entry"])
    normalized_tasks = [
        t for t in tasks
        if all(r["mean_normalized"] is not None for r in results if task_label(r) == t)
    ]
    seeds = sorted({int(r["run"]["seed"]) for r in results})
    per_task: dict[str, dict[str, Any]] = {}
    for t in tasks:
        rows = {}
        for e in entries:
            per_seed = table[t].get(e)
            if not per_seed:
                continue
            vals = np.array([per_seed[s] for s in sorted(per_seed)])
            est = stats.per_task_estimates(vals, reps=reps, seed=seed)
            rs = [r for r in results if task_label(r) == t and r["entry"] == e]
            wins = [r["win_rate"] for r in rs if r["win_rate"] is not None]
            rows[e] = {
                "mean": est["mean"].to_dict(),
                "iqm": est["iqm"].to_dict(),
                "seeds": len(vals),
                "scores": vals.tolist(),
                "mean_return": float(np.mean([r["mean_return"] for r in rs])),
                "win_rate": float(np.mean(wins)) if wins else None,
                "train_seconds": float(np.mean([r["train_seconds"] for r in rs])),
            }
        per_task[t] = rows
    aggregate: dict[str, Any] = {}
    mats = {}
    if normalized_tasks and seeds:
        for e in entries:
            m = _matrix(table, e, normalized_tasks, seeds)
            if m is not None:
                mats[e] = m
        if mats:
            agg = stats.aggregate_estimates(mats, reps=reps, seed=seed)
            aggregate = {e: {k: v.to_dict() for k, v in d.items()} for e, d in agg.items()}
    poi = {}
    for x, y in improvement_pairs(entries):
        if x in mats and y in mats:
            est = stats.probability_of_improvement(mats[x], mats[y], reps=reps, seed=seed)
            poi[f"{x} > {y}"] = est.to_dict()
            continue
        # an entry run on only some tasks (e.g. learner+EAQ): compare on the tasks both have
        shared = [
            t for t in normalized_tasks
            if _matrix(table, x, [t], seeds) is not None
            and _matrix(table, y, [t], seeds) is not None
        ]
        if shared:
            mx, my = _matrix(table, x, shared, seeds), _matrix(table, y, shared, seeds)
            est = stats.probability_of_improvement(mx, my, reps=reps, seed=seed)
            poi[f"{x} > {y} (on {', '.join(shared)})"] = est.to_dict()
    paired = paired_differences(results, improvement_pairs(entries), reps=reps, seed=seed)
    derived = dataset_differences(results, infos, reps=reps, seed=seed)
    replicates = replicate_differences(results, infos, reps=reps, seed=seed)
    data_rows = {}
    for t in tasks:
        r0 = next(r for r in results if task_label(r) == t)
        info = infos.get(r0["run"]["dataset"]) or {}
        mr = info.get("mean_return")
        data_rows[t] = {
            "dataset": r0["run"]["dataset"],
            "mean_return": mr,
            "normalized": None if mr is None else _norm(mr, info),
            "ref_min_score": info.get("ref_min_score"),
            "ref_max_score": info.get("ref_max_score"),
            "num_episodes": info.get("num_episodes"),
        }
    return {
        "tasks": tasks,
        "normalized_tasks": normalized_tasks,
        "entries": entries,
        "seeds": seeds,
        "per_task": per_task,
        "aggregate": aggregate,
        "aggregate_tasks": normalized_tasks,
        "probability_of_improvement": poi,
        "paired_differences": paired,
        "dataset_differences": derived,
        "replicate_differences": replicates,
        "datasets": data_rows,
        "settings": run_settings(results),
        "bootstrap": {"reps": reps, "seed": seed, "ci": 0.95, "kind": "stratified percentile"},
    }


def paired_differences(
    results: list[dict[str, Any]], pairs: list[tuple[str, str]], *,
    reps: int = stats.DEFAULT_REPS, seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """``{"X - Y": {task: {...}}}``: the mean per-episode difference of two entries on the
    same evaluation episodes (:func:`benchmarks.stats.paired_difference`), for each task
    where both ran the same seeds on the same env seeds; ``relative`` is the difference
    over ``|mean of Y|`` (the "+17.3 %" kind of figure), None when Y's mean is near 0."""
    by_key: dict[tuple[str, str], dict[int, dict[str, Any]]] = defaultdict(dict)
    for r in results:
        by_key[(task_label(r), r["entry"])][int(r["run"]["seed"])] = r
    out: dict[str, dict[str, Any]] = {}
    for x, y in pairs:
        rows = {}
        for t in sorted({task_label(r) for r in results}):
            est = paired_estimate(by_key.get((t, x), {}), by_key.get((t, y), {}), reps=reps, seed=seed)
            if est is not None:
                rows[t] = est
        if rows:
            out[f"{x} - {y}"] = rows
    return out


def runs_by_dataset(
    results: list[dict[str, Any]],
) -> dict[tuple[str, str, str], dict[int, dict[str, Any]]]:
    """``{(task, dataset, entry): {seed: result}}``."""
    by_key: dict[tuple[str, str, str], dict[int, dict[str, Any]]] = defaultdict(dict)
    for r in results:
        run = r["run"]
        by_key[(run["task"], run["dataset"], r["entry"])][int(run["seed"])] = r
    return by_key


def dataset_differences(
    results: list[dict[str, Any]], infos: dict[str, dict[str, Any]], *,
    reps: int = stats.DEFAULT_REPS, seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """``{entry: {"<task>:<dataset> - <source>": {...}}}``: each entry trained on a derived
    dataset (one whose metadata names a ``source_dataset_id``, e.g. an EAQ augmentation)
    against the same entry trained on that source in the same grid task, paired over the
    same evaluation episodes as :func:`paired_differences`. This is how a grid that lists an
    original tier and its augmentations as ``datasets`` of one task reads "augmented −
    original" for every learner."""
    by_key = runs_by_dataset(results)
    out: dict[str, dict[str, Any]] = defaultdict(dict)
    for (task, dataset, entry), runs in sorted(by_key.items()):
        source = (infos.get(dataset) or {}).get("source_dataset_id")
        if not source or (task, source, entry) not in by_key:
            continue
        est = paired_estimate(runs, by_key[(task, source, entry)], reps=reps, seed=seed)
        if est is not None:
            label = f"{task}:{dataset.split('/')[-1]} - {source.split('/')[-1]}"
            out[entry][label] = est
    return dict(out)


def paired_seed_diffs(
    source: dict[int, dict[str, Any]], replicates: list[dict[int, dict[str, Any]]], field: str
) -> tuple[np.ndarray, list[int]]:
    """``(replicates, seeds, episodes)`` per-episode differences replicate − source in
    ``field`` (``"normalized"`` or ``"returns"``), over the seeds on which the source and
    every replicate (``{seed: result}`` each) ran the same evaluation episodes and report the
    field; with those seeds (ascending). The pairing rule of :func:`replicate_differences`."""
    seeds = sorted(
        s for s, run in source.items()
        if run.get("eval_seeds") and run.get(field) is not None and all(
            s in r and r[s].get("eval_seeds") == run["eval_seeds"] and r[s].get(field) is not None
            for r in replicates
        )
    )
    diffs = np.array([[np.subtract(r[s][field], source[s][field]) for s in seeds] for r in replicates])
    return diffs, seeds


def replicate_differences(
    results: list[dict[str, Any]], infos: dict[str, dict[str, Any]], *,
    reps: int = stats.DEFAULT_REPS, seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """``{entry: {"<task>:<d1> + <d2> + ... - <source>": {...}}}``: derived datasets made from
    one source by the same generator settings, differing only in the transform's seed (or
    the device it ran on; ``infos[d]["generator"]``), pooled: each against the source as in
    :func:`dataset_differences`, averaged over the replicates, with an interval that also
    resamples the replicates (:func:`benchmarks.stats.pooled_paired_difference`). One fit of
    a generator is one draw of the transform; this is the estimate over its seeds. Only
    groups of two or more replicates and the seeds every one of them shares with the source."""
    by_key = runs_by_dataset(results)
    groups: dict[tuple[str, str, str, str], list[str]] = defaultdict(list)
    for (task, dataset, entry) in sorted(by_key):
        info = infos.get(dataset) or {}
        source, gen = info.get("source_dataset_id"), info.get("generator")
        if source and gen and (task, source, entry) in by_key:
            groups[(task, source, entry, gen)].append(dataset)
    out: dict[str, dict[str, Any]] = defaultdict(dict)
    for (task, source, entry, _), datasets in groups.items():
        if len(datasets) < 2:
            continue
        src = by_key[(task, source, entry)]
        field = "normalized" if all(r.get("normalized") is not None for r in src.values()) else "returns"
        diffs, seeds = paired_seed_diffs(src, [by_key[(task, d, entry)] for d in datasets], field)
        if not seeds:
            continue
        est = stats.pooled_paired_difference(diffs, reps=reps, seed=seed)
        base = float(np.mean([np.mean(src[s][field]) for s in seeds]))
        label = f"{task}:{' + '.join(d.split('/')[-1] for d in datasets)} - {source.split('/')[-1]}"
        out[entry][label] = {
            **est.to_dict(),
            "unit": "normalized" if field == "normalized" else "return",
            "fits": len(datasets),
            "seeds": len(seeds),
            "episodes": int(diffs.shape[1] * diffs.shape[2]),  # per replicate
            "per_fit": diffs.mean(axis=(1, 2)).tolist(),
            "mean_y": base,
            "relative": est.value / abs(base) if abs(base) > 1e-6 else None,
        }
    return dict(out)


def paired_estimate(
    rx: dict[int, dict[str, Any]], ry: dict[int, dict[str, Any]], *, reps: int, seed: int
) -> dict[str, Any] | None:
    """The paired estimate of X − Y over the seeds both ran on the same evaluation episodes
    (``{seed: result}`` each); None when no seed pairs up."""
    seeds = sorted(set(rx) & set(ry))
    field = "normalized" if all(
        rx[s].get("normalized") is not None and ry[s].get("normalized") is not None
        for s in seeds
    ) else "returns"
    xs, ys = [], []
    for s in seeds:
        ex, ey = rx[s].get("eval_seeds"), ry[s].get("eval_seeds")
        if not ex or ex != ey or rx[s].get(field) is None or ry[s].get(field) is None:
            continue  # not the same episodes (or no per-episode scores): no pairing
        xs.append(np.asarray(rx[s][field], np.float64))
        ys.append(np.asarray(ry[s][field], np.float64))
    if not xs:
        return None
    est = stats.paired_difference(xs, ys, reps=reps, seed=seed)
    base = float(np.mean([v.mean() for v in ys]))
    return {
        **est.to_dict(),
        "unit": "normalized" if field == "normalized" else "return",
        "seeds": len(xs),
        "episodes": int(sum(v.size for v in xs)),
        "mean_y": base,
        "relative": est.value / abs(base) if abs(base) > 1e-6 else None,
    }


def _norm(value: float, info: dict[str, Any]) -> float | None:
    lo, hi = info.get("ref_min_score"), info.get("ref_max_score")
    if lo is None or hi is None or hi == lo:
        return None
    return 100.0 * (value - lo) / (hi - lo)


def _fmt(d: dict[str, float] | None, digits: int = 1) -> str:
    if not d:
        return "–"
    return f"{d['value']:.{digits}f} [{d['low']:.{digits}f}, {d['high']:.{digits}f}]"


def _diff_table(
    intro: str, head: tuple[str, str], rows: list[tuple[tuple[str, str], dict[str, Any]]]
) -> list[str]:
    """Markdown lines of a table of paired estimates (none when ``rows`` is empty): two
    label columns named by ``head``, then X − Y [CI], relative change, seeds × episodes."""
    if not rows:
        return []
    lines = [
        intro, "",
        f"| {head[0]} | {head[1]} | X − Y [95% CI] | relative | seeds × episodes |",
        "| --- | --- | --- | --- | --- |",
    ]
    for (a, b), d in rows:
        rel = "–" if d["relative"] is None else f"{100 * d['relative']:+.1f} %"
        lines.append(
            f"| {a} | {b} | {_fmt(d)} | {rel} | {d['seeds']} × "
            f"{d['episodes'] // max(d['seeds'], 1)} |"
        )
    return lines + [""]


def leaderboard_markdown(summary: dict[str, Any], *, title: str, footer: str = "") -> str:
    """The pasteable tables."""
    lines = [f"# Leaderboard: {title}", ""]
    agg = summary["aggregate"]
    if agg:
        lines += [
            f"Aggregate normalized score over {len(summary['aggregate_tasks'])} task(s) × "
            f"{len(summary['seeds'])} seed(s); 95 % stratified-bootstrap CIs.",
            "",
            "| algorithm | IQM [95% CI] | mean [95% CI] |",
            "| --- | --- | --- |",
        ]
        order = sorted(agg, key=lambda e: -agg[e]["iqm"]["value"])
        for e in order:
            lines.append(f"| {e} | {_fmt(agg[e]['iqm'])} | {_fmt(agg[e]['mean'])} |")
        lines.append("")
    if summary["probability_of_improvement"]:
        lines += ["| comparison | P(X > Y) [95% CI] |", "| --- | --- |"]
        for k, v in summary["probability_of_improvement"].items():
            lines.append(f"| {k} | {_fmt(v, 2)} |")
        lines.append("")
    paired = summary.get("paired_differences") or {}
    lines += _diff_table(
        "Paired differences: mean of X − Y over the same evaluation episodes (same env "
        "seeds), 95 % CI resampling seeds, then episodes within seeds; relative = "
        "difference / |mean of Y|.",
        ("comparison", "task"),
        [((k, t), d) for k, by_task in paired.items() for t, d in by_task.items()],
    )
    derived = summary.get("dataset_differences") or {}
    lines += _diff_table(
        "Derived datasets against their source (an augmentation's `source_dataset_id`): "
        "the same entry trained on each, paired over the same evaluation episodes as above.",
        ("algorithm", "task: dataset − source"),
        [((e, label), d) for e, by_pair in derived.items() for label, d in by_pair.items()],
    )
    pooled = summary.get("replicate_differences") or {}
    lines += _diff_table(
        "Replicate augmentations pooled (the same generator settings, other transform seeds): "
        "the mean of the rows above over the replicates; 95 % CI resampling training seeds, "
        "then replicates, then episodes.",
        ("algorithm", "task: replicates − source"),
        [((e, f"{label} ({d['fits']} fits: {', '.join(f'{v:+.1f}' for v in d['per_fit'])})"), d)
         for e, by_group in pooled.items() for label, d in by_group.items()],
    )
    lines += _settings_table(summary.get("settings") or {})
    for t in summary["tasks"]:
        rows = summary["per_task"][t]
        data = summary["datasets"].get(t, {})
        norm = t in summary["normalized_tasks"]
        unit = "normalized score" if norm else "team return (no reference scores)"
        lines += [f"## {t}", ""]
        if data:
            lines.append(
                f"Dataset `{data['dataset']}`: {data.get('num_episodes')} episodes, mean return "
                f"{_num(data.get('mean_return'))}"
                + (f" (normalized {_num(data.get('normalized'))})" if norm else "")
                + f"; ref min {_num(data.get('ref_min_score'))}, ref max "
                f"{_num(data.get('ref_max_score'))}."
            )
            lines.append("")
        has_win = any(r["win_rate"] is not None for r in rows.values())
        head = f"| algorithm | mean {unit} [95% CI] | IQM [95% CI] | return | seeds"
        head += " | win rate |" if has_win else " |"
        lines += [head, "| --- " * (6 if has_win else 5) + "|"]
        for e in sorted(rows, key=lambda e: -rows[e]["mean"]["value"]):
            r = rows[e]
            row = (
                f"| {e} | {_fmt(r['mean'])} | {_fmt(r['iqm'])} | {r['mean_return']:.2f} | "
                f"{r['seeds']}"
            )
            row += f" | {_num(r['win_rate'], 2)} |" if has_win else " |"
            lines.append(row)
        lines.append("")
    if footer:
        lines += [footer, ""]
    return "\n".join(lines)


def _settings_table(settings: dict[str, dict[str, str]]) -> list[str]:
    """Options the grid set per entry (one row per entry when every task got the same)."""
    if not settings:
        return []
    lines = ["Settings: the options the grid config set; all others at their defaults "
             "(the algorithms' option classes, `MADiffConfig`, `EAQConfig`).", "",
             "| entry | options |", "| --- | --- |"]
    for entry, by_task in settings.items():
        if len(set(by_task.values())) == 1:
            lines.append(f"| {entry} | `{next(iter(by_task.values()))}` |")
        else:
            lines += [f"| {entry} ({task}) | `{opts}` |" for task, opts in sorted(by_task.items())]
    return lines + [""]


def _num(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def marl_eval_json(results: list[dict[str, Any]]) -> dict[str, Any]:
    """marl-eval's raw-data layout: env → task → algorithm → ``run_<seed>`` → metrics.

    Offline runs have one evaluation after training: ``step_0`` (``step_count`` = the
    algorithm's gradient steps where known) and ``absolute_metrics`` hold the per-episode
    ``return``, ``normalized_return`` and, where reported, ``win_rate``.
    """
    out: dict[str, Any] = {}
    for r in results:
        run = r["run"]
        env_name = run["env"].split("/")[0] if "/" in run["env"] else run["env"]
        metrics: dict[str, Any] = {"return": r["returns"]}
        if r["normalized"] is not None:
            metrics["normalized_return"] = r["normalized"]
        if r["wins"] is not None:
            metrics["win_rate"] = r["wins"]
        cfg = r.get("algorithm_config") or {}
        steps = int(cfg.get("steps") or (cfg.get("config") or {}).get("n_steps") or 0)
        out.setdefault(env_name, {}).setdefault(task_label(r), {}).setdefault(
            r["entry"], {}
        )[f"run_{run['seed']}"] = {
            "step_0": {"step_count": steps, **metrics},
            "absolute_metrics": dict(metrics),
        }
    return out


def plot(summary: dict[str, Any], folder: Path) -> list[Path]:
    """``aggregate.png`` (IQM and mean with CIs) and ``per_task.png`` (bars with CIs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    agg = summary["aggregate"]
    if agg:
        order = sorted(agg, key=lambda e: agg[e]["iqm"]["value"])
        fig, axes = plt.subplots(1, 2, figsize=(9, 0.5 * len(order) + 1.5), sharey=True)
        for ax, metric in zip(axes, ("iqm", "mean")):
            vals = [agg[e][metric]["value"] for e in order]
            lo = [agg[e][metric]["value"] - agg[e][metric]["low"] for e in order]
            hi = [agg[e][metric]["high"] - agg[e][metric]["value"] for e in order]
            ax.barh(order, vals, xerr=[lo, hi], color="tab:blue", alpha=0.7, capsize=3)
            ax.set_title(f"{metric.upper()} (95% CI)")
            ax.set_xlabel("normalized score")
            ax.grid(axis="x", alpha=0.3)
        fig.tight_layout()
        p = folder / "aggregate.png"
        _save(fig, p)
        paths.append(p)
    tasks = summary["tasks"]
    entries = summary["entries"]
    if tasks:
        fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(tasks) * max(1, len(entries)) / 2), 4))
        width = 0.8 / max(1, len(entries))
        for k, e in enumerate(entries):
            xs, vals, lo, hi = [], [], [], []
            for j, t in enumerate(tasks):
                r = summary["per_task"][t].get(e)
                if r is None:
                    continue
                xs.append(j + (k - (len(entries) - 1) / 2) * width)
                vals.append(r["mean"]["value"])
                lo.append(r["mean"]["value"] - r["mean"]["low"])
                hi.append(r["mean"]["high"] - r["mean"]["value"])
            ax.bar(xs, vals, width, yerr=[lo, hi], label=e, capsize=2)
        for j, t in enumerate(tasks):
            d = summary["datasets"].get(t, {})
            if d.get("normalized") is not None:
                ax.hlines(d["normalized"], j - 0.4, j + 0.4, colors="k", linestyles="--")
        ax.set_xticks(range(len(tasks)))
        ax.set_xticklabels(tasks, rotation=15, ha="right")
        ax.set_ylabel("mean normalized score (95% CI); -- dataset")
        ax.legend(fontsize=8, ncol=2)
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        p = folder / "per_task.png"
        _save(fig, p)
        paths.append(p)
    return paths


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path, suffix=".png") as tmp:  # savefig picks the format by suffix
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def run_commits(results: list[dict[str, Any]]) -> list[str]:
    """Short commit ids of the runs, each once, in first-seen order ("?" where unknown).

    A resumed grid mixes runs made at different commits, so the report names all of them.
    """
    return list(
        dict.fromkeys((r.get("versions", {}).get("git_commit") or "?")[:10] for r in results)
    )


def write_reports(
    out_dir: Path, config, results: list[dict[str, Any]], infos: dict[str, dict[str, Any]],
    *, reps: int = stats.DEFAULT_REPS, plots: bool = True, command: str | None = None,
) -> str:
    """(Re)write every report file of ``out_dir``; returns the leaderboard markdown."""
    out_dir = Path(out_dir)
    write_text_atomic(
        out_dir / "runs.jsonl",
        "".join(json.dumps({k: v for k, v in r.items() if k != "config"}) + "\n" for r in results),
    )
    write_json_atomic(out_dir / "results.json", marl_eval_json(results))
    if not results:
        md = f"# Leaderboard: {config.name}\n\nNo finished runs yet.\n"
        write_text_atomic(out_dir / "leaderboard.md", md)
        return md
    summary = summarize(results, infos, reps=reps)
    write_json_atomic(out_dir / "summary.json", summary)
    v = results[0].get("versions", {})
    total = len(config.runs())
    commits = run_commits(results)
    footer = (
        f"{len(results)}/{total} runs finished; {config.eval_episodes} evaluation episodes per "
        f"run. Machine: {v.get('machine')}; torch {v.get('torch')}, "
        f"{'commit' if len(commits) == 1 else 'commits'} {', '.join(commits)}."
    )
    if command:
        footer += f"\n\nCommand: `{command}`"
    md = leaderboard_markdown(summary, title=config.name, footer=footer)
    write_text_atomic(out_dir / "leaderboard.md", md)
    if plots:
        plot(summary, out_dir / "plots")
    return md
