"""Does the return-to-go hide a clock, and does Q guidance move the observations along it?

    python -m benchmarks.eaq_time_cue SOURCE_ID [AUGMENTED_ID ...] [--top 8] [--out FILE.json]

EAQ's ``Q_phi`` regresses the team return-to-go (RTG) on the joint observation-action and
the time elapsed. Where episodes vary in length, the RTG also depends on the time *left*;
an estimator that does not see it reads it off the observations, and ``L_Qtot`` then
rewards synthetic episodes that look as if they had just begun (docs/eaq.md, "2s3z: what
Q guidance changes"). Two measurements:

1. On the source's real episodes, least squares of the RTG on every agent's standardized
   observation (alive steps, zero where dead) plus the elapsed time, then plus the steps
   left: the R² of each fit and, per observation feature, the coefficient summed over
   agents in both fits. A large rise of R² with the steps left, and coefficients that
   shrink when it is added, mean ``Q_phi`` has a clock to find in the observations
   (``EAQConfig(q_time_left=True)`` hands it the time left instead).
2. For each augmented dataset: the observation features whose synthetic mean (alive steps,
   pooled over agents of the same observation width) moved furthest from the real mean, in
   real standard deviations, with the feature's correlation with the RTG and with the time
   left in the real data. Compare an augmentation with ``q_weight > 0`` against one with
   ``q_weight = 0`` of the same source.

Features are numbered within an agent's observation; ``smax/*`` datasets get SMAX's names
(``ally{j}_health``, ``enemy{j}_x``, ``own_y``, ...).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.cli import script_main

SMAX_UNIT = ["health", "x", "y", "move_x", "move_y", "targeted", "cooldown"]
SMAX_OWN = ["health", "x", "y", "cooldown"]
SMAX_UNIT_TYPES = 6  # len(SMAX.unit_type_names) in jaxmarl 0.0.x


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="the real dataset (id)")
    p.add_argument("augmented", nargs="*", help="EAQ augmentations of it (ids)")
    p.add_argument("--top", type=int, default=8, help="features listed per augmentation")
    p.add_argument("--out", default=None, help="also write the report as JSON")


def feature_names(dataset_id: str, obs_dim: int, num_agents: int) -> list[str]:
    """SMAX's observation layout (jaxmarl ``SMAX.get_obs``: per other unit, allies first, 7
    features and the unit-type bits; then the agent's own 4 and the bits) where the width
    matches; else ``f{i}``."""
    unit, own = len(SMAX_UNIT) + SMAX_UNIT_TYPES, len(SMAX_OWN) + SMAX_UNIT_TYPES
    others = (obs_dim - own) // unit
    if not dataset_id.startswith("smax/") or others * unit + own != obs_dim or others < num_agents - 1:
        return [f"f{i}" for i in range(obs_dim)]
    bits = [f"type{b}" for b in range(SMAX_UNIT_TYPES)]
    names = [
        f"{'ally' if j < num_agents - 1 else 'enemy'}{j if j < num_agents - 1 else j - num_agents + 1}_{f}"
        for j in range(others)
        for f in SMAX_UNIT + bits
    ]
    return names + [f"own_{f}" for f in SMAX_OWN + bits]


def _steps(batch: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per acting step ``(E, T)`` masks and values: valid, elapsed ``t`` and steps left."""
    t = np.broadcast_to(np.arange(batch.horizon)[None, :], batch.valid.shape)
    left = batch.lengths[:, None] - t
    return batch.valid, t, left


def time_cue(batch: Any) -> dict[str, Any]:
    """Measurement 1 on the real episodes of ``batch`` (an :class:`EpisodeBatch`)."""
    real = ~batch.synthetic
    valid, t, left = (a[real] for a in _steps(batch))
    rtg = batch.return_to_go()[real][:, :-1][valid]
    obs = batch.obs[real][:, :-1]                       # (E, T, A, D), zero where dead
    x = obs[valid].reshape(int(valid.sum()), -1)        # (N, A * D)
    sd = x.std(0)
    keep = sd > 1e-8
    z = (x[:, keep] - x[:, keep].mean(0)) / sd[keep]
    h = batch.horizon
    out: dict[str, Any] = {"steps": int(rtg.size)}
    coefs = {}
    for name, extra in (("obs+elapsed", [t[valid] / h]),
                        ("obs+elapsed+left", [t[valid] / h, left[valid] / h])):
        design = np.column_stack([z, *extra, np.ones(rtg.size)])
        w, *_ = np.linalg.lstsq(design, rtg, rcond=None)
        resid = rtg - design @ w
        out[name] = {"r2": float(1.0 - resid.var() / rtg.var()),
                     "left_coef": float(w[z.shape[1] + 1]) if len(extra) > 1 else None}
        full = np.zeros(x.shape[1])
        full[keep] = w[: z.shape[1]]
        coefs[name] = full.reshape(batch.num_agents, -1)  # (A, D)
    out["coef_by_feature"] = {k: v.sum(0) for k, v in coefs.items()}  # (D,) summed over agents
    return out


