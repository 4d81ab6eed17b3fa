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

Each row reports the median over ``--repeats`` runs of ``--steps`` steps (the variants take
turns, so a load change hits all of them), steps per second of process CPU time (a steadier
figure on a shared machine: time waiting for a core is not counted), and the one-off compile
time of its first calls. Run::

    python -m benchmarks.smax_perf --scenario smacv2_5_units --steps 2000 --repeats 5
    diffusion-agents smax-perf --scenario 3m
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.cli import script_main


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scenario", default="smacv2_5_units", help="SMAX scenario name"
    )
    parser.add_argument("--steps", type=int, default=2000, help="env steps per repeat")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write JSON here")


class _Native:
    """JaxMARL's own jitted ``step`` (auto-reset inside), random action indices."""

    def __init__(self, scenario: str, steps: int, seed: int, host_copy: bool) -> None:
        from wrappers.smax import _import_smax

        jax, jnp, smax = _import_smax()
        from jaxmarl.environments.smax.smax_env import MAP_NAME_TO_SCENARIO

        self.jax, self.host_copy = jax, host_copy
        self.env = env = smax.HeuristicEnemySMAX(
            scenario=MAP_NAME_TO_SCENARIO[scenario]
        )
        n_act = env.action_spaces[env.agents[0]].n
        self.key = jax.random.PRNGKey(seed)
        _, self.state = env.reset(self.key)
        acts = jax.random.randint(
            self.key, (steps, env.num_agents), 0, n_act, dtype=jnp.int32
        )
        self.acts = [
            {a: acts[t, i] for i, a in enumerate(env.agents)} for t in range(steps)
        ]
        t0 = time.perf_counter()
        for t in range(
            3
        ):  # the first calls compile (reset's and step's output states differ
            self._step(t)  # in weak types, so JaxMARL's step may compile twice)
        self.compile_s = time.perf_counter() - t0

    def _step(self, t: int) -> None:
        jax = self.jax
        self.key, sub = jax.random.split(self.key)
        obs, self.state, rew, dones, _ = self.env.step(sub, self.state, self.acts[t])
        if self.host_copy:
            jax.device_get((obs, rew, dones))
        else:
            jax.block_until_ready(self.state)

    def run(self, steps: int) -> tuple[float, float]:
        t0, c0 = time.perf_counter(), time.process_time()
        for t in range(steps):
            self._step(t)
        return steps / (time.perf_counter() - t0), steps / (time.process_time() - c0)


class _Adapter:
    """``SMAXParallelEnv.step`` (and ``reset`` at episode ends); legal random actions are
    drawn outside the timed region."""

    def __init__(self, scenario: str, seed: int, opt: int | None) -> None:
        import numpy as np

        from wrappers.smax import SMAXParallelEnv

        t0 = time.perf_counter()
        self.env = SMAXParallelEnv(scenario, jit_opt_level=opt)
        self.obs, _ = self.env.reset(seed=seed)
        self.obs, *_ = self.env.step({a: 4 for a in self.env.agents})
        self.compile_s = time.perf_counter() - t0
        self.rng = np.random.default_rng(seed)
        self.episodes = 0

    def run(self, steps: int) -> tuple[float, float]:
        import numpy as np

        env, timed, cpu = self.env, 0.0, 0.0
        for _ in range(steps):
            if not env.agents:
                t0, c0 = time.perf_counter(), time.process_time()
                self.obs, _ = env.reset()
                timed += time.perf_counter() - t0
                cpu += time.process_time() - c0
                self.episodes += 1
            acts = {}
            for a in env.agents:
                legal = np.flatnonzero(self.obs[a]["action_mask"])
                acts[a] = int(legal[self.rng.integers(len(legal))])
            t0, c0 = time.perf_counter(), time.process_time()
            self.obs, *_ = env.step(acts)
            timed += time.perf_counter() - t0
            cpu += time.process_time() - c0
        return steps / timed, steps / cpu


def run(args: argparse.Namespace) -> int:
    from wrappers.smax import _import_smax

    jax, _, _ = _import_smax()
    variants = {
        "native jitted step": _Native(args.scenario, args.steps, args.seed, False),
        "native + host copy": _Native(args.scenario, args.steps, args.seed, True),
        "adapter": _Adapter(args.scenario, args.seed, None),
        "adapter, jit_opt_level=0": _Adapter(args.scenario, args.seed, 0),
    }
    runs: dict[str, list[float]] = {name: [] for name in variants}
    cpu_runs: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):  # interleaved, so every variant sees the same load
        for name, v in variants.items():
            wall, cpu = v.run(args.steps)
            runs[name].append(wall)
            cpu_runs[name].append(cpu)
    rows: dict[str, dict[str, Any]] = {
        name: {
            "steps_per_s": statistics.median(runs[name]),
            "runs": runs[name],
            "steps_per_cpu_s": statistics.median(cpu_runs[name]),
            "cpu_runs": cpu_runs[name],
            "compile_s": v.compile_s,
        }
        for name, v in variants.items()
    }
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
    cpu_base = rows["native jitted step"]["steps_per_cpu_s"]
    print(
        "| variant | steps/s (median) | vs native | steps per CPU-second (median) "
        "| vs native | first-call compile (s) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, r in rows.items():
        print(
            f"| {name} | {r['steps_per_s']:,.0f} | {r['steps_per_s'] / base:.2f}x | "
            f"{r['steps_per_cpu_s']:,.0f} | {r['steps_per_cpu_s'] / cpu_base:.2f}x | "
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
        from benchmarks.harness import write_json_atomic

        write_json_atomic(args.out, payload)
    return 0


def main(argv: list[str] | None = None) -> int:
    return script_main("benchmarks.smax_perf", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
