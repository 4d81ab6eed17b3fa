"""MADiff and EAQ on a CUDA GPU, with the CPU of the same process as the reference.

    python -m benchmarks.cuda_perf [--dataset ID] [--quality-steps 10000] [--out FILE]

Every row is measured in this one process, on ``--device`` (default ``cuda``) and, for the
ratios, on the CPU with ``--cpu-threads`` torch threads (default 2, the CI machine's cores):

- ``act``: ``policy.act(obs)`` for the dataset's agents at the default ``MADiffConfig``
  (DDIM x3, traced sampling loop), median of ``--repeats`` calls; the same weights on the CPU;
  the same model with 200-step DDPM; the reference-size network (``MADiffConfig.reference()``:
  width 128, mults 1-4-8, 200 DDPM steps, guidance as two passes, one row per agent).
  CPU rows that would take seconds time ``--ddpm-steps`` sampling steps and extrapolate.
- ``train``: whole ``MADiffPolicy.train`` runs (``benchmarks.madiff_train_rate.time_run``),
  gradient steps per second after 5 warm-up steps: batch 32 and 256 eager on the device,
  batch 32 eager on the CPU (a quarter of the steps), batch 32 ``compile=True`` on the
  device (last: its first compilation takes a minute or more).
- ``eaq``: ``EAQAugmenter`` fit steps per second and accepted synthetic episodes per minute
  at the default ``EAQConfig``.
- ``quality`` (``--quality-steps`` > 0): the default config trained on the device for that
  many steps (seed 0), rolled out for ``--quality-episodes`` episodes on the evaluation
  episodes of ``diffusion-agents madiff``'s seed 0, with and without guidance; normalized
  scores with 95 % bootstrap intervals, to set beside the CPU-trained table in the README.

Weights do not change timings, so the ``act`` rows use a policy trained for one step.
Prints Markdown tables; ``--out`` also writes them as JSON (atomically).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any

import numpy as np

from benchmarks.cli import json_object, script_main


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="mpe2/simple_spread/medium-v0")
    p.add_argument("--device", default="cuda")
    p.add_argument("--cpu-threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--ddpm-steps", type=int, default=5,
                   help="sampling steps timed for the CPU's 200-step rows (extrapolated)")
    p.add_argument("--train-steps", type=int, default=1000, help="steps per timed train run")
    p.add_argument("--eaq-steps", type=int, default=500,
                   help="EAQ fit steps (> 10; the first 10 are warm-up, not timed)")
    p.add_argument("--eaq-episodes", type=int, default=4000, help="EAQ episodes generated")
    p.add_argument("--quality-steps", type=int, default=10_000)
    p.add_argument("--quality-episodes", type=int, default=100)
    p.add_argument("--config", default="{}", help="JSON overrides of the default MADiffConfig")
    p.add_argument("--sections", default="act,train,eaq,quality,compile",
                   help="comma-separated subset of act,train,eaq,quality,compile")
    p.add_argument("--out", default=None)


def _sync(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _median_ms(fn, repeats: int, device, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        ts.append(time.perf_counter() - t0)
    return 1000 * statistics.median(ts)


def act_rows(batch, env, args) -> list[dict[str, Any]]:
    """Act latency on the device and on the CPU (same weights, same observation)."""
    from benchmarks.perf import reference_planner
    from diffusion_agents import MADiffConfig, MADiffPolicy

    dev = args.device
    cfg = MADiffConfig(**{**args.overrides, "n_steps": 1, "device": dev})
    policy = MADiffPolicy.train(batch, cfg, show_progress=False)
    obs, _ = env.reset(seed=0)
    rows = []

    def add(what, where, ms, note=""):
        rows.append({"what": what, "device": where, "ms": ms, "note": note})
        print(f"{what} [{where}]: {ms:.2f} ms {note}", flush=True)

    for label, pol in (("act, default", policy),
                       ("act, default, eager sampling loop", policy.with_sampling(traced=False))):
        pol.reset(seed=0)
        add(label, dev, _median_ms(lambda pol=pol: pol.act(obs), args.repeats, dev))
    cpu = policy.with_sampling().to("cpu")
    cpu.reset(seed=0)
    add("act, default", "cpu", _median_ms(lambda: cpu.act(obs), args.repeats, "cpu"))
    policy.to(dev)

    k = policy.config.n_diffusion_steps
    ddpm = policy.with_sampling(sampler="ddpm", sampling_steps=None)
    ddpm.reset(seed=0)
    add(f"act, same model, {k}-step DDPM", dev,
        _median_ms(lambda: ddpm.act(obs), max(5, args.repeats // 5), dev, warmup=1),
        "all steps timed")

    ref_act, n_ref, ref_model = reference_planner(policy, batch)
    ref_cfg = ref_model.config
    total = ref_cfg.n_diffusion_steps
    label = f"act, reference size ({n_ref / 1e6:.1f} M params, {total}-step DDPM, 2-pass guidance)"
    ref_model.to(dev)
    add(label, dev, _median_ms(lambda: ref_act(dev, total), 3, dev, warmup=1), "all steps timed")
    ref_model.to("cpu")
    s = args.ddpm_steps
    add(label, "cpu", _median_ms(lambda: ref_act("cpu", s), 3, "cpu", warmup=1) * total / s,
        f"{s} steps timed, x{total / s:g}")
    return rows


def train_row(batch, dev: str, steps: int, overrides: dict[str, Any],
              **changes) -> dict[str, Any]:
    """One whole training run, timed (an exception becomes the row's error)."""
    from benchmarks.madiff_train_rate import time_run
    from diffusion_agents import MADiffConfig

    cfg = MADiffConfig(**{**overrides, **changes, "n_steps": steps, "device": dev})
    label = f"batch {cfg.batch_size}" + (", compile=True" if cfg.compile else "")
    try:
        r = time_run(batch, cfg, max(50, (steps - 5) // 4))
    except Exception as exc:  # e.g. no compiler for inductor
        r = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"}
    row = {"what": f"train, default size, {label}", "device": dev, "steps": steps,
           "batch_size": cfg.batch_size, **r}
    print(row, flush=True)
    return row


def eaq_rows(dataset_id: str, args) -> list[dict[str, Any]]:
    from diffusion_agents.eaq import EAQAugmenter, EAQConfig
    from wrappers import load_episodes

    batch = load_episodes(dataset_id)
    rows = []
    for dev, steps, episodes in ((args.device, args.eaq_steps, args.eaq_episodes),
                                 ("cpu", max(20, args.eaq_steps // 10), max(64, args.eaq_episodes // 8))):
        aug = EAQAugmenter(EAQConfig(n_steps=steps, device=dev))
        t0 = None
        for step, _ in aug.fitter(batch, show_progress=False):
            if step == 9:
                _sync(dev)
                t0 = time.perf_counter()
        _sync(dev)
        fit = (steps - 10) / (time.perf_counter() - t0)
        aug.sample(64, show_progress=False)  # warm-up
        res = aug.sample(episodes, show_progress=False)
        rows.append({"what": "eaq", "device": dev, "fit_steps_per_s": fit,
                     "episodes_per_min": res.num_accepted / res.seconds * 60,
                     "acceptance_rate": res.acceptance_rate, "episodes": res.num_accepted,
                     "fit_steps": steps})
        print(rows[-1], flush=True)
    return rows


def quality(batch, dataset_id: str, args) -> dict[str, Any]:
    from benchmarks.madiff_eval import bootstrap_mean, eval_seed, rollout
    from diffusion_agents import MADiffConfig, MADiffPolicy

    cfg = MADiffConfig(**{**args.overrides, "n_steps": args.quality_steps,
                          "device": args.device})
    t0 = time.perf_counter()
    policy = MADiffPolicy.train(batch, cfg, seed=0, show_progress=False)
    train_s = time.perf_counter() - t0
    env_id = batch.metadata["env_id"]
    kwargs = dict(batch.metadata.get("env_kwargs") or {})
    out: dict[str, Any] = {"dataset": dataset_id, "steps": args.quality_steps,
                           "train_seconds": train_s, "episodes": args.quality_episodes,
                           "first_env_seed": eval_seed(0), "rows": {}}
    for name, pol in (("madiff-d", policy), ("guidance off (w=0)",
                                             policy.with_sampling(guidance_weight=0.0))):
        t0 = time.perf_counter()
        r, _ = rollout(pol, env_id, kwargs, args.quality_episodes, eval_seed(0))
        scores = batch.normalize(r)
        mean, lo, hi = bootstrap_mean([scores])
        out["rows"][name] = {"mean": mean, "ci": [lo, hi], "scores": scores.tolist(),
                             "rollout_seconds": time.perf_counter() - t0}
        print(f"quality {name}: {mean:.1f} [{lo:.1f}, {hi:.1f}]", flush=True)
    diff = np.asarray(out["rows"]["madiff-d"]["scores"]) - np.asarray(
        out["rows"]["guidance off (w=0)"]["scores"])
    out["paired_guidance"] = [float(diff.mean()), *bootstrap_mean([diff])[1:]]
    return out


def _print_tables(res: dict[str, Any]) -> None:
    print(f"\nMADiff / EAQ on {res['device_name']} vs the CPU ({res['cpu_threads']} torch "
          f"threads; {res['cpu_name']}), {res['dataset']}, torch {res['torch']}\n")
    print("| what | device | median | note |\n| --- | --- | ---: | --- |")
    for r in res["act"]:
        print(f"| {r['what']} | {r['device']} | {r['ms']:.2f} ms | {r['note']} |")
    print("\n| training run | device | steps/s (whole run) | samples/s | set-up + 5 steps |")
    print("| --- | --- | ---: | ---: | ---: |")
    for r in res["train"]:
        if "error" in r:
            print(f"| {r['what']} | {r['device']} | failed: {r['error']} | | |")
            continue
        print(f"| {r['what']} | {r['device']} | {r['steps_per_s']:.1f} | "
              f"{r['steps_per_s'] * r['batch_size']:,.0f} | {r['startup_s']:.1f} s |")
    print("\n| EAQ (default config) | device | fit steps/s | accepted episodes/min | acceptance |")
    print("| --- | --- | ---: | ---: | ---: |")
    for r in res["eaq"]:
        print(f"| {r['episodes']} episodes | {r['device']} | {r['fit_steps_per_s']:.1f} | "
              f"{r['episodes_per_min']:,.0f} | {r['acceptance_rate']:.3f} |")
    print(f"\npeak device memory: {res['peak_device_mib']:.0f} MiB")
    q = res.get("quality")
    if q:
        print(f"\nquality, trained on {res['device']} ({q['steps']} steps in "
              f"{q['train_seconds']:.0f} s), {q['episodes']} episodes from env seed "
              f"{q['first_env_seed']}:\n")
        print("| policy | normalized [95 % CI] |\n| --- | --- |")
        for name, r in q["rows"].items():
            print(f"| {name} | {r['mean']:.1f} [{r['ci'][0]:.1f}, {r['ci'][1]:.1f}] |")
        g = q["paired_guidance"]
        print(f"| guidance on minus off, paired | {g[0]:+.1f} [{g[1]:.1f}, {g[2]:.1f}] |")


def run(args) -> int:
    import platform

    import torch

    from diffusion_agents.diffusion import resolve_device
    from diffusion_agents.madiff.policy import _load_batch
    from wrappers import make_env

    dev = resolve_device(args.device)
    args.overrides = json_object(args.config, "--config")
    sections = set(args.sections.split(","))
    unknown = sections - {"act", "train", "eaq", "quality", "compile"}
    if unknown:
        raise SystemExit(f"--sections: unknown {sorted(unknown)}")
    if "eaq" in sections and args.eaq_steps <= 10:
        raise SystemExit("--eaq-steps must be > 10 (the first 10 steps are not timed).")
    torch.set_num_threads(args.cpu_threads)
    batch = _load_batch(args.dataset)
    env = make_env(batch.metadata["env_id"], **dict(batch.metadata.get("env_kwargs") or {}))
    res: dict[str, Any] = {
        "command": "python -m benchmarks.cuda_perf " + " ".join(sys.argv[1:]),
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU",
        "cpu_name": platform.processor() or platform.machine(),
        "cpu_threads": args.cpu_threads, "dataset": args.dataset,
        "torch": torch.__version__, "config_overrides": args.overrides,
    }

    def save() -> None:
        if dev.type == "cuda":
            res["peak_device_mib"] = torch.cuda.max_memory_allocated(dev) / 2**20
        else:
            res.setdefault("peak_device_mib", float("nan"))
        if args.out:
            from benchmarks.harness import write_json_atomic

            write_json_atomic(args.out, res)

    res["act"], res["train"], res["eaq"] = [], [], []
    if "act" in sections:
        res["act"] = act_rows(batch, env, args)
        save()
    n, d = args.train_steps, str(dev)
    if "train" in sections:
        o = args.overrides
        res["train"] = [train_row(batch, d, n, o), train_row(batch, d, n, o, batch_size=256),
                        train_row(batch, "cpu", max(60, n // 4), o)]
        save()
    if "eaq" in sections:
        res["eaq"] = eaq_rows(args.dataset, args)
        save()
    if "quality" in sections and args.quality_steps > 0:
        res["quality"] = quality(batch, args.dataset, args)
        save()
    if "compile" in sections:  # last: its first compilation is the slow part
        res["train"].append(train_row(batch, d, n, args.overrides, compile=True))
        save()
    _print_tables(res)
    if args.out:
        print(f"\nwrote {args.out}")
    print(f"command: {res['command']}\nload average: {os.getloadavg()[0]:.1f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return script_main("benchmarks.cuda_perf", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
