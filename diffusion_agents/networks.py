"""Networks: a temporal Conv1D U-Net with optional cross-agent attention, and MLPs.

API (stable; additions only)::

    net = TemporalUNet(in_channels=F, out_channels=None, base_width=32, dim_mults=(1, 2, 4),
                       cond_dim=0, kernel_size=5, n_agents=1, agent_attention=False,
                       attention_heads=4, res_blocks=2)
    out = net(x, t, cond=None, drop_cond=None, agent_mask=None)
        x: (batch * n_agents, F, horizon) -- agents folded into the batch, agent-major inside
           each sample (row b * n_agents + i is agent i of sample b); EAQ uses n_agents=1.
        t: (batch * n_agents,) diffusion steps (long).
        cond: (batch * n_agents, cond_dim) extra conditioning (e.g. the scaled return), or None.
        drop_cond: (batch * n_agents,) bool, True where the condition is replaced by a learned
           null embedding (classifier-free guidance); None = keep.
        agent_mask: (batch, n_agents) bool, True for agents that exist (attention keys).
        -> (batch * n_agents, out_channels, horizon)
    mlp = MLP(in_dim, out_dim, hidden=(256, 256), act=nn.SiLU)

The U-Net follows Diffuser's ``TemporalUnet`` (Janner et al. 2022): residual blocks of
Conv1d -> GroupNorm -> SiLU with the step (and condition) embedding added, downsampling by
strided convs. Horizons that are not a multiple of ``2 ** (len(dim_mults) - 1)`` are padded
internally (zeros on the right) and cropped back. With ``agent_attention`` (MADiff, Zhu et al.
2023), each agent's features attend over all agents' features at the same time index at the
bottleneck and on every skip connection into the decoder; switched off, the same weights act as
independent per-agent diffusers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

# SiLU, not Diffuser's Mish: on the 2-core CPU target one Mish call on an act-sized tensor
# (18 x 64 x 8) took 63 us against 10 us for SiLU (torch 2.13, one thread), and a MADiff act
# makes ~27 activation calls per denoising step.
Activation = nn.SiLU


def _groups(channels: int, preferred: int = 8) -> int:
    g = math.gcd(channels, preferred)
    return max(g, 1)


class SinusoidalPosEmb(nn.Module):
    """Transformer sinusoidal embedding of a scalar step ``(batch,) -> (batch, dim)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        half = dim // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half) / max(half - 1, 1))
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        arg = t.float()[:, None] * self.freqs[None, :]
        return torch.cat([arg.sin(), arg.cos()], dim=-1)


