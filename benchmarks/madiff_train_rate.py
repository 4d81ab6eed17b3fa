"""Training throughput of whole MADiff runs, as a user sees it (steps per second).

    python -m benchmarks.madiff_train_rate [--dataset ID] [--configs JSON] [--threads 2]
        [--steps 10000] [--segment 250] [--out JSON]

Each config (``{name: MADiffConfig overrides}``; by default eager and ``compile=True``) runs
one ``MADiffPolicy.train`` of ``--steps`` gradient steps on the dataset, one run after the
other in this process. The table gives the time to the end of the fifth step (set-up and,
with ``compile=True``, compilation: minutes the first time, seconds from inductor's cache),
the rate from step 5 to the last step (the whole run, EMA updates and the inverse
dynamics' first ``inverse_steps`` included; no checkpoints), and the median, lowest and
highest rate over ``--segment``-step segments, which shows how much the machine drifted
during the run.

``diffusion-agents perf`` times 60 steps and ``benchmarks.madiff_train_ab`` alternates
variants in 10-step blocks; both are for comparing rows of one run. Alternating compiled
models costs speed of its own (one default alone: 16.8 ms per step; the same default as two
alternated copies: 19.9 ms each; 2 threads, fourteenth session), so the absolute rate a
training run reaches is measured here.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.cli import script_main


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="mpe2/simple_spread/medium-v0")
    p.add_argument(
        "--configs",
        default='{"eager": {}, "compile=True": {"compile": true}}',
        metavar="JSON",
        help="{name: MADiffConfig overrides}, run one after the other",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=10_000, help="gradient steps per run")
    p.add_argument("--segment", type=int, default=250, help="steps per timed segment")
    p.add_argument("--out", default=None, help="also write the table as JSON")


def time_run(batch, config, segment: int) -> dict:
    """Train once; wall-clock marks at step 5 and every ``segment`` steps after it."""
    from diffusion_agents import MADiffPolicy

    marks: dict[int, float] = {}

    def cb(step: int, metrics: dict[str, float]) -> None:
        if step >= 5 and ((step - 5) % segment == 0 or step == config.n_steps):
            marks[step] = time.perf_counter()

    t0 = time.perf_counter()
    MADiffPolicy.train(batch, config, show_progress=False, callback=cb)
    steps = sorted(marks)
    rates = [(b - a) / (marks[b] - marks[a]) for a, b in zip(steps, steps[1:])]
    return {
        "startup_s": marks[5] - t0,
        "steps_per_s": (steps[-1] - 5) / (marks[steps[-1]] - marks[5]),
        "segment_steps_per_s": rates,
    }


def run(args) -> int:
    import torch

    from benchmarks.madiff_train_ab import named_overrides
    from diffusion_agents import MADiffConfig
    from diffusion_agents.madiff.policy import _load_batch

    configs = named_overrides(args.configs, "--configs")
    if args.steps < 5 + args.segment:
        raise SystemExit(f"--steps must be at least 5 + --segment ({5 + args.segment}).")
    torch.set_num_threads(args.threads)
    batch = _load_batch(args.dataset)
    results = {}
    for name, overrides in configs.items():
        cfg = MADiffConfig(**{**overrides, "n_steps": args.steps})
        results[name] = {"overrides": overrides, **time_run(batch, cfg, args.segment)}
        r = results[name]
        print(f"{name}: {r['steps_per_s']:.1f} steps/s after {r['startup_s']:.1f} s of set-up",
              flush=True)
    print(f"\nMADiff training runs, batch {MADiffConfig().batch_size} unless overridden, "
          f"{args.steps} steps each, {args.threads} thread(s) ({args.dataset})\n")
    print(f"| config | set-up + first 5 steps | steps / s, whole run | {args.segment}-step "
          "segments: median [min, max] |")
    print("| --- | ---: | ---: | --- |")
    for name, r in results.items():
        seg = np.asarray(r["segment_steps_per_s"])
        print(f"| {name} | {r['startup_s']:.1f} s | {r['steps_per_s']:.1f} | "
              f"{np.median(seg):.1f} [{seg.min():.1f}, {seg.max():.1f}] |")
    if args.out:
        from benchmarks.harness import write_json_atomic

        out = {"dataset": args.dataset, "threads": args.threads, "steps": args.steps,
               "segment": args.segment, "runs": results}
        write_json_atomic(args.out, out)
        print(f"\nwrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return script_main("benchmarks.madiff_train_rate", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
