"""Training step time of MADiff config variants, alternated in one process (an A/B table).

    python -m benchmarks.madiff_train_ab [--dataset ID] [--variants JSON] [--threads 2]
        [--blocks 20] [--block-steps 10] [--no-compile] [--out JSON]

This VM's speed drifts by tens of percent between runs minutes apart, and between sessions
it has been a different CPU (AVX-512 and AMX some days, AVX2 only on others), so two
``diffusion-agents perf`` runs cannot compare two networks. Here every variant is built and
(with ``compile=True``, the default here) compiled first, then the variants take turns:
``--blocks`` rounds of ``--block-steps`` gradient steps each, timed per block; the table
gives the median milliseconds per step, steps per second and the ratio to the first
variant, which is the number to read: alternating compiled models costs speed of its own
(the default alone 16.8 ms per step, as two alternated copies 19.9 ms each; fourteenth
session), so the absolute rate of a training run is ``benchmarks.madiff_train_rate``'s.
Batches, losses and optimizer updates are the library's own
(``diffusion_agents.madiff.training.fit``); variants are ``MADiffConfig`` overrides,
e.g. ``'{"default": {}, "one block per level": {"res_blocks": 1}}'``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from benchmarks.cli import script_main


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="mpe2/simple_spread/medium-v0")
    p.add_argument(
        "--variants",
        default='{"default": {}, "res_blocks=1": {"res_blocks": 1}}',
        metavar="JSON",
        help="{name: MADiffConfig overrides}; the first one is the reference",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--blocks", type=int, default=20, help="timed rounds per variant")
    p.add_argument("--block-steps", type=int, default=10, help="gradient steps per round")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps (compilation)")
    p.add_argument("--no-compile", action="store_true", help="eager training")
    p.add_argument("--out", default=None, help="also write the table as JSON")


def named_overrides(text: str, flag: str) -> dict[str, dict]:
    """``{name: MADiffConfig overrides}`` from a command-line JSON text, or a clear exit."""
    try:
        named = json.loads(text)
    except json.JSONDecodeError as e:
        raise SystemExit(f"{flag} is not valid JSON: {e}") from None
    if not isinstance(named, dict) or not named or not all(isinstance(v, dict) for v in named.values()):
        raise SystemExit(f"{flag} must be a non-empty JSON object {{name: overrides}}.")
    return named


def run(args) -> int:
    import torch

    from diffusion_agents import MADiffConfig, MADiffPolicy
    from diffusion_agents.madiff.policy import _load_batch
    from diffusion_agents.madiff.training import TrainingRun

    variants = named_overrides(args.variants, "--variants")
    torch.set_num_threads(args.threads)
    batch = _load_batch(args.dataset)
    dims = MADiffPolicy._model_dims(batch)
    total = args.warmup + args.blocks * args.block_steps
    steps, info = {}, {}
    for name, overrides in variants.items():
        cfg = MADiffConfig(
            **{"compile": not args.no_compile, **overrides, "n_steps": total}
        )
        model = MADiffPolicy._build_model(cfg, dims, cfg.seed)
        steps[name] = TrainingRun.start(model, batch, cfg).steps()
        t0 = time.perf_counter()
        for _ in range(args.warmup):
            next(steps[name])
        info[name] = {
            "overrides": overrides,
            "unet_parameters": sum(p.numel() for p in model.unet.parameters()),
            "warmup_s": time.perf_counter() - t0,
        }
        print(f"{name}: built, {args.warmup} warm-up steps in {info[name]['warmup_s']:.1f} s",
              flush=True)
    block_ms: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.blocks):
        for name, gen in steps.items():
            t0 = time.perf_counter()
            for _ in range(args.block_steps):
                next(gen)
            block_ms[name].append((time.perf_counter() - t0) * 1000 / args.block_steps)
    ref = float(np.median(block_ms[next(iter(steps))]))
    mode = "eager" if args.no_compile else "compile=True"
    print(f"\nMADiff training, batch {MADiffConfig().batch_size} unless overridden, {mode}, "
          f"{args.threads} thread(s), {args.blocks} alternated blocks of {args.block_steps} "
          f"steps ({args.dataset})\n")
    print("| variant | U-Net parameters | ms / step (median) | steps / s | ratio |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, ms in block_ms.items():
        med = float(np.median(ms))
        info[name].update(ms_per_step=med, steps_per_s=1000 / med, ratio=med / ref)
        print(f"| {name} | {info[name]['unet_parameters']:,} | {med:.1f} | "
              f"{1000 / med:.1f} | {med / ref:.2f} |")
    if args.out:
        from benchmarks.harness import write_json_atomic

        out = {"dataset": args.dataset, "threads": args.threads, "compile": not args.no_compile,
               "blocks": args.blocks, "block_steps": args.block_steps, "variants": info,
               "block_ms": block_ms}
        write_json_atomic(args.out, out)
        print(f"\nwrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return script_main("benchmarks.madiff_train_ab", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
