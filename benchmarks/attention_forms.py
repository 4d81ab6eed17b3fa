"""Eager CPU time of ways to write cross-agent attention's products, alternated in one process.

    python -m benchmarks.attention_forms [--shapes JSON] [--threads 2] [--rounds 30]
        [--calls 10] [--out JSON]

``AgentAttention`` on the 4-D (training) and channels-last paths computes, for each sample,
time index and head, attention over the ``agents`` feature vectors, with the products
written as broadcasts and sums (``broadcast`` below, the library's form). This times the
attention core (scores, softmax, weighted sum; forward and backward, from a ``qkv`` tensor
laid out as the layer's input projection writes it) in other forms on the same inputs:

- ``einsum``: two ``torch.einsum`` calls (batched matrix products after layout copies);
- ``bmm``: the same written out as permuted copies and ``torch.bmm``;
- ``sdpa``: ``F.scaled_dot_product_attention`` on ``(batch * length, heads, agents, d)``;
- ``loop``: one product per key agent, without the ``(.., agents, agents, ..)`` product tensor.

Each shape ``[batch, agents, length, channels]`` (4 heads, as the U-Net) is checked first:
the library's ``AgentAttention`` layer, with its own weights, is run once as written and
once with every form's core in place of its own, and outputs must agree to 1e-5. The table
gives the median microseconds per forward + backward and the ratio to ``broadcast``.
The default shapes are MADiff's layers on MPE spread (3 agents) and SMAX (5 agents) at
batch 32: the bottleneck (length 6, 128 channels) and the first skip (12, 64).
"""

from __future__ import annotations

import argparse
import json
from functools import partial

import numpy as np

from benchmarks.cli import script_main
from benchmarks.perf import alternated_ms

DEFAULT_SHAPES = "[[32, 3, 12, 64], [32, 3, 6, 128], [32, 5, 12, 64], [32, 5, 6, 128]]"
HEADS = 4


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shapes", default=DEFAULT_SHAPES, metavar="JSON",
                   help="list of [batch, agents, length, channels]")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=30, help="alternated rounds per form")
    p.add_argument("--calls", type=int, default=10, help="forward + backward calls per round")
    p.add_argument("--out", default=None, help="also write the table as JSON")


def _forms():
    """``{name: core(qq, kk, vv, scale)}``; ``qq``, ``kk``, ``vv`` are ``(batch, agents,
    length, heads, d)`` views; each core returns the attended values in that shape."""
    import torch
    import torch.nn.functional as F

    def broadcast(qq, kk, vv, scale):
        w = ((qq[:, :, None] * kk[:, None, :]).sum(-1) * scale).softmax(2)
        return (w[..., None] * vv[:, None, :]).sum(2)

    def einsum(qq, kk, vv, scale):
        w = (torch.einsum("bihkd,bjhkd->bijhk", qq, kk) * scale).softmax(2)
        return torch.einsum("bijhk,bjhkd->bihkd", w, vv)

    def rows(t):  # (b, a, h, k, d) -> (b h k, a, d), a copy
        return t.permute(0, 2, 3, 1, 4).reshape(-1, t.shape[1], t.shape[-1])

    def bmm(qq, kk, vv, scale):
        b, a, h, k, d = qq.shape
        w = (torch.bmm(rows(qq), rows(kk).transpose(1, 2)) * scale).softmax(-1)
        return torch.bmm(w, rows(vv)).view(b, h, k, a, d).permute(0, 3, 1, 2, 4)

    def sdpa(qq, kk, vv, scale):
        b, a, h, k, d = qq.shape
        q, kt, v = (rows(t).view(b * h, k, a, d) for t in (qq, kk, vv))
        out = F.scaled_dot_product_attention(q, kt, v, scale=scale)
        return out.view(b, h, k, a, d).permute(0, 3, 1, 2, 4)

    def loop(qq, kk, vv, scale):
        a = qq.shape[1]
        w = (torch.stack([(qq * kk[:, j : j + 1]).sum(-1) for j in range(a)], 2) * scale)
        w = w.softmax(2)
        out = w[:, :, 0, ..., None] * vv[:, None, 0]
        for j in range(1, a):
            out = out + w[:, :, j, ..., None] * vv[:, None, j]
        return out

    return {"broadcast": broadcast, "einsum": einsum, "bmm": bmm, "sdpa": sdpa, "loop": loop}


