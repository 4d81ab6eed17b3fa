"""EAQ quality report: lambda = 0 vs the default lambda on one dataset (table + PNG).

    python -m benchmarks.eaq_quality --dataset mpe2/simple_spread/medium-v0 \\
        [--q-weights 0,0.3] [--n-steps 1500] [--episodes 1000] [--out PATH.png]

For each lambda: fit EAQ on the dataset (same seed), draw ``--episodes`` accepted synthetic
episodes, and compare them with the real ones (``diffusion_agents.eaq.report``): t-SNE of
per-step joint observations (PNG), nearest-neighbour fidelity, coverage, diversity, the mean
generated return and the mean Q-total estimate at ``t = 0``, and the one-step dynamics
consistency of the synthetic transitions (``report.dynamics_consistency``) and the policy
consistency of their ``(o_i, a_i)`` pairs (``report.policy_consistency``).

``--dynamics-of ID [ID ...]`` instead scores existing augmented datasets (their synthetic
episodes against their real ones) by both consistency measures, without fitting EAQ.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks.harness import write_json_atomic


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset")
    p.add_argument(
        "--dynamics-of",
        nargs="+",
        metavar="ID",
        help="score existing augmented datasets' dynamics consistency (no fitting)",
    )
    p.add_argument("--q-weights", default="0,0.3", help="comma-separated lambdas")
    p.add_argument("--n-steps", type=int, default=1500)
    p.add_argument("--episodes", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--config", default="{}", help="JSON of EAQConfig fields")
    p.add_argument("--out", default=None, help="PNG path (default benchmarks/results/...)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from diffusion_agents.eaq import EAQAugmenter, EAQConfig
    from diffusion_agents.eaq.report import (
        dynamics_consistency,
        fit_dynamics,
        plot_report,
        policy_consistency,
        quality_metrics,
    )
    from wrappers import load_episodes

    if args.dynamics_of:
        print("| augmented dataset | synthetic obs-delta err (median) | real held-out | "
              "share above real p95 | synthetic reward err | real held-out | "
              "action NLL synthetic | real held-out | uniform | action accuracy synthetic | "
              "real held-out |")
        print("| --- " * 11 + "|")
        for ds in args.dynamics_of:
            b = load_episodes(ds)
            if not b.synthetic.any():
                p.error(f"{ds} has no synthetic episodes (infos['synthetic']).")
            d = dynamics_consistency(b, b, seed=args.seed)
            if any(b.n_actions):
                d.update(policy_consistency(b, b, seed=args.seed))
            pol = " | ".join(
                f"{d[k]:.3f}" if k in d else "-"
                for k in ("policy_nll_synthetic", "policy_nll_real_heldout", "policy_nll_uniform",
                          "policy_acc_synthetic", "policy_acc_real_heldout")
            )
            print(f"| {ds} | {d['dynamics_obs_err_synthetic']:.3f} | "
                  f"{d['dynamics_obs_err_real_heldout']:.4f} | "
                  f"{d['dynamics_obs_err_over_real_p95']:.2f} | "
                  f"{d['dynamics_reward_err_synthetic']:.3f} | "
                  f"{d['dynamics_reward_err_real_heldout']:.3f} | {pol} |")
        return 0
    if not args.dataset:
        p.error("--dataset is required (or --dynamics-of)")
    real = load_episodes(args.dataset)
    base = EAQConfig.from_dict(json.loads(args.config)).replace(
        n_steps=args.n_steps, seed=args.seed
    )
    dynamics = fit_dynamics(real, seed=args.seed)  # one model scores every lambda's samples
    synthetic, metrics = {}, {}
    for lam in [float(x) for x in args.q_weights.split(",")]:
        name = f"lambda={lam:g}"
        t0 = time.perf_counter()
        aug = EAQAugmenter(base.replace(q_weight=lam)).fit(real, show_progress=True)
        fit_s = time.perf_counter() - t0
        res = aug.sample(args.episodes, seed=args.seed + 1, show_progress=True)
        m = quality_metrics(real, res.batch, seed=args.seed)
        m.update(dynamics.score(res.batch))
        if any(real.n_actions):
            m.update(policy_consistency(real, res.batch, seed=args.seed))
        q_real = aug.q_estimate(aug.layout.encode(real))
        m.update(
            q_estimate_synthetic=float(res.q_estimate.mean()),
            q_estimate_real=float(q_real.mean()),
            q_total_row_synthetic=float(res.q_total.mean()),
            acceptance_rate=res.acceptance_rate,
            fit_seconds=fit_s,
            sample_seconds=res.seconds,
        )
        synthetic[name], metrics[name] = res.batch, m
    slug = args.dataset.replace("/", "_")
    out = Path(args.out or f"benchmarks/results/eaq_quality_{slug}.png")
    plot_report(out, real, synthetic, metrics, title=f"EAQ on {args.dataset}", seed=args.seed)
    write_json_atomic(out.with_suffix(".json"), metrics)

    rows = [
        ("mean return (generated rewards)", "mean_return_synthetic", "mean_return_real"),
        ("mean Q-total estimate at t=0", "q_estimate_synthetic", "q_estimate_real"),
        ("fidelity: NN distance to real (lower = closer)", "fidelity_nn_dist_synthetic",
         "fidelity_nn_dist_real_heldout"),
        ("coverage of real k-NN balls", "coverage_synthetic", "coverage_real_heldout"),
        ("diversity: mean pair distance", "diversity_synthetic", "diversity_real"),
        ("dynamics: one-step obs-delta error, median (std units)",
         "dynamics_obs_err_synthetic", "dynamics_obs_err_real_heldout"),
        ("dynamics: share of transitions above real p95", "dynamics_obs_err_over_real_p95",
         None),
        ("dynamics: one-step reward error, median", "dynamics_reward_err_synthetic",
         "dynamics_reward_err_real_heldout"),
        ("policy: action NLL under a real-data behaviour model (nats)",
         "policy_nll_synthetic", "policy_nll_real_heldout"),
        ("policy: accuracy of that model's most likely action", "policy_acc_synthetic",
         "policy_acc_real_heldout"),
        ("acceptance rate", "acceptance_rate", None),
    ]
    rows = [r for r in rows if r[1] in metrics[next(iter(metrics))]]
    names = list(metrics)
    print()
    print(f"EAQ quality on {args.dataset} ({real.num_episodes} real episodes; "
          f"{args.episodes} synthetic per lambda; {args.n_steps} training steps)")
    print()
    print("| measure | " + " | ".join(names) + " | real data |")
    print("| --- " * (len(names) + 2) + "|")
    for label, key, real_key in rows:
        vals = " | ".join(f"{metrics[n][key]:.3f}" for n in names)
        ref = f"{metrics[names[0]][real_key]:.3f}" if real_key else "-"
        print(f"| {label} | {vals} | {ref} |")
    print()
    print(f"plot: {out}  (metrics: {out.with_suffix('.json')})")
    cmd = "python -m benchmarks.eaq_quality " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"command: {cmd}")
    del np
    return 0


if __name__ == "__main__":
    sys.exit(main())
