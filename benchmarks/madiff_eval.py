"""``diffusion-agents madiff``: MADiff-D vs behaviour cloning vs the data, with guidance on/off.

For each training seed: train MADiff-D and BC on the same dataset, then roll each policy out
for ``--episodes`` episodes in the dataset's env. Scores are normalized with the dataset's
``ref_min_score`` / ``ref_max_score``; the table shows the mean over all seed x episode scores
with a 95 % stratified-bootstrap interval (episodes resampled within seeds). Rows:

- ``madiff-d``: the default config (few-step DDIM, guidance weight ``w`` and target return);
- ``madiff-d, guidance off``: the same trained model sampled unconditionally (``w = 0``);
- ``madiff-d, 200-step DDPM`` (``--ddpm-episodes N``): the same model, reference sampler;
- ``bc``: the leaderboard's behaviour cloning (``benchmarks.algorithms.bc``), greedy;
- ``bc, sampled actions``: the same, actions drawn from its softmax (``bc_sampled``, the
  well-tuned BC on data from a stochastic behaviour policy);
- ``dataset``: the dataset's own episode returns.

It also reports teammate modeling: the error of each agent's predicted next observation of
its teammates against what happened, beside two "teammate stays put" predictors:

- privileged: ``o_j,t+1 = o_j,t``, the teammate's true current observation, which a
  decentralized agent never sees;
- same information: ``o_j,t+1 = ô_j,t``, agent ``i``'s own sample's estimate of the teammate's
  current observation (the plan's entry at ``t``). The model's predicted step should beat
  this one: it measures whether the plan's teammate dynamics carry information.

If the dataset does not exist and ``--record-own`` is given, a scripted MPE spread dataset is
recorded first (``mpe2/simple_spread/scripted-medium-v0``: agent ``i`` walks to landmark ``i``
with a proportional controller and takes a random action with probability ``--eps``; the
expert reference is the same controller with ``eps = 0``).

    diffusion-agents madiff --dataset mpe2/simple_spread/medium-v0 --seeds 3 --episodes 20
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

SCRIPTED_ID = "mpe2/simple_spread/scripted-medium-v0"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="mpe2/simple_spread/medium-v0")
    p.add_argument(
        "--record-own",
        action="store_true",
        help=f"record {SCRIPTED_ID} (scripted, eps-random) if --dataset is missing",
    )
    p.add_argument("--data-episodes", type=int, default=500)
    p.add_argument(
        "--eps", type=float, default=0.5, help="random-action rate (scripted)"
    )
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument(
        "--seed-start",
        type=int,
        default=0,
        help="first training seed (run seeds in separate processes, then --merge)",
    )
    p.add_argument(
        "--merge",
        nargs="+",
        default=None,
        metavar="JSON",
        help="combine the JSON outputs of earlier runs into one table",
    )
    p.add_argument(
        "--episodes", type=int, default=20, help="evaluation episodes per seed"
    )
    p.add_argument("--steps", type=int, default=3000, help="MADiff gradient steps")
    p.add_argument("--bc-steps", type=int, default=2000)
    p.add_argument(
        "--ddpm-episodes",
        type=int,
        default=0,
        help="episodes per seed for the 200-step DDPM row (slow; 0 = skip)",
    )
    p.add_argument("--config", default="{}", help="JSON overrides of MADiffConfig")
    p.add_argument(
        "--variants",
        default="{}",
        metavar="JSON",
        help='extra rows: {"name": {with_sampling kwargs}}, e.g. '
        '\'{"ddim x5": {"sampling_steps": 5}}\' (same trained models)',
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results/madiff_eval.json")
    p.add_argument("--show-progress", action="store_true")


class ScriptedSpreadPolicy:
    """MPE ``simple_spread``: agent ``i`` heads for landmark ``i``; random with prob ``eps``.

    Observation layout (MPE2): ``[vel(2), pos(2), landmark_rel(2N), other_rel(2N-2), comm]``;
    actions: 0 no-op, 1 left, 2 right, 3 down, 4 up.
    """

    def __init__(self, agents: list[str], eps: float = 0.0, seed: int = 0) -> None:
        self.agents = list(agents)
        self.eps = eps
        self.rng = np.random.default_rng(seed)
        self.name = f"scripted-spread-eps{eps:g}"

    def reset(self) -> None:
        pass

    def act(self, obs: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for agent, o in obs.items():
            i = self.agents.index(agent)
            if self.rng.random() < self.eps:
                out[agent] = np.int64(self.rng.integers(5))
                continue
            rel = o[4 + 2 * i : 6 + 2 * i] - 0.6 * o[0:2]
            if np.abs(rel).max() < 0.05:
                out[agent] = np.int64(0)
            elif abs(rel[0]) > abs(rel[1]):
                out[agent] = np.int64(2 if rel[0] > 0 else 1)
            else:
                out[agent] = np.int64(4 if rel[1] > 0 else 3)
        return out


def _ensure_dataset(args) -> str:
    import minari

    from wrappers import make_env, record_dataset

    if args.dataset in minari.list_local_datasets():
        return args.dataset
    if not args.record_own:
        raise SystemExit(
            f"Dataset {args.dataset!r} is not in the local Minari root. Build it with "
            "`diffusion-agents datasets make --env mpe2/simple_spread_v3`, or pass "
            f"--record-own to record the scripted {SCRIPTED_ID!r}."
        )
    if SCRIPTED_ID in minari.list_local_datasets():
        return SCRIPTED_ID
    env = make_env("mpe2/simple_spread_v3", N=3)
    agents = list(env.possible_agents)
    record_dataset(
        "mpe2/simple_spread_v3",
        ScriptedSpreadPolicy(agents, args.eps, seed=1),
        args.data_episodes,
        SCRIPTED_ID,
        env_kwargs={"N": 3},
        expert_policy=ScriptedSpreadPolicy(agents, 0.0, seed=2),
        num_ref_episodes=50,
        behaviour_policy=f"scripted spread, eps={args.eps}",
        show_progress=True,
    )
    return SCRIPTED_ID


def rollout(
    policy,
    env_id: str,
    env_kwargs: dict,
    episodes: int,
    seed: int,
    teammates: bool = False,
) -> tuple[np.ndarray, dict[str, float]]:
    """Team returns (mean reward over agents, summed over steps) and teammate errors."""
    from wrappers import make_env

    env = make_env(env_id, **env_kwargs)
    returns = []
    err_model, err_stay, err_same, n_err = 0.0, 0.0, 0.0, 0
    err_own, err_own_stay, n_own = 0.0, 0.0, 0
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        policy.reset()
        total = 0.0
        while env.agents:
            actions = policy.act(obs)
            own = policy.predicted_futures() if teammates else None  # {i: {j: future}}
            now = policy.teammate_estimates() if teammates else None
            prev = obs
            obs, rew, *_ = env.step(actions)
            total += float(np.mean([rew[a] for a in rew])) if rew else 0.0
            for i, by_j in (own or {}).items():
                for j, future in by_j.items():
                    if j not in obs or j not in prev:
                        continue
                    nxt = np.asarray(obs[j], np.float64)
                    err = float(np.mean((future[0] - nxt) ** 2))
                    stay = float(np.mean((np.asarray(prev[j]) - nxt) ** 2))
                    if j == i:  # the agent's own next observation (its action's source)
                        err_own, err_own_stay, n_own = err_own + err, err_own_stay + stay, n_own + 1
                    else:
                        err_model, err_stay, n_err = err_model + err, err_stay + stay, n_err + 1
                        err_same += float(np.mean((now[i][j] - nxt) ** 2))
        returns.append(total)
    tm = {}
    if n_err:
        tm = {
            "mse_model": err_model / n_err,
            "mse_stay": err_stay / n_err,
            "mse_stay_same_info": err_same / n_err,
            "mse_own": err_own / max(n_own, 1),
            "mse_own_stay": err_own_stay / max(n_own, 1),
            "pairs": n_err,
        }
    return np.asarray(returns), tm


def bootstrap_mean(per_seed: list[np.ndarray], reps: int = 2000, seed: int = 0):
    """Mean of all scores and a 95 % interval, resampling episodes within each seed."""
    rng = np.random.default_rng(seed)
    allv = np.concatenate(per_seed)
    stats = []
    for _ in range(reps):
        stats.append(np.mean(np.concatenate([rng.choice(s, len(s)) for s in per_seed])))
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return float(allv.mean()), float(lo), float(hi)


DDPM_ROW = "madiff-d, 200-step DDPM"
PAIRED_DDPM = "madiff-d minus 200-step DDPM (paired episodes)"


def eval_seed(seed: int) -> int:
    """First env seed of training seed ``seed``'s evaluation episodes (episode ``e``: + e)."""
    return 10_000 * (seed + 1)
