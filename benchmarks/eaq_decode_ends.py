"""How EAQ reads episode ends and deaths: the first crossing (the paper) or a step fit.

    python -m benchmarks.eaq_decode_ends --model DIR --dataset smax/smacv2_5_units/medium-v0 \\
        [--num 1024] [--seed 1234] [--threads 2] [--out FILE.json] [--plot FILE.png]

A saved augmenter (``diffusion-agents augment ... --save-model DIR``) draws ``--num`` raw
candidates once (:meth:`EAQAugmenter.draw`); the same tensors are decoded with
``ends="first"`` (the first done flag over 0.5 ends the episode, the first alive flag under
0.5 ends an agent) and ``ends="fit"`` (least-squares step functions;
:meth:`diffusion_agents.eaq.encode.EpisodeLayout.decode`). Both are compared with the real
episodes: acceptance, episode length, return, how many agents are alive at the end and how
many steps an agent lives. Prints a Markdown table and the command; ``--plot`` draws the
length histograms.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from benchmarks.cli import script_main


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="folder of a saved EAQAugmenter")
    p.add_argument("--dataset", required=True, help="the real dataset the model was fitted on")
    p.add_argument("--num", type=int, default=1024, help="raw candidates to draw")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None)
    p.add_argument("--plot", default=None)


def episode_stats(batch) -> dict[str, float]:
    """Length, return and survival figures of an :class:`EpisodeBatch`."""
    import numpy as np

    n = batch.lengths
    idx = np.arange(batch.num_episodes)
    end_alive = batch.alive[idx, n]  # (E, agents) alive at the final observation
    ever = batch.alive.any(axis=1)
    return {
        "episodes": int(batch.num_episodes),
        "length_mean": float(n.mean()),
        "length_p10": float(np.percentile(n, 10)),
        "length_median": float(np.median(n)),
        "length_p90": float(np.percentile(n, 90)),
        "return_mean": float(batch.returns.mean()),
        "alive_at_end": float(end_alive.sum(axis=1).mean()),
        "agent_steps_alive": float(batch.acted.sum(axis=1)[ever].mean()),
        "terminated": float(batch.terminations.any(axis=1).mean()),
    }


def run(args) -> int:
    import numpy as np
    import torch

    from diffusion_agents.eaq import EAQAugmenter
    from wrappers import load_episodes

    torch.set_num_threads(args.threads)
    if args.num < 1:
        raise SystemExit("--num must be >= 1.")
    aug = EAQAugmenter.load(args.model)
    real = load_episodes(args.dataset)
    if list(real.agents) != list(aug.layout.agents):
        raise SystemExit(f"{args.dataset}'s agents {real.agents} are not the model's "
                         f"{aug.layout.agents}.")
    raw = aug.draw(args.num, seed=args.seed)
    rows: dict[str, dict[str, Any]] = {"real": episode_stats(real)}
    lengths = {"real": real.lengths}
    for ends in ("first", "fit"):
        res = aug.decode(raw, ends=ends)
        row: dict[str, Any] = {"acceptance": res.acceptance_rate, "rejected": res.reasons}
        if res.batch is not None:
            row.update(episode_stats(res.batch))
            lengths[ends] = res.batch.lengths
        rows[ends] = row
    cmd = "python -m benchmarks.eaq_decode_ends " + " ".join(sys.argv[1:])
    print(f"\nEAQ decoding of episode ends, {args.dataset}, model {args.model} "
          f"(lambda={aug.config.q_weight}), {args.num} raw candidates, seed {args.seed}\n")
    print("| episodes | acceptance | length mean | p10 / median / p90 | return | agents alive "
          "at the end | steps an agent lives | terminated |")
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |")
    for name, r in rows.items():
        if "length_mean" not in r:
            print(f"| {name} | {r['acceptance']:.2f} | none accepted | | | | | |")
            continue
        acc = f"{r['acceptance']:.2f}" if "acceptance" in r else ""
        print(f"| {name} | {acc} | {r['length_mean']:.1f} | {r['length_p10']:.0f} / "
              f"{r['length_median']:.0f} / {r['length_p90']:.0f} | {r['return_mean']:.3f} | "
              f"{r['alive_at_end']:.2f} | {r['agent_steps_alive']:.1f} | {r['terminated']:.2f} |")
    print(f"\ncommand: {cmd}")
    if args.out:
        from benchmarks.harness import write_json_atomic

        write_json_atomic(args.out, {"command": cmd, "dataset": args.dataset,
                                     "model": str(args.model), "num": args.num,
                                     "seed": args.seed, "config": aug.config.to_dict(),
                                     "rows": rows})
        print(f"wrote {args.out}")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        bins = np.arange(0, aug.layout.horizon + 1, 2)
        styles = {"real": "-", "first": "--", "fit": ":"}  # dashed/dotted: they may coincide
        for name, n in lengths.items():
            ax.hist(n, bins=bins, density=True, histtype="step", linewidth=1.8,
                    linestyle=styles[name], label=f"{name} (mean {n.mean():.1f})")
        ax.set_xlabel("episode length (steps)")
        ax.set_ylabel("share of episodes")
        ax.set_title(f"{args.dataset}: real vs decoded synthetic lengths", fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"wrote {args.plot}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return script_main("benchmarks.eaq_decode_ends", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
