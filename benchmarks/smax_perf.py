"""Env steps per second: the SMAX PettingZoo adapter vs SMAX's native jitted step.

Both run in the same process, on the same scenario, one env (no vmap), so the ratio holds
even on a busy machine. Rows:

- ``native jitted step``: JaxMARL's ``HeuristicEnemySMAX.step`` (jitted, auto-reset inside),
  random action indices on the device, ``block_until_ready`` after every step;
- ``native + host copy``: the same, plus ``jax.device_get`` of the observations, rewards and
  dones, which any NumPy/PyTorch consumer needs;
- ``adapter``: ``wrappers.smax.SMAXParallelEnv.step`` (NumPy observations + masks + state,
  PettingZoo dicts, deaths, mask checks), resetting when the episode ends; legal random
  actions are drawn outside the timed region;
- ``adapter, jit_opt_level=0``: the adapter compiled at XLA optimization level 0.

Each row reports the median over ``--repeats`` runs of ``--steps`` steps, and the one-off
compile time of its first call. Run::

    python -m benchmarks.smax_perf --scenario smacv2_5_units --steps 2000 --repeats 5
    diffusion-agents smax-perf --scenario 3m
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scenario", default="smacv2_5_units", help="SMAX scenario name"
    )
    parser.add_argument("--steps", type=int, default=2000, help="env steps per repeat")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write JSON here")


def _native(
    scenario: str, steps: int, repeats: int, seed: int, host_copy: bool
) -> dict:
    from wrappers.smax import _import_smax

    jax, jnp, smax = _import_smax()
    from jaxmarl.environments.smax.smax_env import MAP_NAME_TO_SCENARIO

    env = smax.HeuristicEnemySMAX(scenario=MAP_NAME_TO_SCENARIO[scenario])
    n_act = env.action_spaces[env.agents[0]].n
    key = jax.random.PRNGKey(seed)
    _, state = env.reset(key)
    acts = jax.random.randint(key, (steps, env.num_agents), 0, n_act, dtype=jnp.int32)
    acts = [{a: acts[t, i] for i, a in enumerate(env.agents)} for t in range(steps)]

    t0 = time.perf_counter()
    for t in range(
        3
    ):  # first calls compile (reset's and step's output states differ in
        key, sub = jax.random.split(key)  # weak types, so the step may compile twice)
        out = env.step(sub, state, acts[t])
        state = out[1]
        jax.block_until_ready(out)
    compile_s = time.perf_counter() - t0

    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for t in range(steps):
            key, sub = jax.random.split(key)
            obs, state, rew, dones, _ = env.step(sub, state, acts[t])
            if host_copy:
                jax.device_get((obs, rew, dones))
            else:
                jax.block_until_ready(state)
        rates.append(steps / (time.perf_counter() - t0))
    return {
        "steps_per_s": statistics.median(rates),
        "runs": rates,
        "compile_s": compile_s,
    }


def _adapter(
    scenario: str, steps: int, repeats: int, seed: int, opt: int | None
) -> dict:
    import numpy as np

    from wrappers.smax import SMAXParallelEnv

    t0 = time.perf_counter()
    env = SMAXParallelEnv(scenario, jit_opt_level=opt)
    obs, _ = env.reset(seed=seed)
    obs, *_ = env.step({a: 4 for a in env.agents})
    compile_s = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    rates, episodes = [], 0
    for _ in range(repeats):
        timed = 0.0
        for _ in range(steps):
            if not env.agents:
                t0 = time.perf_counter()
                obs, _ = env.reset()
                timed += time.perf_counter() - t0
                episodes += 1
            acts = {}
            for a in env.agents:
                legal = np.flatnonzero(obs[a]["action_mask"])
                acts[a] = int(legal[rng.integers(len(legal))])
            t0 = time.perf_counter()
            obs, *_ = env.step(acts)
            timed += time.perf_counter() - t0
        rates.append(steps / timed)
    return {
        "steps_per_s": statistics.median(rates),
        "runs": rates,
        "compile_s": compile_s,
        "episodes": episodes,
    }


def run(args: argparse.Namespace) -> int:
    from wrappers.smax import _import_smax

    jax, _, _ = _import_smax()
    rows: dict[str, dict[str, Any]] = {}
    common = (args.scenario, args.steps, args.repeats, args.seed)
    rows["native jitted step"] = _native(*common, host_copy=False)
    rows["native + host copy"] = _native(*common, host_copy=True)
    rows["adapter"] = _adapter(*common, opt=None)
    rows["adapter, jit_opt_level=0"] = _adapter(*common, opt=0)
    base = rows["native jitted step"]["steps_per_s"]

    cmd = "python -m benchmarks.smax_perf " + " ".join(sys.argv[1:])
    print(
        f"SMAX env steps/s, scenario {args.scenario}, 1 env, median of {args.repeats} x "
        f"{args.steps} steps"
    )
    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPU cores, "
        f"{platform.processor() or platform.machine()}"
    )
    print()
    print("| variant | steps/s (median) | vs native | first-call compile (s) |")
    print("| --- | ---: | ---: | ---: |")
    for name, r in rows.items():
        print(
            f"| {name} | {r['steps_per_s']:,.0f} | {r['steps_per_s'] / base:.2f}x | "
            f"{r['compile_s']:.1f} |"
        )
    print()
    print(f"command: {cmd}")
    if args.out is not None:
        payload = {
            "scenario": args.scenario,
            "steps": args.steps,
            "repeats": args.repeats,
            "jax": jax.__version__,
            "cpu_count": os.cpu_count(),
            "rows": rows,
            "command": cmd,
        }
        tmp = args.out.with_suffix(args.out.suffix + ".tmp")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(payload, indent=2))
        os.replace(tmp, args.out)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