# (row, minus this row): differences on the same evaluation episodes of the same seeds
PAIRED = (
    ("madiff-d", "bc, sampled actions"),
    ("madiff-d", "bc"),
    ("madiff-d", "madiff-d, guidance off (w=0)"),
)


def _paired_rows(rows: dict[str, list[np.ndarray]]) -> dict[str, tuple[list, tuple]]:
    """Paired differences (two-level bootstrap, ``benchmarks.stats``): name -> (seeds, est)."""
    from benchmarks.stats import paired_difference

    out = {}
    for a, b in PAIRED:
        if a in rows and b in rows and len(rows[a]) == len(rows[b]):
            e = paired_difference(rows[a], rows[b])
            out[f"{a} minus {b} (paired episodes)"] = (rows[a], (e.value, e.low, e.high))
    ddpm = rows.get(DDPM_ROW)
    if ddpm:
        # the DDPM episodes replay the first episodes' env seeds of the same trained model:
        # the paired difference bounds what the few-step sampler loses
        few = [np.asarray(f[: len(r)]) for f, r in zip(rows["madiff-d"], ddpm)]
        e = paired_difference(few, [np.asarray(r) for r in ddpm])
        out[PAIRED_DDPM] = (ddpm, (e.value, e.low, e.high))
    return out