def _layer_with_core(layer, x, core):
    """``AgentAttention._forward_cl`` of ``layer`` on channels-last ``x (n, length, c)`` with
    ``core`` in place of its own products (no agent mask)."""
    import torch.nn.functional as F

    attn = layer.attn
    a, heads = layer.n_agents, attn.num_heads
    n, h, c = x.shape
    qkv = F.linear(layer.norm(x), attn.in_proj_weight, attn.in_proj_bias)
    qq, kk, vv = qkv.view(n // a, a, h, 3, heads, c // heads).unbind(3)
    out = core(qq, kk, vv, (c // heads) ** -0.5)
    return x + attn.out_proj(out.reshape(n, h, c))


def time_shape(shape, rounds: int, calls: int) -> dict[str, list[float]]:
    """Microseconds per core forward + backward, per round, for each form."""
    import torch

    from diffusion_agents.networks import AgentAttention

    b, a, h, c = shape
    forms = _forms()
    torch.manual_seed(0)
    layer = AgentAttention(c, a, heads=HEADS)
    x = torch.randn(b * a, h, c)
    with torch.no_grad():
        ref = layer._forward_cl(x, None)
        for name, core in forms.items():
            got = _layer_with_core(layer, x, core)
            if not torch.allclose(got, ref, atol=1e-5, rtol=1e-5):
                raise AssertionError(f"form {name!r} differs from AgentAttention on {shape}")
    d = c // HEADS
    qkv = torch.randn(b * a, h, 3 * c, requires_grad=True)

    def step(core):
        qq, kk, vv = qkv.view(b, a, h, 3, HEADS, d).unbind(3)
        core(qq, kk, vv, d**-0.5).sum().backward()

    for core in forms.values():
        step(core)
    ms = alternated_ms({name: partial(step, core) for name, core in forms.items()}, rounds, calls)
    return {name: [v * 1000 for v in per_round] for name, per_round in ms.items()}


def run(args) -> int:
    import torch

    try:
        shapes = json.loads(args.shapes)
        ok = isinstance(shapes, list) and shapes and all(
            isinstance(s, list) and len(s) == 4 and all(isinstance(v, int) and v > 0 for v in s)
            for s in shapes
        )
    except json.JSONDecodeError:
        ok = False
    if not ok:
        raise SystemExit(f"--shapes must be a JSON list of [batch, agents, length, channels] "
                         f"positive integers, got {args.shapes!r}.")
    for s in shapes:
        if s[3] % HEADS:
            raise SystemExit(f"--shapes: channels must be a multiple of {HEADS}, got {s}.")
    torch.set_num_threads(args.threads)
    table = {}
    for shape in shapes:
        us = time_shape(shape, args.rounds, args.calls)
        base = float(np.median(us["broadcast"]))
        table[str(shape)] = {
            name: {"median_us": float(np.median(v)), "ratio": float(np.median(v)) / base,
                   "rounds": v}
            for name, v in us.items()
        }
        print(f"{shape}: done", flush=True)
    names = list(_forms())
    print(f"\nAttention core, forward + backward, eager, {args.threads} thread(s), "
          f"{args.rounds} alternated rounds of {args.calls}; µs (ratio to broadcast)\n")
    print("| [batch, agents, length, channels] | " + " | ".join(names) + " |")
    print("| --- |" + " ---: |" * len(names))
    for shape, row in table.items():
        cells = [f"{row[n]['median_us']:.0f} (×{row[n]['ratio']:.2f})" for n in names]
        print(f"| {shape} | " + " | ".join(cells) + " |")
    if args.out:
        from benchmarks.harness import write_json_atomic

        write_json_atomic(args.out, {"threads": args.threads, "rounds": args.rounds,
                                     "calls": args.calls, "heads": HEADS, "shapes": table})
        print(f"\nwrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return script_main("benchmarks.attention_forms", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
