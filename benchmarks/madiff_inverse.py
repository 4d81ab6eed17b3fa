"""How long should MADiff's inverse dynamics train? A head-only curve on a trained model.

    python -m benchmarks.madiff_inverse CHECKPOINT [--steps 10000] [--eval-at 1000,3000,10000]
        [--episodes 20] [--threads 1] [--out PATH.json]

Keeps the checkpoint's diffusion model (EMA weights) fixed and trains a freshly initialized
inverse-dynamics head on 90 % of the dataset's episodes with the checkpoint's own settings
(batch, learning rate, clipping, EMA). Every ``--log-every`` steps it scores the head's EMA
weights on held-out states of the other 10 %, decoding the action from two next
observations:

- the real ``o_i,t+1`` (the training objective: held-out cross-entropy, or MSE for
  continuous actions, and arg-max accuracy);
- the model's own planned ``ô_i,t+1``, sampled exactly as :meth:`MADiffPolicy.act` samples
  it (the agent's own history known, the config's sampler, guidance and target return).
  This is the input the head meets when acting. Accuracy against the data's action is
  near chance on both MPE spread and SMAX because the plan is return-conditioned and does
  not reproduce the behaviour's step; the entropy shows how confident the head is there.

Then each head of ``--eval-at`` acts in the checkpoint's env for ``--episodes`` episodes
(the harness's evaluation seeds, the same episodes for every head). The table says whether
the inverse dynamics, not the diffusion model, decides how long to train on a dataset
(docs/madiff.md, "Training length on SMAX").
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from typing import Any


def plan_states(policy: Any, data: Any, n: int, seed: int) -> dict[str, Any]:
    """``n`` random (episode, t, acting agent) of ``data`` with the policy's planned next
    observation: ``o_t``, ``o_real``, ``o_plan`` ``(n, obs_dim)`` normalized, ``agent``
    ``(n,)``, ``actions`` ``(n, K)``, ``masks`` ``(n, N)`` or None, and ``junction``: the
    median RMS (normalized units) of the real step ``o_t+1 - o_t``, of the plan's first step
    from the known ``o_t``, of its later steps (median over them) and of ``ô_t+1 - o_t+1``."""
    import torch
    from einops import rearrange

    from diffusion_agents.madiff.model import known_mask

    model, cfg = policy.model, policy.config
    g = torch.Generator().manual_seed(seed)
    ep_all, t_all, a_all = data.acted.nonzero(as_tuple=True)
    pick = torch.randint(len(ep_all), (n,), generator=g)
    ep, t, agent = ep_all[pick], t_all[pick], a_all[pick]
    h = cfg.history
    offs = torch.arange(-h, cfg.horizon + 1)
    idx = torch.minimum((t[:, None] + offs[None]).clamp(min=0), data.lengths[ep][:, None])
    tau = rearrange(data.obs[ep[:, None], idx], "b l a d -> b a d l")
    rows = torch.arange(n)
    visible = agent if cfg.mode == "decentralized" else None
    known = known_mask(model.dim_valid, visible, n, tau.shape[-1], h)
    values = torch.where(known, tau, torch.zeros_like(tau))
    noise = torch.randn(tau.shape, generator=g)
    returns = torch.full((n,), float(cfg.target_return))
    model.eval()
    with torch.no_grad():  # the act path's sampler and settings (MADiffPolicy._plan)
        plan = torch.cat([
            policy._plan(
                values[i : i + 128], known[i : i + 128], returns[i : i + 128],
                noise[i : i + 128],
            )
            for i in range(0, n, 128)
        ])
    valid = model.dim_valid[agent].float()  # (n, D)

    def rms(x: torch.Tensor) -> float:  # median over states of the per-state RMS
        return float((((x**2) * valid).sum(-1) / valid.sum(-1)).sqrt().median())

    own = plan[rows, agent]  # (n, D, L)
    steps_later = [rms(own[:, :, j + 1] - own[:, :, j]) for j in range(h + 1, own.shape[-1] - 1)]
    junction = {
        "real_step": rms(tau[rows, agent, :, h + 1] - tau[rows, agent, :, h]),
        "plan_first_step": rms(own[:, :, h + 1] - own[:, :, h]),
        "plan_later_steps": float(sorted(steps_later)[len(steps_later) // 2])
        if steps_later else float("nan"),
        "plan_next_error": rms(own[:, :, h + 1] - tau[rows, agent, :, h + 1]),
    }
    return {
        "junction": junction,
        "o_t": tau[rows, agent, :, h],
        "o_real": tau[rows, agent, :, h + 1],
        "o_plan": plan[rows, agent, :, h + 1],
        "agent": agent,
        "actions": data.actions[ep, t, agent],
        "masks": None if data.masks is None else data.masks[ep, t, agent],
    }


def head_metrics(model: Any, states: dict[str, Any]) -> dict[str, float]:
    """Loss (CE or MSE), arg-max accuracy and entropy (discrete agents) on real and planned
    next observations."""
    import torch

    out: dict[str, float] = {}
    disc = torch.tensor([model.n_actions[int(i)] > 0 for i in states["agent"]])
    with torch.no_grad():
        for name in ("real", "plan"):
            nx = states[f"o_{name}"]
            out[f"{name}_loss"] = float(model.inverse_loss(
                states["o_t"], nx, states["agent"], states["actions"], states["masks"]
            ))
            if bool(disc.any()):
                a = states["agent"][disc]
                logits = model.masked_logits(
                    model.inverse_dynamics(states["o_t"][disc], nx[disc], a), a,
                    None if states["masks"] is None else states["masks"][disc],
                )
                target = states["actions"][disc, 0].long()
                out[f"{name}_acc"] = float((logits.argmax(-1) == target).float().mean())
                ent = torch.distributions.Categorical(logits=logits).entropy()
                out[f"{name}_entropy"] = float(ent.mean())
    return out


def inverse_curve(
    policy: Any, *, steps: int, log_every: int, keep_at: list[int], holdout: float,
    seed: int, n_states: int = 512, show_progress: bool = True,
) -> tuple[list[dict[str, float]], dict[int, dict[str, Any]], dict[str, float]]:
    """Train a fresh head on the frozen diffusion model: ``(log rows, {step: head state},
    plan junction)`` (the last as in :func:`plan_states`).

    The policy's model is left with its original inverse dynamics."""
    import torch
    from tqdm.auto import tqdm

    from diffusion_agents.madiff.policy import _load_batch
    from diffusion_agents.madiff.training import MADiffData, prepare_data, sample_batch

    model, cfg = policy.model, policy.config
    inv = model.inverse_module
    original = copy.deepcopy(inv.state_dict())
    flags = [q.requires_grad for q in inv.parameters()]  # an EMA copy has them off
    inv.requires_grad_(True)
    data = prepare_data(model, _load_batch(policy.info["dataset_id"]))
    e = data.obs.shape[0]
    if e < 2:
        raise ValueError("inverse_curve needs a dataset of at least 2 episodes.")
    perm = torch.randperm(e, generator=torch.Generator().manual_seed(seed))
    n_hold = min(max(1, int(round(holdout * e))), e - 1)

    def subset(ix: torch.Tensor) -> MADiffData:
        fields = MADiffData.__dataclass_fields__
        return MADiffData(**{
            k: None if getattr(data, k) is None else getattr(data, k)[ix] for k in fields
        })

    train, held = subset(perm[n_hold:]), subset(perm[:n_hold])
    states = plan_states(policy, held, n_states, seed + 1)
    torch.manual_seed(seed)
    for m in inv.modules():
        if isinstance(m, torch.nn.Linear):
            m.reset_parameters()
    opt = torch.optim.AdamW(
        inv.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay
    )
    ema = copy.deepcopy(inv)
    gen = torch.Generator().manual_seed(seed)
    rows, heads = [], {}
    junction = states["junction"]
    for step in tqdm(range(1, steps + 1), desc="inverse head", disable=not show_progress):
        model.train()
        b = sample_batch(train, cfg, gen, model.dim_valid)
        loss = model.inverse_loss(
            b["inv_o"], b["inv_next"], b["inv_agent"], b["inv_actions"], b["inv_masks"]
        )
        opt.zero_grad()
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(inv.parameters(), cfg.grad_clip)
        opt.step()
        with torch.no_grad():
            # a plain EMA with the config's decay, start and interval; unlike the trainer's
            # ema-pytorch EMA it has no decay warm-up, so heads lag slightly less early on
            if step <= cfg.ema_start:
                ema.load_state_dict(inv.state_dict())
            elif step % cfg.ema_update_every == 0:
                for pe, pm in zip(ema.parameters(), inv.parameters()):
                    pe.lerp_(pm, 1.0 - cfg.ema_decay)
        if step % log_every == 0 or step in keep_at:
            live = copy.deepcopy(inv.state_dict())
            inv.load_state_dict(ema.state_dict())
            model.eval()
            if step % log_every == 0:
                rows.append({"step": step, **head_metrics(model, states)})
            if step in keep_at:
                heads[step] = copy.deepcopy(ema.state_dict())
            inv.load_state_dict(live)
    inv.load_state_dict(original)
    for q, f in zip(inv.parameters(), flags):
        q.requires_grad_(f)
    model.eval()
    return rows, heads, junction


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="a MADiffPolicy checkpoint (.safetensors)")
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--log-every", type=int, default=500)
    p.add_argument("--eval-at", default="1000,2000,3000,5000,7000,10000")
    p.add_argument("--episodes", type=int, default=20, help="per head; 0: no rollouts")
    p.add_argument("--holdout", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="JSON report path")
    args = p.parse_args(argv)

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from benchmarks.harness import dataset_info, evaluate, normalize
    from diffusion_agents import MADiffPolicy

    policy = MADiffPolicy.load(args.checkpoint)
    keep = sorted({int(s) for s in args.eval_at.split(",") if s.strip()})
    bad = [s for s in keep if not 1 <= s <= args.steps]
    if bad:
        print(f"madiff_inverse: --eval-at {bad} outside 1..{args.steps}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    rows, heads, junction = inverse_curve(
        policy, steps=args.steps, log_every=args.log_every, keep_at=keep,
        holdout=args.holdout, seed=args.seed,
    )
    train_s = time.perf_counter() - t0
    keys = [k for k in rows[0] if k != "step"] if rows else []
    print("| step | " + " | ".join(keys) + " |")
    print("| ---: |" + " ---: |" * len(keys))
    for r in rows:
        print(f"| {r['step']} | " + " | ".join(f"{r[k]:.3f}" for k in keys) + " |")
    print("\nplan vs data on the held-out states (median RMS, normalized units): " + ", ".join(
        f"{k} {v:.4f}" for k, v in junction.items()))
    scores: dict[int, float] = {}
    if args.episodes > 0:
        info = policy.info
        ref = dataset_info(info["dataset_id"])
        head = policy.model.inverse_module
        saved = copy.deepcopy(head.state_dict())
        print(f"\n| inverse-dynamics head after | normalized score ({args.episodes} episodes) |")
        print("| ---: | ---: |")
        for step, state in heads.items():
            head.load_state_dict(state)
            ev = evaluate(policy, info["env_id"], info.get("env_kwargs") or {},
                          args.episodes, args.seed)
            scores[step] = normalize(
                float(np.mean(ev.returns)), ref["ref_min_score"], ref["ref_max_score"]
            )
            print(f"| {step} | {scores[step]:.1f} |", flush=True)
        head.load_state_dict(saved)
    print(f"\n(head training {train_s:.0f} s; total {time.perf_counter() - t0:.0f} s)")
    if args.out:
        from benchmarks.harness import write_json_atomic

        report = {
            "checkpoint": str(args.checkpoint), "dataset": policy.info["dataset_id"],
            "train_steps_of_checkpoint": policy.info.get("train_steps"),
            "args": vars(args), "curve": rows, "junction": junction, "scores": scores,
        }
        write_json_atomic(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