def _print_table(title, rows, dataset_scores, teammate):
    table = {k: bootstrap_mean(v) for k, v in rows.items()}
    table["dataset (behaviour policy)"] = bootstrap_mean([np.asarray(dataset_scores)])
    paired = _paired_rows(rows)
    table.update({k: est for k, (_, est) in paired.items()})
    print("\n" + title)
    print("| policy | normalized score | 95% CI | seeds |")
    print("| --- | --- | --- | --- |")
    for k, (m, lo, hi) in table.items():
        seeds = rows.get(k, paired[k][0] if k in paired else None)
        print(f"| {k} | {m:.1f} | [{lo:.1f}, {hi:.1f}] | {len(seeds) if seeds else '-'} |")
    teammate = [t for t in teammate if t]
    if teammate:
        mm = np.mean([t["mse_model"] for t in teammate])
        ms = np.mean([t["mse_stay"] for t in teammate])
        same = [t["mse_stay_same_info"] for t in teammate if "mse_stay_same_info" in t]
        print(
            f"\nteammate next-observation MSE: model {mm:.4f} vs stays-put {ms:.4f} "
            f"(privileged: the teammate's true o_t; ratio {mm / ms:.2f}; "
            f"{sum(t['pairs'] for t in teammate)} agent pairs x steps)"
        )
        own = [t for t in teammate if "mse_own" in t]
        if own:
            mo = float(np.mean([t["mse_own"] for t in own]))
            mos = float(np.mean([t["mse_own_stay"] for t in own]))
            print(
                f"  own next observation (the one its action is decoded from): model "
                f"{mo:.4f} vs stays-put {mos:.4f} (ratio {mo / mos:.2f})"
            )
        if same:
            mss = float(np.mean(same))
            print(
                f"  vs stays-put on the same information (the plan's own o_t estimate): "
                f"{mss:.4f} (ratio {mm / mss:.2f})"
            )
    return table


def _merge(args) -> int:
    runs = [json.loads(Path(p).read_text()) for p in args.merge]
    rows: dict[str, list[np.ndarray]] = {}
    for r in runs:
        for k, v in r["scores"].items():
            rows.setdefault(k, []).extend(np.asarray(x) for x in v)
    teammate = [t for r in runs for t in r["teammate"]]
    first = runs[0]
    title = (
        f"MADiff evaluation on {first['dataset']} (merged {len(args.merge)} runs; "
        f"{len(rows['madiff-d'])} seeds x {first['episodes']} episodes; MADiff "
        f"{first['config']['n_steps']} steps, BC {first['bc_steps']} steps)"
    )
    table = _print_table(title, rows, first["dataset_scores"], teammate)
    out = {
        "merged": args.merge,
        "seeds": [r.get("seed_start") for r in runs],
        "commands": [r.get("command") for r in runs],
        "per_seed": {k: [float(x.mean()) for x in v] for k, v in rows.items()},
        "table": {
            k: {"mean": m, "low": lo, "high": hi} for k, (m, lo, hi) in table.items()
        },
        # per-episode normalized scores (seed-major, each seed's evaluation episodes in
        # order), so that later runs on the same seeds can be paired with these
        "scores": {k: [np.round(x, 4).tolist() for x in v] for k, v in rows.items()},
    }
    from benchmarks.harness import write_json_atomic

    write_json_atomic(args.out, out)
    print(f"\nwrote {args.out}")
    return 0