class MLP(nn.Module):
    """``in_dim -> hidden... -> out_dim`` with ``act`` between layers (no final activation)."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden: Sequence[int] = (256, 256),
        act: type[nn.Module] = Activation,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d = in_dim
        for h in hidden:
            layers += [nn.Linear(d, h), act()]
            d = h
        layers.append(nn.Linear(d, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Conv1d(nn.Conv1d):
    """A same-padded ``nn.Conv1d`` (odd kernel) with two fast paths for small tensors.

    - :meth:`forward` (channels-first, the default): inputs of at most ``SMALL`` rows
      x steps with gradients off run as one ``addmm`` over unfolded windows. oneDNN costs
      ~80-130 us per call on the tiny inputs of a MADiff act (18 rows x 32-64 channels x 8
      steps) whatever the size; the ``addmm`` takes 28-81 us there. A 4-D input
      ``(batch, channels, 1, length)`` in ``torch.channels_last`` memory format (what
      ``TemporalUNet.nhwc`` passes) runs as oneDNN's 2-D convolution with a ``(1, k)``
      kernel, which skips the reorders of its channels-first path: forward + backward
      ×0.81-0.90 the time of ``conv1d`` on MADiff's training tensors (Zen 5, 2 threads).
    - :meth:`forward_cl` (channels-last ``(batch, length, channels)``, used for training
      when ``TemporalUNet.channels_last_training`` is set, as MADiff's ``compile=True`` does):
      one matrix product over shifted copies of the input. On training tensors (96 rows x
      32-64 channels x 4-8 steps) oneDNN took 300-440 us forward and 550-750 us backward
      per call (3-9x its FLOP count). Eagerly the layout's transposes around GroupNorm eat
      that gain; compiled, the matrix products and fused kernels make the U-Net's forward +
      backward 1.7x faster than compiled oneDNN (see :meth:`TemporalUNet.forward`). Layers
      wider than ``c_in * kernel = MATMUL_MAX`` keep oneDNN on a transposed view: there the
      per-call reshuffle of the weight cost more than it saved.

    (torch 2.13, one thread of the 2-core target.) Same parameters and state dict as
    ``nn.Conv1d``.
    """

    SMALL = 384
    MATMUL_MAX = 1024

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1) -> None:
        if kernel_size % 2 == 0:
            raise ValueError(f"Conv1d needs an odd kernel_size, got {kernel_size}.")
        super().__init__(c_in, c_out, kernel_size, stride=stride, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            return F.conv2d(
                x, self.weight.unsqueeze(2), self.bias, (1, self.stride[0]),
                (0, self.padding[0]),
            )
        if not _use_matmul(x):
            return super().forward(x)
        k, s = self.kernel_size[0], self.stride[0]
        cols, out_length = _im2col(x, k, s)
        w = self.weight.reshape(self.out_channels, -1)
        out = torch.addmm(self.bias, cols, w.t())  # (b * out_length, c_out)
        return out.reshape(x.shape[0], out_length, self.out_channels).transpose(1, 2)

    def forward_cl(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, length, c_in) -> (batch, out_length, c_out)``."""
        k, s = self.kernel_size[0], self.stride[0]
        w = self.weight  # (c_out, c_in, k)
        if k == 1 and s == 1:
            return F.linear(x, w[:, :, 0], self.bias)
        if self.in_channels * k > self.MATMUL_MAX:
            return super().forward(x.transpose(1, 2)).transpose(1, 2)
        cols = _shifted(x, k, s)
        # columns of cols are tap-major: (tap, c_in)
        return F.linear(cols, w.permute(0, 2, 1).reshape(w.shape[0], -1), self.bias)


def _use_matmul(x: torch.Tensor) -> bool:
    """Small inference inputs ``(b, c, length)`` take the matmul path (see :class:`Conv1d`)."""
    return x.shape[0] * x.shape[2] <= Conv1d.SMALL and not torch.is_grad_enabled()


def _im2col(x: torch.Tensor, k: int, stride: int) -> tuple[torch.Tensor, int]:
    """Zero-pad ``x (b, c, length)`` by ``k // 2`` and unfold windows of ``k``:
    ``(b * out_length, c * k)`` rows (channel-major, as ``weight.reshape(c_out, -1)``)."""
    b, c, _ = x.shape
    cols = F.pad(x, (k // 2, k // 2)).unfold(2, k, stride)  # (b, c, out_length, k)
    out_length = cols.shape[2]
    return cols.permute(0, 2, 1, 3).reshape(b * out_length, c * k), out_length


def _shifted(x: torch.Tensor, k: int, stride: int) -> torch.Tensor:
    """Zero-pad ``x (b, length, c)`` by ``k // 2`` steps at each end and place the ``k``
    shifted copies side by side: ``(b, out_length, k * c)``, tap-major."""
    length = x.shape[1]
    p = F.pad(x, (0, 0, k // 2, k // 2))
    out_length = (length + 2 * (k // 2) - k) // stride + 1
    span = stride * (out_length - 1) + 1
    return torch.cat([p[:, j : j + span : stride] for j in range(k)], dim=-1)


class UpConv1d(nn.ConvTranspose1d):
    """``nn.ConvTranspose1d(c, c, 4, stride=2, padding=1)`` (doubles the length) with the
    two fast paths of :class:`Conv1d`.

    With ``x`` zero-padded at both ends, output ``2m`` is ``W1' x[m] + W3' x[m-1]`` and
    output ``2m + 1`` is ``W2' x[m] + W0' x[m+1]`` (``Wk`` the kernel's tap ``k``).
    """

    def __init__(self, channels: int) -> None:
        super().__init__(channels, channels, 4, stride=2, padding=1)

    def _taps(self, tap_major: bool) -> torch.Tensor:
        """The weight as ``(3 c_in, 2 c_out)``: rows (x[m-1], x[m], x[m+1]) x c_in,
        columns (even, odd) x c_out; rows tap-major or channel-major."""
        w = self.weight  # (c_in, c_out, 4)
        zero = torch.zeros_like(w[:, :, 0])
        dim = 0 if tap_major else 1
        even = torch.stack([w[:, :, 3], w[:, :, 1], zero], dim=dim)
        odd = torch.stack([zero, w[:, :, 2], w[:, :, 0]], dim=dim)
        return torch.cat([even, odd], dim=2).reshape(3 * self.in_channels, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if x.dim() == 4:
            return F.conv_transpose2d(
                x, self.weight.unsqueeze(2), self.bias, (1, self.stride[0]),
                (0, self.padding[0]),
            )
        if not _use_matmul(x):
            return super().forward(x)
        b, c, length = x.shape
        cols, _ = _im2col(x, 3, 1)  # (b * length, c * 3)
        out = torch.addmm(self.bias.repeat(2), cols, self._taps(tap_major=False))
        out = out.reshape(b, length, 2, self.out_channels).permute(0, 3, 1, 2)
        return out.reshape(b, self.out_channels, 2 * length)

    def forward_cl(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, length, c) -> (batch, 2 * length, c)``."""
        b, length, c = x.shape
        if 3 * c > Conv1d.MATMUL_MAX:
            return super().forward(x.transpose(1, 2)).transpose(1, 2)
        cols = _shifted(x, 3, 1)  # (b, length, 3 c)
        out = torch.addmm(
            self.bias.repeat(2), cols.reshape(b * length, 3 * c), self._taps(tap_major=True)
        )
        return out.reshape(b, 2 * length, self.out_channels)


class Conv1dBlock(nn.Module):
    """Conv1d -> GroupNorm -> SiLU over ``(batch, channels, horizon)``, or channels-last
    ``(batch, horizon, channels)`` with ``cl=True``."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = Conv1d(c_in, c_out, kernel_size)
        self.norm = nn.GroupNorm(_groups(c_out), c_out)
        self.act = Activation()

    def forward(self, x: torch.Tensor, cl: bool = False) -> torch.Tensor:
        if not cl:
            return self.act(self.norm(self.conv(x)))
        # GroupNorm pools over time too, so it needs (batch, channels, horizon). Written
        # channels-last by hand (sums over time, then per group) it cost more: 0.85 ms
        # forward + backward against 0.3-0.65 ms for the native kernel on a transposed copy.
        h = self.norm(self.conv.forward_cl(x).transpose(1, 2)).transpose(1, 2)
        return self.act(h)


class ResidualTemporalBlock(nn.Module):
    """Two Conv1d blocks with the embedding ``(batch, emb_dim)`` added after the first;
    ``(batch, c_in, horizon) -> (batch, c_out, horizon)``, channels-last with ``cl=True``."""

    def __init__(
        self, c_in: int, c_out: int, emb_dim: int, kernel_size: int = 5
    ) -> None:
        super().__init__()
        self.block1 = Conv1dBlock(c_in, c_out, kernel_size)
        self.block2 = Conv1dBlock(c_out, c_out, kernel_size)
        self.emb = nn.Sequential(Activation(), nn.Linear(emb_dim, c_out))
        self.skip = Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor, cl: bool = False) -> torch.Tensor:
        e = self.emb(emb)
        e = e[:, None, :] if cl else e.view(*e.shape, *(1,) * (x.dim() - 2))
        h = self.block1(x, cl) + e
        if isinstance(self.skip, Conv1d):
            skip = self.skip.forward_cl(x) if cl else self.skip(x)
        else:
            skip = x
        return self.block2(h, cl) + skip


class AgentAttention(nn.Module):
    """Self-attention across agents at each time index, residual.

    Input ``(batch * agents, channels, horizon)``, or channels-last ``(batch * agents,
    horizon, channels)`` with ``cl=True``; each agent's feature vector at time ``h`` attends
    over all agents' vectors at ``h``.
    """

    def __init__(self, channels: int, n_agents: int, heads: int = 4) -> None:
        super().__init__()
        heads = math.gcd(channels, heads) or 1
        self.n_agents = n_agents
        self.norm = nn.LayerNorm(channels)
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)

    def forward(
        self, x: torch.Tensor, agent_mask: torch.Tensor | None = None, cl: bool = False
    ) -> torch.Tensor:
        if cl:
            return self._forward_cl(x, agent_mask)
        if x.dim() == 4:  # (n, c, 1, h) channels-last: its (n, h, c) view, no copy
            out = self._forward_cl(x.squeeze(2).transpose(1, 2), agent_mask)
            return out.transpose(1, 2).unsqueeze(2)
        a = self.n_agents
        h = x.shape[-1]
        seq = rearrange(x, "(b a) c h -> (b h) a c", a=a)
        q = self.norm(seq)
        pad = None
        if agent_mask is not None:
            pad = _attention_pad(agent_mask)[:, None, :].expand(-1, h, -1).reshape(-1, a)
        out = self._attend(q, pad)
        return x + rearrange(out, "(b h) a c -> (b a) c h", h=h)

    def _forward_cl(self, x: torch.Tensor, agent_mask: torch.Tensor | None) -> torch.Tensor:
        """The same function on channels-last ``(batch * agents, horizon, channels)``, with
        no copy before the LayerNorm and the products written as broadcasts + sums, which
        inductor fuses into one loop each (batched matmuls of a-by-a scores cost ~130 us per
        call under ``torch.compile``, ~12 calls per training step). Against the
        ``(b h) a c`` rearrangement of :meth:`forward`, the compiled training step was 3-8 %
        faster at 2 threads, 1 % at 1 thread (MADiff defaults, A/B in one process)."""
        attn = self.attn
        a, heads = self.n_agents, attn.num_heads
        n, h, c = x.shape
        qkv = F.linear(self.norm(x), attn.in_proj_weight, attn.in_proj_bias)
        qq, kk, vv = qkv.view(n // a, a, h, 3, heads, c // heads).unbind(3)
        # scores[b, i, j, h, head] = <q of agent i, k of agent j>
        scores = (qq[:, :, None] * kk[:, None, :]).sum(-1) * (c // heads) ** -0.5
        if agent_mask is not None:
            pad = _attention_pad(agent_mask)
            scores = scores.masked_fill(pad[:, None, :, None, None], float("-inf"))
        weights = scores.softmax(2)
        out = (weights[..., None] * vv[:, None, :]).sum(2)  # (b, i, h, heads, c / heads)
        return x + attn.out_proj(out.reshape(n, h, c))

    def _attend(self, q: torch.Tensor, pad: torch.Tensor | None) -> torch.Tensor:
        """``nn.MultiheadAttention``'s math over ``(n, agents, c)`` with its weights, written
        out: for sequences of a few agents, PyTorch's fused CPU attention kernel took ~0.9 ms
        per call in training (torch 2.13, 2 threads) against a handful of small matmuls."""
        attn = self.attn
        n, a, c = q.shape
        heads = attn.num_heads
        qkv = F.linear(q, attn.in_proj_weight, attn.in_proj_bias)  # (n, a, 3c)
        # unbind at the q/k/v axis of qkv's own layout: its backward stacks the three
        # gradients straight into that layout. Indexing a permuted view instead cost a
        # zero-filled buffer per slice and a layout copy in backward: the eager MADiff
        # training step took x0.975 / x0.983 the time with unbind (two A/Bs alternating
        # 10-step blocks in one run, Zen 5, 2 threads); bit-identical values.
        qq, kk, vv = (
            t.transpose(1, 2) for t in qkv.view(n, a, 3, heads, c // heads).unbind(2)
        )  # (n, heads, a, c / heads)
        scores = qq @ kk.transpose(-1, -2) * (c // heads) ** -0.5  # (n, heads, a, a)
        if pad is not None:
            scores = scores.masked_fill(pad[:, None, None, :], float("-inf"))
        out = scores.softmax(-1) @ vv  # (n, heads, a, c / heads)
        out = out.transpose(1, 2).reshape(n, a, c)
        return attn.out_proj(out)


def _attention_pad(agent_mask: torch.Tensor) -> torch.Tensor:
    """``(batch, agents)`` keys to ignore: the absent agents, except in a sample where every
    agent is absent (all keys masked would give NaN; such a row attends to everything)."""
    pad = ~agent_mask
    return pad & ~pad.all(dim=-1, keepdim=True)


class TemporalUNet(nn.Module):
    """Temporal Conv1D U-Net over ``(batch * agents, in_channels, horizon)``.

    Args:
        in_channels: features per time step (the transition / observation width).
        out_channels: output features (defaults to ``in_channels``).
        base_width: channels of the first level; level ``i`` has ``base_width * dim_mults[i]``.
        dim_mults: width multipliers; ``len(dim_mults) - 1`` downsamplings.
        cond_dim: width of the extra condition vector (0: none).
        n_agents: agents folded into the batch (1 for a plain U-Net).
        agent_attention: cross-agent attention at the bottleneck and on decoder skips.
        res_blocks: residual blocks per encoder and decoder level (Diffuser: 2, the
            default; the bottleneck always has two).
    """

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int | None = None,
        base_width: int = 32,
        dim_mults: Sequence[int] = (1, 2, 4),
        cond_dim: int = 0,
        kernel_size: int = 5,
        n_agents: int = 1,
        agent_attention: bool = False,
        attention_heads: int = 4,
        res_blocks: int = 2,
    ) -> None:
        super().__init__()
        if res_blocks < 1:
            raise ValueError(f"TemporalUNet needs res_blocks >= 1, got {res_blocks}.")
        if in_channels < 1 or base_width < 1 or not dim_mults:
            raise ValueError(
                f"TemporalUNet needs in_channels >= 1, base_width >= 1 and dim_mults; got "
                f"in_channels={in_channels}, base_width={base_width}, dim_mults={dim_mults}."
            )
        self.in_channels = in_channels
        self.out_channels = out_channels or in_channels
        self.n_agents = n_agents
        self.agent_attention = bool(agent_attention) and n_agents > 1
        self.cond_dim = cond_dim
        # see forward(): channels-last pays off only under torch.compile
        self.channels_last_training = False
        # see forward(): oneDNN's channels-last convolutions, eager on the CPU
        self.nhwc = True
        self.n_down = len(dim_mults) - 1
        dims = [in_channels] + [base_width * m for m in dim_mults]
        emb = base_width
        self.time_mlp = nn.Sequential(
            SinusoidalPosEmb(emb),
            nn.Linear(emb, emb * 4),
            Activation(),
            nn.Linear(emb * 4, emb),
        )
        if cond_dim:
            self.cond_mlp = nn.Sequential(
                nn.Linear(cond_dim, emb), Activation(), nn.Linear(emb, emb)
            )
            self.null_cond = nn.Parameter(torch.zeros(emb))
            emb_dim = 2 * emb
        else:
            emb_dim = emb

        def level(c_in: int, c_out: int) -> list[nn.Module]:
            """``res_blocks`` residual blocks, ``c_in -> c_out`` then ``c_out -> c_out``."""
            return [ResidualTemporalBlock(c_in, c_out, emb_dim, kernel_size)] + [
                ResidualTemporalBlock(c_out, c_out, emb_dim, kernel_size)
                for _ in range(res_blocks - 1)
            ]

        self.downs = nn.ModuleList()
        skip_dims = []
        for i, (c_in, c_out) in enumerate(zip(dims[:-1], dims[1:])):
            last = i == len(dims) - 2
            # blocks before the down conv, as before res_blocks existed: same initial weights
            blocks = level(c_in, c_out)
            down = Conv1d(c_out, c_out, 3, stride=2) if not last else nn.Identity()
            self.downs.append(nn.ModuleList([*blocks, down]))
            skip_dims.append(c_out)
        mid = dims[-1]
        self.mid1 = ResidualTemporalBlock(mid, mid, emb_dim, kernel_size)
        self.mid2 = ResidualTemporalBlock(mid, mid, emb_dim, kernel_size)
        self.mid_attn = (
            AgentAttention(mid, n_agents, attention_heads)
            if self.agent_attention
            else None
        )
        self.ups = nn.ModuleList()
        self.skip_attn = nn.ModuleList()
        rev = list(zip(dims[1:], dims[:-1]))[::-1]
        for c_skip_out, c_prev in rev[:-1]:
            # c_skip_out: channels coming from below and of the skip; output c_prev.
            c = c_skip_out
            self.ups.append(nn.ModuleList([*level(c * 2, c_prev), UpConv1d(c_prev)]))
            self.skip_attn.append(
                AgentAttention(c, n_agents, attention_heads)
                if self.agent_attention
                else nn.Identity()
            )
        self.final = nn.Sequential(
            Conv1dBlock(
                base_width * dim_mults[0], base_width * dim_mults[0], kernel_size
            ),
            Conv1d(base_width * dim_mults[0], self.out_channels, 1),
        )

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        cond: torch.Tensor | None = None,
        drop_cond: torch.Tensor | None = None,
        agent_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``x (batch * agents, in_channels, horizon) -> (batch * agents, out_channels, horizon)``.

        With ``channels_last_training`` set and gradients on, the activations inside are
        channels-last ``(batch * agents, horizon, channels)`` and every narrow convolution is
        a matrix product (:meth:`Conv1d.forward_cl`); otherwise they stay channels-first.
        Both compute the same function (tested); input and output are channels-first either
        way. Measured on MADiff's training tensors (U-Net forward + backward, 2 threads,
        interleaved in one process): eager 49.2 ms channels-last vs 44.6 ms channels-first,
        but under ``torch.compile`` 20.4 vs 35.4 ms, so MADiff's ``compile=True`` sets it.

        Otherwise, on the CPU with ``nhwc`` set (the default), inputs that are not small
        inference inputs (:func:`_use_matmul`) run as 4-D ``(batch * agents, channels, 1,
        horizon)`` tensors in ``torch.channels_last`` memory format: the convolutions are
        oneDNN's 2-D ones without its reorders, GroupNorm and SiLU keep the layout, and
        cross-agent attention reads the channels-last view without a copy. Same function up
        to float rounding (tested against float64). ``python -m benchmarks.unet_layout``
        (Zen 5, 2 threads, alternated in one process): the MADiff training step ×0.88 on
        MPE spread (×1.00 on SMAX), the EAQ fit step ×0.95, no-gradient EAQ forwards
        ×0.81-0.85 the channels-first time. Small inputs without gradients (a MADiff act)
        keep the channels-first ``addmm`` path; so does bfloat16 autocast
        (``precision="bf16"``), where the 4-D layout was ×1.11 slower, and CUDA (not
        measured there).
        """
        cl = torch.is_grad_enabled() and self.channels_last_training
        nhwc = (
            self.nhwc
            and not cl
            and x.device.type == "cpu"
            and not _use_matmul(x)
            and not torch.is_autocast_enabled("cpu")
        )
        horizon = x.shape[-1]
        mult = 2**self.n_down
        pad = (-horizon) % mult
        h = x.transpose(1, 2) if cl else x
        if pad:
            h = F.pad(h, (0, 0, 0, pad) if cl else (0, pad))
        if nhwc:
            h = h.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        emb = self.time_mlp(t)
        if self.cond_dim:
            null = self.null_cond.expand(x.shape[0], -1)
            if cond is None:
                c = null
            else:
                c = self.cond_mlp(cond)
                if drop_cond is not None:
                    c = torch.where(drop_cond[:, None], null, c)
            emb = torch.cat([emb, c], dim=-1)
        skips = []
        for *blocks, down in self.downs:
            for block in blocks:
                h = block(h, emb, cl)
            skips.append(h)
            if isinstance(down, Conv1d):
                h = down.forward_cl(h) if cl else down(h)
        h = self.mid1(h, emb, cl)
        if self.mid_attn is not None:
            h = self.mid_attn(h, agent_mask, cl)
        h = self.mid2(h, emb, cl)
        for (*blocks, up), attn in zip(self.ups, self.skip_attn):
            s = skips.pop()
            if self.agent_attention:
                s = attn(s, agent_mask, cl)
            h = torch.cat([h, s], dim=-1 if cl else 1)
            for block in blocks:
                h = block(h, emb, cl)
            h = up.forward_cl(h) if cl else up(h)
        # as in Diffuser, the shallowest skip is unused: the last up-block restores full size
        block, out = self.final
        h = block(h, cl)
        if cl:
            return out.forward_cl(h)[:, :horizon].transpose(1, 2)
        if nhwc:
            return out(h)[..., :horizon].squeeze(2)
        return out(h)[..., :horizon]


__all__ = [
    "AgentAttention",
    "Conv1d",
    "Conv1dBlock",
    "UpConv1d",
    "MLP",
    "ResidualTemporalBlock",
    "SinusoidalPosEmb",
    "TemporalUNet",
]