def shifts(batch: Any) -> dict[str, np.ndarray]:
    """Measurement 2: per feature ``(D,)``, the synthetic mean minus the real mean over alive
    acting steps of agents with the widest observation, in real standard deviations, and the
    real data's correlation of the feature with the RTG and with the steps left."""
    real, syn = ~batch.synthetic, batch.synthetic
    d = max(batch.obs_dims)
    agents = [i for i, w in enumerate(batch.obs_dims) if w == d]
    valid, _, left = _steps(batch)
    rtg = batch.return_to_go()[:, :-1]

    def pooled(mask: np.ndarray, values: np.ndarray | None = None) -> np.ndarray:
        rows = []
        for i in agents:
            at = mask[:, None] & valid & batch.alive[:, :-1, i]
            rows.append(batch.obs[:, :-1, i, :d][at] if values is None else values[at])
        return np.concatenate(rows)

    r, s = pooled(real), pooled(syn)
    sd = r.std(0)
    varies = sd > 1e-8  # a feature constant in the real data gets 0 shift and 0 correlation
    scale = np.where(varies, sd, 1.0)
    shift = np.where(varies, (s.mean(0) - r.mean(0)) / scale, 0.0)
    y, lft = pooled(real, rtg), pooled(real, left.astype(np.float64))

    def corr(v: np.ndarray) -> np.ndarray:
        c = (r - r.mean(0)) * (v - v.mean())[:, None]
        return np.where(varies, c.mean(0) / scale / v.std(), 0.0)

    return {"shift": shift, "corr_rtg": corr(y), "corr_left": corr(lft),
            "real_mean": r.mean(0), "synthetic_mean": s.mean(0)}


def run(args: argparse.Namespace) -> int:
    import minari

    from wrappers import load_episodes

    source = load_episodes(minari.load_dataset(args.source))
    names = feature_names(args.source, max(source.obs_dims), source.num_agents)
    cue = time_cue(source)
    a, b = cue["obs+elapsed"], cue["obs+elapsed+left"]
    print(f"{args.source}: {cue['steps']} real acting steps; least squares of the return-to-go")
    print(f"  on observations + time elapsed:              R² {a['r2']:.3f}")
    print(f"  on observations + time elapsed + time left:  R² {b['r2']:.3f} "
          f"(coefficient of the time left {b['left_coef']:+.3f} per horizon)")
    ca, cb = cue["coef_by_feature"]["obs+elapsed"], cue["coef_by_feature"]["obs+elapsed+left"]
    order = np.argsort(-np.abs(ca))[: args.top]
    print("  largest coefficients (summed over agents, per real sd), without → with the time left:")
    for f in order:
        print(f"    {names[f]:18s} {ca[f]:+.4f} → {cb[f]:+.4f}")
    report: dict[str, Any] = {
        "source": args.source, "steps": cue["steps"],
        "r2": {"obs+elapsed": a["r2"], "obs+elapsed+left": b["r2"]},
        "left_coef": b["left_coef"],
        "coefficients": {names[f]: [float(ca[f]), float(cb[f])] for f in order},
        "augmented": {},
    }
    for did in args.augmented:
        batch = load_episodes(minari.load_dataset(did))
        if not batch.synthetic.any():
            raise ValueError(f"{did}: no synthetic episodes (not an EAQ augmentation?)")
        m = shifts(batch)
        eaq = batch.metadata.get("eaq") or {}  # EpisodeBatch.metadata: the "multiagent" block
        lam, left = eaq.get("q_weight"), (eaq.get("settings") or {}).get("q_time_left", False)
        print(f"\n{did} (q_weight {lam}, q_time_left {left}): synthetic minus real mean, in real sd")
        print(f"    {'feature':18s} {'shift':>7s} {'real':>7s} {'synth':>7s} {'corr RTG':>9s} {'corr left':>9s}")
        order = np.argsort(-np.abs(m["shift"]))[: args.top]
        for f in order:
            print(f"    {names[f]:18s} {m['shift'][f]:+7.2f} {m['real_mean'][f]:7.3f} "
                  f"{m['synthetic_mean'][f]:7.3f} {m['corr_rtg'][f]:+9.2f} {m['corr_left'][f]:+9.2f}")
        report["augmented"][did] = {
            "q_weight": lam, "q_time_left": left,
            "mean_abs_shift": float(np.abs(m["shift"]).mean()),
            "top": {names[f]: {k: float(v[f]) for k, v in m.items()} for f in order},
        }
        print(f"    mean |shift| over all {len(names)} features: {np.abs(m['shift']).mean():.3f}")
    if args.out:
        from benchmarks.harness import write_json_atomic

        write_json_atomic(Path(args.out), report)
    return 0


def main(argv: list[str] | None = None) -> int:
    return script_main(__name__, __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
