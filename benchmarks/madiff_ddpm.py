"""More 200-step DDPM episodes for one seed's ``diffusion-agents madiff`` report.

    python -m benchmarks.madiff_ddpm REPORT.json --episodes 64 --out EXTENDED.json
        [--checkpoint CKPT | --save-checkpoint CKPT] [--threads 1]

The 200-step DDPM row is the slow one (about 18 s per MPE spread episode on one core), so an
evaluation run gives it fewer episodes than the other rows, and its paired difference with
the few-step default is the widest interval in the table. This tool adds episodes to that
row without re-running the rest:

1. it rebuilds the report's MADiff-D: trains it again from the report's config and training
   seed (``--checkpoint`` loads a saved one instead; ``--save-checkpoint`` keeps the retrained
   one for later extensions);
2. it rolls the rebuilt policy on the report's first ``--check`` evaluation episodes and
   refuses (exit 1, nothing written) unless it reproduces the report's default-row scores
   exactly: the new DDPM episodes must come from the model the report scored;
3. it rolls the 200-step DDPM sampler on the next ``--episodes`` evaluation episodes (those
   after the report's own DDPM episodes, same env seeds as the default row) and writes the
   report with the DDPM row extended and the extension recorded under ``ddpm_extension``.

``diffusion-agents madiff --merge`` reads the result like any other report; its paired
difference takes the default row's scores on the same episodes. Retraining reproduces a
model only with the report's thread count and the same torch build (compiled training:
also the same inductor), which step 2 checks. Eager training changed its float rounding in
the thirty-third session (``TemporalUNet.nhwc``); eager reports from before it do not
reproduce, compiled ones (``"compile": true``, as in the README's command) still do.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any


def report_seed(report: dict[str, Any]) -> int:
    """The report's training seed: its ``seed_start``, or ``--seed-start`` in its command."""
    if "seed_start" in report:
        return int(report["seed_start"])
    m = re.search(r"--seed-start (\d+)", report.get("command", ""))
    return int(m.group(1)) if m else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("report", help="one seed's JSON report of `diffusion-agents madiff`")
    p.add_argument("--episodes", type=int, required=True, help="DDPM episodes to add")
    p.add_argument("--check", type=int, default=10, help="default-row episodes to reproduce")
    p.add_argument("--checkpoint", default=None, help="load this policy instead of retraining")
    p.add_argument("--save-checkpoint", default=None, help="save the retrained policy here")
    p.add_argument("--threads", type=int, default=1, help="as in the report's run")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from benchmarks.harness import write_json_atomic
    from benchmarks.madiff_eval import DDPM_ROW, eval_seed, rollout
    from diffusion_agents import MADiffConfig, MADiffPolicy
    from wrappers import load_episodes

    path = Path(args.report)
    report = json.loads(path.read_text())
    scores = report.get("scores", {})
    if len(scores.get("madiff-d", [])) != 1:
        print(f"madiff_ddpm: {path} is not a one-seed report (run `diffusion-agents madiff "
              "--seeds 1 --seed-start S`)", file=sys.stderr)
        return 2
    default = scores["madiff-d"][0]
    old_ddpm = scores.get(DDPM_ROW, [[]])[0]
    done = len(old_ddpm)
    start, stop = done, done + args.episodes
    if args.episodes < 1 or stop > len(default):
        print(f"madiff_ddpm: --episodes {args.episodes} must be 1..{len(default) - done}: the "
              f"report has {len(default)} default-row episodes, {done} of them with DDPM",
              file=sys.stderr)
        return 2
    check = min(args.check, len(default))
    seed = report_seed(report)
    batch = load_episodes(report["dataset"])
    env_id = batch.metadata["env_id"]
    env_kwargs = dict(batch.metadata.get("env_kwargs") or {})
    t0 = time.perf_counter()
    if args.checkpoint:
        policy = MADiffPolicy.load(args.checkpoint)
    else:
        cfg = MADiffConfig.from_dict(report["config"])
        policy = MADiffPolicy.train(batch, cfg, seed=seed, show_progress=True)
        if args.save_checkpoint:
            policy.save(args.save_checkpoint)
    train_s = time.perf_counter() - t0
    first_env = eval_seed(seed)
    r, _ = rollout(policy, env_id, env_kwargs, check, first_env, teammates=True)
    mine = batch.normalize(r)
    if not np.array_equal(mine, np.asarray(default[:check])):
        print(f"madiff_ddpm: the rebuilt seed-{seed} policy does not reproduce {path}'s first "
              f"{check} default-row scores ({np.round(mine[:3], 3).tolist()} vs "
              f"{np.round(default[:3], 3).tolist()}); other threads, torch or inductor? "
              "Nothing written.", file=sys.stderr)
        return 1
    print(f"seed {seed}: reproduced the first {check} default-row episodes", flush=True)
    ddpm = policy.with_sampling(sampler="ddpm", sampling_steps=None)
    t1 = time.perf_counter()
    r, _ = rollout(ddpm, env_id, env_kwargs, args.episodes, first_env + start)
    new = batch.normalize(r).tolist()
    ddpm_s = time.perf_counter() - t1
    out = dict(report)
    out["scores"] = {**scores, DDPM_ROW: [old_ddpm + new]}
    out["per_seed"] = {k: [float(np.mean(v[0]))] for k, v in out["scores"].items()}
    out["ddpm_extension"] = {
        **report.get("ddpm_extension", {}),
        f"{start}-{stop - 1}": {
            "command": "python -m benchmarks.madiff_ddpm " + " ".join(argv or sys.argv[1:]),
            "seed": seed,
            "reproduced_default_episodes": check,
            "rebuild_seconds": train_s,
            "ddpm_seconds": ddpm_s,
        },
    }
    diff = np.asarray(default[start:stop]) - np.asarray(new)
    sd = f" (per-episode sd {diff.std(ddof=1):.1f})" if diff.size > 1 else ""
    print(f"episodes {start}-{stop - 1}: DDPM {np.mean(new):.1f}, default "
          f"{np.mean(default[start:stop]):.1f}, default minus DDPM {diff.mean():.1f}{sd}")
    write_json_atomic(args.out, out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
