"""EAQ speed on MPE spread: training steps/s, accepted synthetic episodes per minute, memory.

    python -m benchmarks.eaq_perf [--dataset ID] [--n-steps 500] [--episodes 2000]
        [--threads 2] [--config JSON]

Without ``--dataset`` it records 200 random-policy episodes of ``mpe2/simple_spread_v3``
(N=3, 25 steps) into a temporary Minari root. The target (DESIGN.md) is >= 1,000 accepted
synthetic episodes per minute on 2 CPU cores. Prints a Markdown table and the command.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default=None, help="multi-agent Minari dataset id")
    p.add_argument("--n-steps", type=int, default=500, help="training steps to time")
    p.add_argument("--episodes", type=int, default=2000, help="accepted episodes to generate")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--config", default="{}", help="JSON of EAQConfig fields")
    args = p.parse_args(argv)

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from diffusion_agents.eaq import EAQAugmenter, EAQConfig
    from wrappers import RandomPolicy, load_episodes, make_env, record_dataset

    if args.dataset is None:
        os.environ["MINARI_DATASETS_PATH"] = tempfile.mkdtemp(prefix="eaq_perf_")
        env = make_env("mpe2/simple_spread_v3", N=3)
        record_dataset(
            "mpe2/simple_spread_v3", RandomPolicy(env, seed=0), 200,
            "mpe2/simple_spread/perf-random-v0", env_kwargs={"N": 3},
            ref_min_score=0.0, show_progress=False,
        )
        dataset = "mpe2/simple_spread/perf-random-v0"
    else:
        dataset = args.dataset
    batch = load_episodes(dataset)
    rss0 = _rss_mib()
    cfg = EAQConfig.from_dict({**json.loads(args.config), "n_steps": args.n_steps})
    aug = EAQAugmenter(cfg)
    t_fit = None
    for step, _ in aug.fitter(batch, show_progress=True):
        if step == 9:  # skip warm-up (allocations, first-call overheads)
            t_fit = time.perf_counter()
    fit_rate = (args.n_steps - 10) / (time.perf_counter() - t_fit)
    rss_fit = _rss_mib()
    aug.sample(min(64, args.episodes), show_progress=False)  # warm-up
    res = aug.sample(args.episodes, show_progress=True)
    per_min = res.num_accepted / res.seconds * 60.0
    rss = _rss_mib()
    n_params = sum(p.numel() for p in aug.model.net.parameters())
    cmd = "python -m benchmarks.eaq_perf " + " ".join(sys.argv[1:] if argv is None else argv)
    print()
    print(f"EAQ speed, {dataset} ({batch.num_episodes} episodes, {batch.num_agents} agents, "
          f"T={batch.horizon}), tensor {aug.layout.num_features} x {aug.layout.horizon}, "
          f"U-Net {n_params / 1e6:.2f} M params, torch threads {args.threads}")
    print()
    print("| measure | value |")
    print("| --- | --- |")
    print(f"| training steps/s (batch {cfg.batch_size}, lambda={cfg.q_weight}) | {fit_rate:.1f} |")
    print(f"| sampler | {cfg.sampler}, {cfg.sample_steps} steps, batch {cfg.sample_batch_size} |")
    print(f"| accepted synthetic episodes / minute | {per_min:,.0f} |")
    print(f"| acceptance rate | {res.acceptance_rate:.3f} (rejected: {res.rejected}) |")
    print(f"| generation wall time for {res.num_accepted} episodes | {res.seconds:.1f} s |")
    print(f"| peak RSS after data load / fit / sampling | {rss0:.0f} / {rss_fit:.0f} / {rss:.0f} MiB |")
    print(f"| synthetic vs real mean return | {res.batch.returns.mean():.2f} vs {batch.returns.mean():.2f} |")
    print()
    print(f"command: {cmd.strip()}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (cores: {os.cpu_count()})")
    del np
    return 0


if __name__ == "__main__":
    sys.exit(main())
