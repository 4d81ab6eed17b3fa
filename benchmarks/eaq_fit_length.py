"""EAQ sample quality against fit length: does a longer fit make synthetic episodes physical?

    python -m benchmarks.eaq_fit_length --dataset mpe2/simple_spread/medium-v0 \\
        [--checkpoints 1500,3000,6000,12000,24000] [--q-weight 0.0] [--episodes 300] \\
        [--config JSON] [--threads 2] [--out FILE.json]

One EAQ fit (``EAQConfig(n_steps=<last checkpoint>, q_weight=...)``, seed 0); at each
checkpoint the EMA model draws ``--episodes`` accepted episodes (same sampling seed each
time) and they are scored against the real ones with ``diffusion_agents.eaq.report``:
the one-step dynamics error (median, in units of the real deltas' std, against held-out real
transitions), nearest-neighbour fidelity and coverage, and the mean generated return. The
earlier sessions' fits stopped at 1,500-6,000 steps (docs/eaq.md); this measures what more
steps buy. Prints a Markdown table and the command.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from benchmarks.cli import script_main


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="mpe2/simple_spread/medium-v0")
    p.add_argument("--checkpoints", default="1500,3000,6000,12000,24000")
    p.add_argument("--q-weight", type=float, default=0.0)
    p.add_argument("--episodes", type=int, default=300)
    p.add_argument("--config", default="{}", help="JSON of other EAQConfig fields")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None)


def run(args) -> int:
    import numpy as np
    import torch

    from diffusion_agents.eaq import EAQAugmenter, EAQConfig
    from diffusion_agents.eaq.report import fit_dynamics, quality_metrics
    from wrappers import load_episodes

    torch.set_num_threads(args.threads)
    try:
        marks = sorted({int(s) for s in args.checkpoints.split(",")})
        extra = json.loads(args.config)
    except ValueError as exc:
        raise SystemExit(f"--checkpoints / --config: {exc}") from None
    if not marks or marks[0] < 1:
        raise SystemExit("--checkpoints must be positive step counts.")
    real = load_episodes(args.dataset)
    dynamics = fit_dynamics(real)  # once: every checkpoint is scored by the same model
    cfg = EAQConfig.from_dict({**extra, "n_steps": marks[-1], "q_weight": args.q_weight})
    aug = EAQAugmenter(cfg)
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    fit_s = 0.0
    for step, _ in aug.fitter(real, show_progress=True):
        if step + 1 not in marks:
            continue
        fit_s = time.perf_counter() - t0
        res = aug.sample(args.episodes, seed=1234, show_progress=False)
        dyn = dynamics.score(res.batch)
        q = quality_metrics(real, res.batch)
        rows.append({
            "steps": step + 1, "fit_seconds": fit_s,
            "diffusion_loss": float(np.mean([h["diffusion"] for h in aug.history[-100:]])),
            "dyn_err_synthetic": dyn["dynamics_obs_err_synthetic"],
            "dyn_err_real": dyn["dynamics_obs_err_real_heldout"],
            "dyn_over_real_p95": dyn["dynamics_obs_err_over_real_p95"],
            "reward_err_synthetic": dyn["dynamics_reward_err_synthetic"],
            "reward_err_real": dyn["dynamics_reward_err_real_heldout"],
            "nn_distance": q["fidelity_nn_dist_synthetic"],
            "nn_distance_real": q["fidelity_nn_dist_real_heldout"],
            "coverage": q["coverage_synthetic"],
            "coverage_real": q["coverage_real_heldout"],
            "return_synthetic": float(res.batch.returns.mean()),
            "acceptance": res.acceptance_rate,
        })
        print(json.dumps(rows[-1]), flush=True)
        t0 = time.perf_counter() - fit_s  # sampling and scoring do not count as fit time
    cmd = "python -m benchmarks.eaq_fit_length " + " ".join(sys.argv[1:])
    print(f"\nEAQ fit length, {args.dataset} ({real.num_episodes} episodes, real mean return "
          f"{real.returns.mean():.2f}), lambda={args.q_weight}, {args.episodes} samples per "
          f"checkpoint, {args.threads} threads\n")
    print("| fit steps | fit time | diffusion loss (last 100) | one-step obs error: synthetic "
          "/ real held-out | share above real p95 | reward error synth / real | NN distance "
          "synth / real | coverage synth / real | generated return |")
    print("| ---: | ---: | ---: | --- | ---: | --- | --- | ---: | ---: |")
    for r in rows:
        print(f"| {r['steps']:,} | {r['fit_seconds']:.0f} s | {r['diffusion_loss']:.4f} | "
              f"{r['dyn_err_synthetic']:.3f} / {r['dyn_err_real']:.4f} | "
              f"{r['dyn_over_real_p95']:.2f} | {r['reward_err_synthetic']:.4f} / "
              f"{r['reward_err_real']:.4f} | {_f(r['nn_distance'])} / "
              f"{_f(r['nn_distance_real'])} | {_f(r['coverage'])} / {_f(r['coverage_real'])} | "
              f"{r['return_synthetic']:.2f} |")
    print(f"\ncommand: {cmd}")
    if args.out:
        from benchmarks.harness import write_json_atomic

        write_json_atomic(args.out, {"command": cmd, "dataset": args.dataset,
                                     "q_weight": args.q_weight, "config": cfg.to_dict(),
                                     "rows": rows})
        print(f"wrote {args.out}")
    return 0


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def main(argv: list[str] | None = None) -> int:
    return script_main("benchmarks.eaq_fit_length", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
