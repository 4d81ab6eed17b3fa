"""Eager CPU time of the U-Net's two layouts, alternated in one process (an A/B table).

    python -m benchmarks.unet_layout [--madiff-dataset ID] [--madiff-config JSON]
        [--eaq-dataset ID ...] [--eaq-config JSON] [--threads 2] [--blocks 20] [--block-steps 10]
        [--sample-batch 256] [--out JSON]

``TemporalUNet.nhwc`` (on by default since the thirty-third session) runs gradient steps
and large inputs on the CPU as 4-D ``(batch, channels, 1, length)`` tensors in
``torch.channels_last`` memory format, through oneDNN's 2-D convolutions; switched off, the
activations are channels-first 3-D tensors through ``conv1d``. Both compute the same
function up to float rounding (``tests/diffusion_agents/test_networks.py``).

Each workload flips the attribute on one model in alternate blocks (the order swapped every
round), so both layouts see the same weights, batches and machine state:

- one MADiff training run (the default config, or ``--madiff-config`` overrides; ``diffusion_agents.madiff.training``'s own
  steps, inverse dynamics included);
- one EAQ fit per ``--eaq-dataset`` (``EAQAugmenter.fitter``, ``--eaq-config`` overrides);
- no-gradient forwards of each EAQ U-Net on ``--sample-batch`` random episode tensors of its
  layout's shape, as sampling runs them (rounds of ``--block-steps // 5`` forwards, two
  untimed first).

The table gives median milliseconds per step (or forward) and the ratio nhwc /
channels-first: below 1 is faster. ``torch.compile`` (MADiff's ``compile=True``) and small
act-sized inputs keep their own paths and are not timed here.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator

import numpy as np

from benchmarks.cli import json_object, script_main
from benchmarks.perf import alternated_ms


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--madiff-dataset", default="mpe2/simple_spread/medium-v0",
                   help="MADiff training workload ('' to skip)")
    p.add_argument("--madiff-config", default="{}", metavar="JSON",
                   help="MADiffConfig overrides")
    p.add_argument("--eaq-dataset", action="append", default=None, metavar="ID",
                   help="EAQ fit and sampling workloads (repeatable; default: the MADiff one)")
    p.add_argument("--eaq-config", default="{}", metavar="JSON",
                   help="EAQConfig overrides, e.g. '{\"dim\": 128}'")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--blocks", type=int, default=20, help="timed rounds per layout")
    p.add_argument("--block-steps", type=int, default=10, help="steps per round")
    p.add_argument("--warmup", type=int, default=20, help="untimed steps first")
    p.add_argument("--sample-batch", type=int, default=256,
                   help="episodes per no-gradient EAQ forward")
    p.add_argument("--out", default=None, help="also write the table as JSON")


def alternate(
    step: Callable[[], object], unet, blocks: int, block_steps: int, warmup: int
) -> dict[str, list[float]]:
    """Milliseconds per ``step()`` in ``blocks`` rounds of ``block_steps``, ``unet.nhwc``
    False then True (swapped every other round); ``nhwc`` is left True."""
    for _ in range(warmup):
        step()
    ms = alternated_ms(
        {"channels-first": step, "nhwc": step}, blocks, block_steps,
        before=lambda name: setattr(unet, "nhwc", name == "nhwc"),
    )
    unet.nhwc = True
    return ms


def _advance(gen: Iterator) -> Callable[[], object]:
    return lambda: next(gen)


def run(args) -> int:
    import torch

    from diffusion_agents import MADiffConfig, MADiffPolicy
    from diffusion_agents.eaq import EAQAugmenter, EAQConfig
    from diffusion_agents.madiff.policy import _load_batch
    from diffusion_agents.madiff.training import TrainingRun

    madiff_over = json_object(args.madiff_config, "--madiff-config")
    eaq_over = json_object(args.eaq_config, "--eaq-config")
    torch.set_num_threads(args.threads)
    a = (args.blocks, args.block_steps, args.warmup)
    rows: dict[str, dict[str, list[float]]] = {}
    if args.madiff_dataset:
        cfg = MADiffConfig(**{**madiff_over, "n_steps": 10**9})
        batch = _load_batch(args.madiff_dataset)
        model = MADiffPolicy._build_model(cfg, MADiffPolicy._model_dims(batch), cfg.seed)
        steps = TrainingRun.start(model, batch, cfg).steps()
        name = f"MADiff training step, batch {cfg.batch_size} ({args.madiff_dataset})"
        rows[name] = alternate(_advance(steps), model.unet, *a)
        print(f"{name}: done", flush=True)
    for ds in args.eaq_dataset or ([args.madiff_dataset] if args.madiff_dataset else []):
        aug = EAQAugmenter(EAQConfig(**{**eaq_over, "n_steps": 10**9}))
        gen = aug.fitter(ds, show_progress=False)
        next(gen)  # builds the model
        net = aug.model.net
        name = f"EAQ fit step, batch {aug.config.batch_size} ({ds})"
        rows[name] = alternate(_advance(gen), net, *a)
        print(f"{name}: done", flush=True)
        shape = (args.sample_batch, net.in_channels, aug.layout.horizon)
        x = torch.randn(shape)
        t = torch.full((shape[0],), aug.config.n_diffusion_steps // 2, dtype=torch.long)

        @torch.no_grad()
        def forward(net=net, x=x, t=t):
            return net(x, t)

        name = f"EAQ U-Net forward, no gradients, {tuple(shape)} ({ds})"
        rows[name] = alternate(forward, net, args.blocks, max(1, args.block_steps // 5), 2)
        print(f"{name}: done", flush=True)
    print(f"\nU-Net layouts, eager, {args.threads} thread(s), {args.blocks} alternated rounds\n")
    print("| workload | channels-first ms | nhwc ms | ratio |")
    print("| --- | ---: | ---: | ---: |")
    table = {}
    for name, ms in rows.items():
        cf, nh = float(np.median(ms["channels-first"])), float(np.median(ms["nhwc"]))
        table[name] = {"channels_first_ms": cf, "nhwc_ms": nh, "ratio": nh / cf, "blocks": ms}
        print(f"| {name} | {cf:.2f} | {nh:.2f} | {nh / cf:.3f} |")
    if args.out:
        from benchmarks.harness import write_json_atomic

        write_json_atomic(args.out, {"threads": args.threads, "madiff_config": madiff_over,
                                     "eaq_config": eaq_over,
                                     "block_steps": args.block_steps, "rows": table})
        print(f"\nwrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return script_main("benchmarks.unet_layout", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
