"""``diffusion-agents perf``: MADiff speed on the CPU (act latency, training throughput, memory).

Everything is measured in one process, so ratios hold even on a busy machine; the table also
prints the load average seen during the run. Rows:

- ``act, default``: ``policy.act(obs)`` for the 3 agents of MPE ``simple_spread_v3`` with the
  default ``MADiffConfig`` (decentralized: one sample per agent, both guidance terms and all
  agents' samples batched into one forward pass per DDIM step); median of ``--repeats`` calls.
- ``act, default, eager sampling loop``: the same, with the sampling loop run eagerly
  instead of as the cached TorchScript graph.
- ``act, same model, 200-step DDPM``: the same policy with ``sampler="ddpm"``,
  ``sampling_steps=None``. Timed over ``--ddpm-steps`` sampling steps and extrapolated to 200
  (the per-step cost is constant), unless ``--full``.
- ``act, reference size``: ``MADiffConfig.reference()`` (width 128, mults 1-4-8, 200 DDPM
  steps, guidance as two forward passes, one batch row per agent as in the official code);
  timed over ``--ddpm-steps`` steps, extrapolated to 200.
- ``train, default, batch 32``: gradient steps per second; ``compile=True``: the same with
  the U-Net compiled (``MADiffConfig.compile``), after its compilation (timed separately;
  inductor caches it across processes, so a second run compiles in seconds); then with
  ``precision="bf16"`` as well (bfloat16 autocast, ``MADiffConfig.precision``).
- ``diffusers DDIMScheduler.step`` vs our sampler loop: per-step overhead with a no-op model.

Weights do not change timings, so the policy is trained for one step on a small recorded
random dataset. The training rows time a few dozen steps right after compilation, before the
EMA starts; they compare rows of one run and overstate whole runs (fourteenth session: 38.2
eager steps/s here against 31.4 over a 10,000-step run), which ``benchmarks.madiff_train_rate``
times.

    diffusion-agents perf --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument(
        "--ddpm-steps",
        type=int,
        default=10,
        help="sampling steps actually timed for the 200-step rows",
    )
    p.add_argument("--full", action="store_true", help="time all 200 DDPM steps")
    p.add_argument("--train-steps", type=int, default=40)
    p.add_argument(
        "--no-compile",
        action="store_true",
        help="skip the compile=True training row (its first compilation takes minutes)",
    )
    p.add_argument(
        "--config", default="{}", help="JSON overrides of the default MADiffConfig"
    )
    p.add_argument("--out", default="benchmarks/results/madiff_perf.json")


CPU_MS: dict[str, float] = {}


def _median_ms(fn, repeats: int, warmup: int = 3, key: str | None = None) -> float:
    """Median wall-clock ms per call; the median process CPU ms goes to ``CPU_MS[key]``.

    With one thread on a shared machine, CPU time estimates the cost on an idle core.
    """
    for _ in range(warmup):
        fn()
    ts, cs = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    if key is not None:
        CPU_MS[key] = 1000 * statistics.median(cs)
    return 1000 * statistics.median(ts)


def alternated_ms(
    steps: dict[str, Callable[[], object]],
    rounds: int,
    calls: int,
    before: Callable[[str], object] | None = None,
) -> dict[str, list[float]]:
    """Milliseconds per call of each named step: per round, one block of ``calls`` calls per
    name, the names' order reversed every other round, so the machine's drift falls evenly
    on all of them. ``before(name)``, untimed, sets up each block (e.g. flips a layout)."""
    ms: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            if before is not None:
                before(name)
            step = steps[name]
            t0 = time.perf_counter()
            for _ in range(calls):
                step()
            ms[name].append((time.perf_counter() - t0) * 1000 / calls)
    return ms


def _rate_json(row: tuple[float, float, float] | str | None) -> dict[str, float] | str | None:
    """A ``train_rate`` result for the JSON (an error text or None passes through)."""
    if isinstance(row, tuple):
        return dict(zip(("steps_per_s", "steps_per_cpu_s", "warmup_seconds"), row))
    return row


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reference_planner(policy, batch):
    """The reference-size network (``MADiffConfig.reference()``: built, not trained, as
    weights do not change timings) for ``policy``'s agents and ``batch``'s statistics.

    Returns ``(act, parameter count, model)``; ``act(device, steps)`` plans as the official
    code acts: one joint sample (one row per agent), ``steps`` DDPM steps, guidance as two
    forward passes. Move the model with ``model.to(device)`` before calling it there."""
    import torch

    from diffusion_agents import MADiffConfig, MADiffPolicy
    from diffusion_agents.madiff.training import fit_statistics

    cfg = MADiffConfig.reference(n_steps=1)
    model = MADiffPolicy._build_model(cfg, policy.info, 0)
    fit_statistics(model, batch)
    model.eval()
    a, d, w = len(policy.agents), model.obs_dim, cfg.window

    def act(device, steps: int) -> None:
        known = torch.zeros(1, a, d, w, dtype=torch.bool, device=device)
        known[..., : cfg.history + 1] = True
        with torch.inference_mode():
            model.plan(
                torch.zeros(1, a, d, w, device=device), known, torch.ones(1, device=device),
                noise=torch.randn(1, a, d, w).to(device), guidance_weight=cfg.guidance_weight,
                sampler="ddpm", steps=steps, batched_guidance=False,
            )

    return act, sum(p.numel() for p in model.parameters()), model


def run(args) -> int:

    import torch

    torch.set_num_threads(args.threads)
    from diffusion_agents import MADiffConfig, MADiffPolicy
    from diffusion_agents.diffusion import GaussianDiffusion
    from wrappers import RandomPolicy, load_episodes, make_env, record_dataset

    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as root:
        old = os.environ.get("MINARI_DATASETS_PATH")
        os.environ["MINARI_DATASETS_PATH"] = root
        try:
            env = make_env("mpe2/simple_spread_v3", N=3)
            ds = record_dataset(
                "mpe2/simple_spread_v3",
                RandomPolicy(env, seed=0),
                20,
                "perf/spread/random-v0",
                env_kwargs={"N": 3},
                show_progress=False,
                num_ref_episodes=2,
            )
            batch = load_episodes(ds)
        finally:
            if old is None:
                os.environ.pop("MINARI_DATASETS_PATH", None)
            else:
                os.environ["MINARI_DATASETS_PATH"] = old
    overrides = json.loads(args.config)
    cfg = MADiffConfig(n_steps=1, **overrides)
    rss_start = _peak_rss_mib()
    policy = MADiffPolicy.train(batch, cfg, show_progress=False)
    n_params = sum(p.numel() for p in policy.model.parameters())
    obs, _ = env.reset(seed=0)
    policy.reset(seed=0)

    rows: list[tuple[str, float, str]] = []
    act_ms = _median_ms(lambda: policy.act(obs), args.repeats, key="act")
    rows.append(
        (
            "act, default (3 agents)",
            act_ms,
            f"{cfg.sampler} x{cfg.sampling_steps}, {n_params / 1e6:.2f} M params",
        )
    )
    rss_act = _peak_rss_mib()
    eager = policy.with_sampling(traced=False)
    eager_ms = _median_ms(lambda: eager.act(obs), args.repeats, key="eager")
    rows.append(
        ("act, default, eager sampling loop", eager_ms, "with_sampling(traced=False)")
    )

    def per_step_ms(pol, steps_timed: int, total: int) -> float:
        timed = (
            pol.with_sampling(sampler="ddpm", sampling_steps=steps_timed)
            if not args.full
            else pol
        )
        ms = _median_ms(
            lambda: timed.act(obs), max(3, args.repeats // 10), warmup=1, key="ddpm"
        )
        if not args.full:
            CPU_MS["ddpm"] *= total / steps_timed
        return ms if args.full else ms * total / steps_timed

    k = cfg.n_diffusion_steps
    ddpm = policy.with_sampling(sampler="ddpm", sampling_steps=None)
    ddpm_ms = per_step_ms(ddpm, args.ddpm_steps, k)
    how = (
        "all steps timed"
        if args.full
        else f"{args.ddpm_steps} steps timed, x{k / args.ddpm_steps:g}"
    )
    rows.append((f"act, same model, {k}-step DDPM", ddpm_ms, how))
    print(f"act, {k}-step DDPM: {ddpm_ms:.1f} ms ({how})", flush=True)

    ref_act, ref_params, ref_model = reference_planner(policy, batch)
    ref_cfg = ref_model.config
    steps_timed = ref_cfg.n_diffusion_steps if args.full else args.ddpm_steps
    ref_ms = _median_ms(lambda: ref_act("cpu", steps_timed), 3, warmup=1, key="ref") * (
        ref_cfg.n_diffusion_steps / steps_timed
    )
    rows.append(
        (
            f"act, reference size ({ref_params / 1e6:.1f} M params, 200-step DDPM, "
            "2-pass guidance)",
            ref_ms,
            how,
        )
    )
    CPU_MS["ref"] *= ref_cfg.n_diffusion_steps / steps_timed
    rss_ref = _peak_rss_mib()
    print(f"act, reference size: {ref_ms:.1f} ms ({how})", flush=True)

    # training throughput at the default size, eager and with the U-Net compiled
    def train_rate(**changes) -> tuple[float, float, float]:
        """(steps/s, steps per CPU-second, seconds to the end of the 5 warm-up steps)."""
        tcfg = MADiffConfig(n_steps=args.train_steps + 5, batch_size=32, **{**overrides, **changes})
        t_start = [0.0, 0.0]
        t0 = time.perf_counter()

        def cb(step, metrics):
            if step == 5:
                t_start[:] = [time.perf_counter(), time.process_time()]

        MADiffPolicy.train(batch, tcfg, show_progress=False, callback=cb)
        return (
            args.train_steps / (time.perf_counter() - t_start[0]),
            args.train_steps / (time.process_time() - t_start[1]),
            t_start[0] - t0,
        )

    train_sps, train_sps_cpu, _ = train_rate()
    rss_train = _peak_rss_mib()
    # compiled rows: float32, then bf16 autocast (MADiffConfig.precision; its worth depends
    # on the CPU's bf16 support, so it is measured rather than assumed)
    compiled_variants = (  # (row label, JSON key, MADiffConfig changes)
        ("compile=True", "train_compiled", {"compile": True}),
        ("compile=True, precision=bf16", "train_compiled_bf16",
         {"compile": True, "precision": "bf16"}),
    )
    compiled_rows: dict[str, tuple[float, float, float] | str] = {}
    if not args.no_compile:
        for label, _, changes in compiled_variants:
            try:
                compiled_rows[label] = train_rate(**changes)
            except Exception as exc:  # no C++ compiler, unsupported platform, ...
                compiled_rows[label] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
            print(f"train, {label}: {compiled_rows[label]}", flush=True)

    # per-step sampler overhead: ours vs diffusers' DDIMScheduler.step, no-op model
    x_shape = (18, cfg.window, 18)
    ours = GaussianDiffusion(n_timesteps=200, prediction="x0")
    ours_ms = (
        _median_ms(lambda: ours.sample(lambda x, t: x, x_shape, steps=50), 20) / 50
    )
    try:
        from diffusers import DDIMScheduler

        sched = DDIMScheduler(
            num_train_timesteps=200,
            beta_schedule="squaredcos_cap_v2",
            prediction_type="sample",
            clip_sample=True,
        )
        sched.set_timesteps(50)

        def diffusers_loop():
            x = torch.randn(x_shape)
            for t in sched.timesteps:
                x = sched.step(x, t, x).prev_sample

        diff_ms = _median_ms(diffusers_loop, 20) / 50
    except ImportError:
        diff_ms = float("nan")
    load1 = os.getloadavg()[0]

    print(
        f"\nMADiff CPU performance ({args.threads} threads; load average {load0:.1f} "
        f"-> {load1:.1f}; medians)"
    )
    keys = ("act", "eager", "ddpm", "ref")
    cpu = {k: CPU_MS.get(k, float("nan")) for k in keys}
    print("| what | median wall | median process CPU | vs default act | notes |")
    print("| --- | --- | --- | --- | --- |")
    for (name, ms, note), key in zip(rows, keys):
        print(
            f"| {name} | {ms:.1f} ms | {cpu[key]:.1f} ms | x{ms / act_ms:.1f} | {note} |"
        )
    print(
        f"| train, default, batch 32 | {train_sps:.1f} steps/s | {train_sps_cpu:.1f} "
        f"steps per CPU-second | | {args.train_steps} steps after 5 warm-up |"
    )
    for label, compiled in compiled_rows.items():
        if isinstance(compiled, tuple):
            print(
                f"| train, default, batch 32, {label} | {compiled[0]:.1f} steps/s | "
                f"{compiled[1]:.1f} steps per CPU-second | x{compiled[0] / train_sps:.2f} vs "
                f"eager | compilation + 5 warm-up steps: {compiled[2]:.0f} s |"
            )
        else:
            print(f"| train, default, batch 32, {label} | failed: {compiled} | | | |")
    print(
        f"| peak RSS | {rss_act:.0f} MiB (default act), {rss_ref:.0f} MiB (+ reference "
        f"model), {rss_train:.0f} MiB (+ training) | | | process start "
        f"{rss_start:.0f} MiB |"
    )
    print(
        f"| sampler overhead per step (no-op model) | ours {1000 * ours_ms:.0f} us | "
        f"diffusers DDIMScheduler.step {1000 * diff_ms:.0f} us | | |"
    )
    out = {
        "threads": args.threads,
        "load_avg": [load0, load1],
        "config": cfg.to_dict(),
        "params": n_params,
        "reference_params": ref_params,
        "act_ms": act_ms,
        "ddpm_act_ms": ddpm_ms,
        "reference_act_ms": ref_ms,
        "extrapolated": not args.full,
        "train_steps_per_s": train_sps,
        "cpu_ms": cpu,
        "train_steps_per_cpu_s": train_sps_cpu,
        **{key: _rate_json(compiled_rows.get(label)) for label, key, _ in compiled_variants},
        "peak_rss_mib": {"act": rss_act, "reference": rss_ref, "train": rss_train},
        "sampler_step_us": {"ours": 1000 * ours_ms, "diffusers": 1000 * diff_ms},
    }
    from benchmarks.harness import write_json_atomic

    write_json_atomic(args.out, out)
    print(f"\nwrote {args.out}")

    return 0
