"""Does Q-total guidance raise the return of EAQ's samples? A bimodal toy, several seeds.

    python -m benchmarks.eaq_guidance_toy [--max-cycles 12] [--seeds 0,1,2] [--n-steps 4000]
        [--variants JSON] [--samples 256] [--workers 2]
        [--out benchmarks/results/eaq_guidance_toy.json]

The data: MPE spread with 2 agents, where each episode's agents all walk towards their
landmarks or all walk away (p = 0.5, :class:`TowardsOrAway`), so the data has a better and a
worse mode. Each variant (``EAQConfig`` fields over the base below) is fitted per seed on the
same episodes, and ``--samples`` accepted samples (sampling seed 1) are scored by:

- ``return``: the mean generated return (decoded reward rows), what an offline learner reads;
  ``return_se`` its standard error over the samples;
- ``towards``: the share of sampled episodes in the better mode (most of their steps take the
  action the towards rule gives for the generated observations);
- ``ret_towards`` / ``ret_away``: the mean generated return within each mode;
- ``distance``: the spread task's distance term, ``-sum_l min_a |landmark l - agent a|``
  summed over the steps, recomputed from the generated observations (what the observations
  imply, whatever the reward rows say);
- ``q``: ``Q_phi``'s estimate at ``t = 0`` (what ``L_Qtot`` optimizes).

Each fit runs on one thread; ``--workers`` fits run at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

FLIP = {0: 0, 1: 2, 2: 1, 3: 4, 4: 3}

BASE = {
    "n_steps": 4000, "batch_size": 32, "dim": 32, "dim_mults": [1, 2], "q_hidden": 64,
    "q_warmup_steps": 500, "learning_rate": 1e-3, "n_diffusion_steps": 50,
    "sample_steps": 10, "sample_batch_size": 256,
}
VARIANTS = [
    {"q_weight": 0.0},
    {"q_weight": 0.3},
    {"q_weight": 1.0},
    {"q_weight": 0.3, "q_conservative": 0.03},
    {"q_weight": 1.0, "q_conservative": 0.03},
]


class TowardsOrAway:
    """Per episode: every agent walks towards its landmark (p=0.5) or away from it."""

    name = "towards-or-away"

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.towards = True

    def reset(self) -> None:
        self.towards = bool(self.rng.random() < 0.5)

    def act(self, obs):
        out = {}
        for agent, o in obs.items():
            i = int(agent.split("_")[1])
            rel = o[4 + 2 * i : 6 + 2 * i] - 0.5 * o[0:2]  # landmark i, minus some velocity
            if abs(rel[0]) > abs(rel[1]):
                a = 2 if rel[0] > 0 else 1
            else:
                a = 4 if rel[1] > 0 else 3
            out[agent] = np.int64(a if self.towards else FLIP[a])
        return out


def record_towards_or_away(dataset_id: str, episodes: int, max_cycles: int, seed: int = 0):
    """A 2-agent MPE spread dataset recorded with :class:`TowardsOrAway`."""
    from wrappers import record_dataset

    return record_dataset(
        "mpe2/simple_spread_v3", TowardsOrAway(seed=seed), episodes, dataset_id,
        env_kwargs={"N": 2, "max_cycles": max_cycles}, ref_min_score=-10.0, ref_max_score=0.0,
        show_progress=False,
    )


def towards_share(batch) -> np.ndarray:
    """``(E,)`` per episode, the share of agent-steps whose action is the towards rule's for
    the episode's own observations."""
    rule = TowardsOrAway()
    acts = batch.actions[..., 0].astype(int)
    out = np.zeros(batch.num_episodes)
    for e in range(batch.num_episodes):
        n = int(batch.lengths[e])
        hits = [
            rule.act({a: batch.obs[e, t, i] for i, a in enumerate(batch.agents)})[a] == acts[e, t, i]
            for t in range(n)
            for i, a in enumerate(batch.agents)
        ]
        out[e] = float(np.mean(hits))
    return out


def distance_return(batch) -> np.ndarray:
    """``(E,)`` the spread distance term summed over each episode, from its observations
    after each step (agent i's landmarks sit at columns ``4 : 4 + 2 N``)."""
    n = batch.num_agents
    obs = batch.obs[:, 1:].astype(np.float64)  # (E, T, A, D): the reward follows the step
    dist = np.stack(
        [np.linalg.norm(obs[..., 4 + 2 * m : 6 + 2 * m], axis=-1) for m in range(n)], axis=-1
    )  # (E, T, A, landmarks)
    term = -dist.min(axis=2).sum(axis=-1)
    return (term * batch.valid).sum(axis=1)


