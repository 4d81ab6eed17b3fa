"""Which part of MADiff does a training setting change? Swap the inverse-dynamics heads.

    python -m benchmarks.madiff_swap --dataset smax/smacv2_5_units/medium-v0 --seed 0 \\
        --a '{"n_steps": 3000}' --b '{"n_steps": 3000, "learning_rate": 1e-3}' \\
        --episodes 20 --threads 1 --out PATH.json
    python -m benchmarks.madiff_swap --merge PATH.json [PATH.json ...]

Trains MADiff-D (or ``--variant``) twice on one dataset with one seed, under settings A
and B (JSON overrides of ``MADiffConfig``, as the harness's
``[algorithm_options.madiff_d].config`` sets them; the harness's own ``make_madiff_config``
builds the config, so the A/A and B/B cells are the harness's runs). Then it scores all
four pairings of diffusion model (EMA weights, with the normalization statistics, which
depend on the data only) and inverse-dynamics head on the same evaluation episodes (the
harness's seeds), each from a fresh policy's sampling noise: A/A, A's model with B's head,
B's model with A's head, B/B. Act-time settings (guidance, sampler) follow the model's row.
A setting that acts through the head moves the score along a row (between the head
columns); one that acts through the planner moves it down a column. ``--merge`` averages
the per-seed reports of separate processes (run seeds in parallel, one thread each).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

PAIRS = [("A", "A"), ("A", "B"), ("B", "A"), ("B", "B")]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="smax/smacv2_5_units/medium-v0")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variant", default="madiff_d",
                   choices=["madiff_d", "madiff_c", "independent_diffuser"],
                   help="the harness algorithm whose mode keys both settings get")
    p.add_argument("--a", default="{}", help="JSON MADiffConfig overrides of setting A")
    p.add_argument("--b", default="{}", help="JSON MADiffConfig overrides of setting B")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="JSON report path")
    p.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                   help="average the reports of earlier runs (other seeds) into one table")


def _table(scores: dict[str, list[float]]) -> str:
    lines = ["| diffusion model | inverse dynamics A | inverse dynamics B |",
             "| --- | ---: | ---: |"]
    for m in ("A", "B"):
        cells = []
        for h in ("A", "B"):
            v = scores[f"{m}/{h}"]
            cells.append(f"{sum(v) / len(v):.1f}" + (f" ({', '.join(f'{x:.1f}' for x in v)})"
                                                     if len(v) > 1 else ""))
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def merge(paths: list[str]) -> int:
    reports = [json.loads(Path(p).read_text()) for p in paths]
    first = reports[0]
    for p, r in zip(paths, reports):
        # reports from before --variant ran madiff_d
        keys = {"dataset": None, "variant": "madiff_d", "a": None, "b": None, "episodes": None}
        if any(r.get(k, d) != first.get(k, d) for k, d in keys.items()):
            print(f"madiff_swap: {p} has other settings than {paths[0]}", file=sys.stderr)
            return 2
    scores = {k: [r["scores"][k] for r in reports] for k in first["scores"]}
    print(f"{first['dataset']}, {first.get('variant', 'madiff_d')}, A = {first['a']}, "
          f"B = {first['b']}, "
          f"seeds {[r['seed'] for r in reports]}, normalized score (mean over seeds; per seed)")
    print(_table(scores))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_arguments(p)
    args = p.parse_args(argv)
    if args.merge:
        return merge(args.merge)

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from benchmarks.algorithms.madiff import make_madiff_config
    from benchmarks.algorithms.options import MADiffAdapterConfig
    from benchmarks.harness import dataset_info, evaluate, normalize
    from diffusion_agents import MADiffPolicy
    from wrappers import load_episodes

    settings = {"A": json.loads(args.a), "B": json.loads(args.b)}
    ref = dataset_info(args.dataset)
    cfgs = {name: make_madiff_config(args.variant, MADiffAdapterConfig(config=overrides),
                                     args.seed)
            for name, overrides in settings.items()}
    batch = load_episodes(args.dataset)  # read once, for both trainings
    # heads of other shapes cannot be swapped: refuse before minutes of training
    dims = MADiffPolicy._model_dims(batch)
    shapes = {k: {n: tuple(v.shape) for n, v in
                  MADiffPolicy._build_model(c, dims, 0).inverse_module.state_dict().items()}
              for k, c in cfgs.items()}
    if shapes["A"] != shapes["B"]:
        print("madiff_swap: the inverse-dynamics heads of A and B differ in shape "
              "(inv_hidden, shared_inverse_dynamics); they cannot be swapped", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    policies = {k: MADiffPolicy.train(batch, c, seed=args.seed, show_progress=False)
                for k, c in cfgs.items()}
    train_s = time.perf_counter() - t0
    heads = {k: {n: v.clone() for n, v in pol.model.inverse_module.state_dict().items()}
             for k, pol in policies.items()}
    buffers_b = dict(policies["B"].model.named_buffers())
    for k, v in policies["A"].model.named_buffers():
        if not torch.equal(v, buffers_b[k]):
            raise RuntimeError(f"the two models normalize differently ({k}); same dataset?")
    info = policies["A"].info
    scores: dict[str, float] = {}
    for m, h in PAIRS:
        pol = policies[m]
        pol.model.inverse_module.load_state_dict(heads[h])
        pol.reset(seed=pol.config.seed)  # every cell samples with a fresh policy's noise
        ev = evaluate(pol, info["env_id"], info.get("env_kwargs") or {}, args.episodes,
                      args.seed)
        scores[f"{m}/{h}"] = normalize(float(np.mean(ev.returns)), ref["ref_min_score"],
                                       ref["ref_max_score"])
        print(f"model {m}, head {h}: {scores[f'{m}/{h}']:.1f}", flush=True)
    print(f"\n{args.dataset}, {args.variant}, seed {args.seed}, A = {args.a}, B = {args.b}, "
          f"{args.episodes} episodes; training {train_s:.0f} s")
    print(_table({k: [v] for k, v in scores.items()}))
    if args.out:
        from benchmarks.harness import write_json_atomic

        write_json_atomic(args.out, {
            "dataset": args.dataset, "variant": args.variant, "seed": args.seed,
            "a": settings["A"],
            "b": settings["B"], "episodes": args.episodes, "threads": args.threads,
            "scores": scores, "train_seconds": train_s,
            "command": "python -m benchmarks.madiff_swap " + " ".join(
                argv if argv is not None else sys.argv[1:]),
        })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
