"""``diffusion-agents augment``: EAQ-augment a multi-agent Minari dataset, optionally report.

Examples::

    diffusion-agents augment mpe2/simple_spread/medium-v0 --ratio 1.0 --q-weight 0.3
    diffusion-agents augment mpe2/simple_spread/medium-v0 --num-episodes 2000 \\
        --new-id mpe2/simple_spread/medium-eaq2-v0 --save-model runs/eaq_medium
    diffusion-agents augment mpe2/simple_spread/medium-v0 --from-model runs/eaq_medium

Datasets are read from and written to ``$MINARI_DATASETS_PATH`` (Minari's default root
otherwise). The source dataset is never modified; the new one is written atomically.
"""

from __future__ import annotations

import argparse
import json

# EAQConfig fields that only affect sampling: --config may change them with --from-model
SAMPLING_FIELDS = frozenset(
    {"sampler", "sample_steps", "clip_x0", "range_margin", "sample_batch_size",
     "max_sample_rounds", "seed", "device"}
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="source Minari dataset id (multi-agent convention)")
    n = parser.add_mutually_exclusive_group()
    n.add_argument("--num-episodes", type=int, default=None, help="synthetic episodes to add")
    n.add_argument(
        "--ratio", type=float, default=None,
        help="synthetic episodes per real episode (default 1.0)",
    )
    parser.add_argument("--q-weight", type=float, default=None, help="lambda of L_Qtot (0 = no Q)")
    parser.add_argument("--n-steps", type=int, default=None, help="training gradient steps")
    parser.add_argument("--new-id", default=None, help="output id (default: <name>-eaq-vN)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--synthetic-only", action="store_true", help="write only synthetic episodes")
    parser.add_argument(
        "--config", default="{}",
        help="JSON of more EAQConfig fields, e.g. '{\"dim\": 64, \"sample_steps\": 20}'",
    )
    parser.add_argument("--save-model", default=None, help="also save the fitted model to this folder")
    parser.add_argument("--from-model", default=None, help="sample from a saved model (no training)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    import torch

    from diffusion_agents.eaq import EAQAugmenter, EAQConfig, augment
    from wrappers import load_episodes

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        extra = json.loads(args.config)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"--config is not valid JSON: {exc}") from None
    show = not args.quiet
    cfg = EAQConfig.from_dict(extra) if extra else EAQConfig()
    changes = {k: v for k, v in (("q_weight", args.q_weight), ("n_steps", args.n_steps),
                                 ("seed", args.seed)) if v is not None}
    cfg = cfg.replace(**changes)
    augmenter = None
    if args.from_model:
        augmenter = EAQAugmenter.load(args.from_model, device=cfg.device)
        saved = augmenter.config
        given = set(extra) | set(changes)
        # a saved model fixes how it was trained; only sampling settings can change
        clash = {
            k: (getattr(saved, k), getattr(cfg, k))
            for k in sorted(given - SAMPLING_FIELDS)
            if getattr(cfg, k) != getattr(saved, k)
        }
        if clash:
            raise SystemExit(
                f"--from-model {args.from_model}: these settings are fixed by the saved "
                f"model (saved, given): {clash}; only {sorted(SAMPLING_FIELDS)} can change "
                "when sampling from it."
            )
        augmenter.config = saved.replace(**{k: getattr(cfg, k) for k in given & SAMPLING_FIELDS})
    elif args.save_model:
        augmenter = EAQAugmenter(cfg).fit(load_episodes(args.dataset), show_progress=show)
        augmenter.save(args.save_model)
        print(f"saved model to {args.save_model}")
    out = augment(
        args.dataset, num_episodes=args.num_episodes, ratio=args.ratio,
        new_dataset_id=args.new_id, seed=args.seed, synthetic_only=args.synthetic_only,
        config=cfg, augmenter=augmenter, show_progress=show,
    )
    info = out.storage.metadata["multiagent"]["eaq"]
    print(
        f"wrote {out.spec.dataset_id}: {info['num_real_episodes']} real + "
        f"{info['num_synthetic_episodes']} synthetic episodes, acceptance "
        f"{info['acceptance_rate']:.3f}, rejected {info['rejected']}, q_weight "
        f"{info['q_weight']}; mean return real {info['real_mean_return']:.3f}, synthetic "
        f"{info['synthetic_mean_return']:.3f}"
    )
    return 0