def score(batch, q: np.ndarray | None = None) -> dict[str, float]:
    share = towards_share(batch)
    hi = share > 0.5
    ret = batch.returns
    return {
        "episodes": int(batch.num_episodes),
        "return": float(ret.mean()),
        "return_se": float(ret.std(ddof=1) / np.sqrt(len(ret))) if len(ret) > 1 else float("nan"),
        "towards": float(hi.mean()),
        "ret_towards": float(ret[hi].mean()) if hi.any() else float("nan"),
        "ret_away": float(ret[~hi].mean()) if (~hi).any() else float("nan"),
        "distance": float(distance_return(batch).mean()),
        "q": float(q.mean()) if q is not None else float("nan"),
    }


def _fit(args: tuple[Any, dict, int, int]) -> dict[str, Any]:
    import torch

    from diffusion_agents.eaq import EAQAugmenter, EAQConfig

    real, fields, seed, samples = args
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    aug = EAQAugmenter(EAQConfig.from_dict({**fields, "seed": seed})).fit(real, show_progress=False)
    res = aug.sample(samples, seed=1, show_progress=False)
    return {"seed": seed, "seconds": time.perf_counter() - t0, **score(res.batch, res.q_estimate)}


def _label(v: dict) -> str:
    return ", ".join(f"{k}={v[k]}" for k in v) or "base"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max-cycles", type=int, default=12)
    p.add_argument("--episodes", type=int, default=60)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--n-steps", type=int, default=BASE["n_steps"])
    p.add_argument("--variants", default=None, help="JSON list of EAQConfig field dicts")
    p.add_argument("--samples", type=int, default=256, help="samples scored per fit")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results/eaq_guidance_toy.json")
    a = p.parse_args(argv)
    from tqdm import tqdm

    from wrappers import load_episodes

    variants = json.loads(a.variants) if a.variants else VARIANTS
    seeds = [int(s) for s in a.seeds.split(",")]
    with tempfile.TemporaryDirectory() as root:
        os.environ["MINARI_DATASETS_PATH"] = root
        real = load_episodes(record_towards_or_away("mpe2/spread2/towards-or-away-v0",
                                                    a.episodes, a.max_cycles))
    jobs = [
        (real, {**BASE, "n_steps": a.n_steps, **v}, s, a.samples) for v in variants for s in seeds
    ]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(a.workers) as pool:
        runs = list(tqdm(pool.map(_fit, jobs), total=len(jobs), desc="EAQ toy fits"))
    rows = []
    for i, v in enumerate(variants):
        per_seed = runs[i * len(seeds) : (i + 1) * len(seeds)]
        rows.append({"variant": v, "runs": per_seed})
    base = np.array([r["return"] for r in rows[0]["runs"]])
    base_se = np.array([r["return_se"] for r in rows[0]["runs"]])
    real_s = score(real)
    print(f"real data: {real.num_episodes} episodes of {a.max_cycles} steps, return "
          f"{real_s['return']:.2f} (std {real.returns.std():.2f}), towards {real_s['towards']:.2f}, "
          f"within modes {real_s['ret_towards']:.2f} / {real_s['ret_away']:.2f}, distance "
          f"{real_s['distance']:.2f}")
    print("| variant | return | − first row, per seed | (in standard errors) | towards | within modes | distance | Q_phi |")
    print("| --- | ---: | --- | --- | ---: | --- | ---: | ---: |")
    for row in rows:
        r = {k: np.array([x[k] for x in row["runs"]]) for k in row["runs"][0]}
        diff = r["return"] - base
        z = diff / np.sqrt(r["return_se"] ** 2 + base_se**2)
        print(f"| {_label(row['variant'])} | {r['return'].mean():.2f} | "
              f"{' '.join(f'{d:+.2f}' for d in diff)} | {' '.join(f'{x:.1f}' for x in z)} | "
              f"{r['towards'].mean():.2f} | "
              f"{np.nanmean(r['ret_towards']):.2f} / {np.nanmean(r['ret_away']):.2f} | "
              f"{r['distance'].mean():.2f} | {r['q'].mean():.2f} |")
    wall = time.perf_counter() - t0
    print(f"{len(jobs)} fits in {wall:.0f} s ({a.workers} workers); base config {BASE}")
    from benchmarks.harness import write_json_atomic

    command = " ".join(["python -m benchmarks.eaq_guidance_toy",
                        *(argv if argv is not None else sys.argv[1:])])
    write_json_atomic(a.out, {"command": command, "real": real_s, "base": BASE, "rows": rows,
                              "wall_s": wall})
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
