"""What SMAX episodes of an EAQ augmentation show of the units, over time: real vs synthetic.

    python -m benchmarks.eaq_smax_units DATASET_ID [DATASET_ID ...] [--out FILE.json]

For each augmented SMAX dataset (real + synthetic episodes; JaxMARL's ``unit_list``
observations), one row for its real episodes and one for its synthetic ones, per window of
time steps: the health of the enemies an agent sees (the sum of the enemy blocks' health
features, 0 for an enemy out of sight or dead; mean over the living agents) and the team's
own health (the sum of the agents' own health features). Also the mean episode length and
return. In real SMAX episodes the enemies come into view over the first ten steps or so
and the team's health falls as it fights; within a window, the correlation of the team's
health with the return-to-go (the Q-total target) is printed too. Q-total guidance through
every row of the tensor can move generated observations towards what ``Q_phi`` rates high
instead of changing what the team does; these columns show whether it did (docs/eaq.md,
"Guidance through the actions on SMAX").
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np

from benchmarks.cli import script_main
from benchmarks.eaq_rewards import real_and_synthetic

WINDOWS = ((0, 1), (1, 5), (5, 10), (10, 20), (20, 40), (40, None))
WINDOW_KEYS = tuple(f"t{lo}-{'' if hi is None else hi - 1}" for lo, hi in WINDOWS)  # "t1-4", "t40-"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("datasets", nargs="+", help="augmented SMAX dataset ids")
    p.add_argument("--out", default=None, help="also write the rows as JSON")


def health_columns(smax_env: Any, obs_width: int) -> tuple[list[int], int]:
    """``(enemy health columns, own health column)`` of a JaxMARL SMAX ``unit_list``
    observation of width ``obs_width``; ValueError for any other layout."""
    unit, own = len(smax_env.unit_features), len(smax_env.own_features)
    allies, enemies = smax_env.num_allies, smax_env.num_enemies
    width = unit * (allies - 1 + enemies) + own
    if getattr(smax_env, "observation_type", "unit_list") != "unit_list" or obs_width != width:
        raise ValueError(
            f"observations of width {obs_width} are not SMAX unit_list ones "
            f"({allies} allies, {enemies} enemies: width {width})"
        )
    # the other units' blocks, allies first; "health" is each block's first feature
    return [unit * (allies - 1 + k) for k in range(enemies)], unit * (allies - 1 + enemies)


def unit_stats(batch: Any, rows: np.ndarray, enemy_cols: list[int], own_col: int) -> dict[str, Any]:
    """Length, return and per-window health figures of the episodes ``rows`` of an
    :class:`EpisodeBatch` (observations ``(E, T + 1, A, D)``)."""
    obs, alive = batch.obs[rows], batch.alive[rows]  # (e, T + 1, A, D), (e, T + 1, A)
    inside = np.arange(obs.shape[1])[None, :] < batch.lengths[rows][:, None]  # (e, T + 1)
    seen = obs[..., enemy_cols].sum(-1)  # (e, T + 1, A)
    n_alive = alive.sum(-1)
    in_view = (seen * alive).sum(-1) / np.maximum(n_alive, 1)  # (e, T + 1)
    own = (obs[..., own_col] * alive).sum(-1)
    rtg = batch.return_to_go()[rows]  # (e, T + 1): 0 after the end
    out: dict[str, Any] = {
        "episodes": int(len(rows)),
        "length": float(batch.lengths[rows].mean()),
        "return": float(batch.returns[rows].mean()),
    }
    for (lo, hi), key in zip(WINDOWS, WINDOW_KEYS):
        sel = inside.copy()
        sel[:, :lo] = False
        if hi is not None:
            sel[:, hi:] = False
        sel &= n_alive > 0
        out[f"enemy_in_view_{key}"] = float(in_view[sel].mean()) if sel.any() else None
        out[f"own_health_{key}"] = float(own[sel].mean()) if sel.any() else None
        ok = sel.sum() > 2 and own[sel].std() > 0 and rtg[sel].std() > 0
        out[f"own_health_rtg_corr_{key}"] = float(np.corrcoef(own[sel], rtg[sel])[0, 1]) if ok else None
    return out


def run(args: argparse.Namespace) -> int:
    import minari

    from wrappers import load_episodes, make_env
    from wrappers.minari_io import check_convention

    out: list[dict[str, Any]] = []
    print("| dataset | episodes of | n | length | return | enemy health in view, "
          + " / ".join(WINDOW_KEYS) + " | own team health, same windows | corr(own health, "
          "return-to-go), same windows |")
    print("| --- | --- | ---: | ---: | ---: | --- | --- | --- |")
    for ds_id in args.datasets:
        meta = check_convention(minari.load_dataset(ds_id))
        env_id = meta.get("env_id") or ""
        if not env_id.startswith("smax/"):
            raise ValueError(f"{ds_id}: not a SMAX dataset (env_id {env_id!r})")
        env = make_env(env_id, **(meta.get("env_kwargs") or {}))
        try:
            batch = load_episodes(ds_id)
            enemy_cols, own_col = health_columns(env.smax_env, batch.obs_dims[0])
        finally:
            env.close()
        for name, rows in real_and_synthetic(batch, ds_id):
            s = unit_stats(batch, rows, enemy_cols, own_col)
            out.append({"dataset": ds_id, "episodes_of": name, **s})
            cells = [
                " / ".join("–" if s[f"{prefix}_{k}"] is None else f"{s[f'{prefix}_{k}']:.2f}"
                           for k in WINDOW_KEYS)
                for prefix in ("enemy_in_view", "own_health", "own_health_rtg_corr")
            ]
            print(f"| {ds_id} | {name} | {s['episodes']} | {s['length']:.1f} | {s['return']:.3f} | "
                  + " | ".join(cells) + " |")
    print(f"\nCommand: python -m benchmarks.eaq_smax_units {' '.join(args.datasets)}")
    if args.out:
        from pathlib import Path

        from benchmarks.harness import write_json_atomic

        write_json_atomic(Path(args.out), out)
    return 0


def main(argv: list[str] | None = None) -> int:
    return script_main("benchmarks.eaq_smax_units", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