def run(args) -> int:
    import torch

    from benchmarks.algorithms import TrainContext
    from benchmarks.algorithms.bc import train_bc
    from benchmarks.algorithms.options import BCConfig
    from diffusion_agents import MADiffConfig, MADiffPolicy
    from wrappers import load_episodes

    if args.merge:
        return _merge(args)
    torch.set_num_threads(args.threads)
    dataset_id = _ensure_dataset(args)
    batch = load_episodes(dataset_id)
    env_id = batch.metadata["env_id"]
    env_kwargs = dict(batch.metadata.get("env_kwargs") or {})
    norm = batch.normalize
    cfg = MADiffConfig(n_steps=args.steps, **json.loads(args.config))
    rows: dict[str, list[np.ndarray]] = {}
    teammate: list[dict[str, float]] = []
    timings: dict[str, float] = {}
    for seed in range(args.seed_start, args.seed_start + args.seeds):
        t0 = time.perf_counter()
        policy = MADiffPolicy.train(
            batch, cfg, seed=seed, show_progress=args.show_progress
        )
        timings[f"madiff_train_s_seed{seed}"] = time.perf_counter() - t0
        first_env = eval_seed(seed)
        r, tm = rollout(
            policy, env_id, env_kwargs, args.episodes, first_env, teammates=True
        )
        rows.setdefault("madiff-d", []).append(norm(r))
        teammate.append(tm)
        off = policy.with_sampling(guidance_weight=0.0)
        r, _ = rollout(off, env_id, env_kwargs, args.episodes, first_env)
        rows.setdefault("madiff-d, guidance off (w=0)", []).append(norm(r))
        for name, kwargs in json.loads(args.variants).items():
            r, _ = rollout(
                policy.with_sampling(**kwargs), env_id, env_kwargs, args.episodes, first_env
            )
            rows.setdefault(f"madiff-d, {name}", []).append(norm(r))
        if args.ddpm_episodes:
            ddpm = policy.with_sampling(sampler="ddpm", sampling_steps=None)
            r, _ = rollout(ddpm, env_id, env_kwargs, args.ddpm_episodes, first_env)
            rows.setdefault(DDPM_ROW, []).append(norm(r))
        for name, sample in (("bc", False), ("bc, sampled actions", True)):
            ctx = TrainContext(
                dataset_id=dataset_id,
                source_dataset_id=dataset_id,
                env_id=env_id,
                env_kwargs=env_kwargs,
                seed=seed,
                config=BCConfig(steps=args.bc_steps, sample=sample),
            )
            ctx._batch = batch
            bc = train_bc(ctx)
            r, _ = rollout(bc, env_id, env_kwargs, args.episodes, first_env)
            rows.setdefault(name, []).append(norm(r))
        print(
            f"seed {seed} done: "
            + ", ".join(f"{k} {v[-1].mean():.1f}" for k, v in rows.items()),
            flush=True,
        )
    dataset_scores = norm(batch.returns)
    title = (
        f"MADiff evaluation on {dataset_id} ({args.seeds} seeds x {args.episodes} "
        f"episodes; MADiff {args.steps} steps, BC {args.bc_steps} steps)"
    )
    table = _print_table(title, rows, dataset_scores, teammate)
    out = {
        "dataset": dataset_id,
        "seeds": args.seeds,
        "episodes": args.episodes,
        "config": cfg.to_dict(),
        "bc_steps": args.bc_steps,
        "seed_start": args.seed_start,
        "table": {
            k: {"mean": m, "low": lo, "high": hi} for k, (m, lo, hi) in table.items()
        },
        "per_seed": {k: [float(x.mean()) for x in v] for k, v in rows.items()},
        "scores": {k: [x.tolist() for x in v] for k, v in rows.items()},
        "dataset_scores": dataset_scores.tolist(),
        "teammate": teammate,
        "timings": timings,
        "command": "diffusion-agents madiff "
        + " ".join(
            f"--{k.replace('_', '-')} {v}"
            for k, v in vars(args).items()
            if k not in ("command", "_module") and v not in (False, None)
        ),
    }
    from benchmarks.harness import write_json_atomic

    write_json_atomic(args.out, out)
    print(f"\nwrote {args.out}")
    return 0
