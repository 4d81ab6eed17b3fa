"""FlatParameters / FlatEMA: the flat training state computes what per-tensor updates do."""

from __future__ import annotations

import copy

import pytest
import torch
from ema_pytorch import EMA
from torch import nn

from diffusion_agents.flat_training import FlatEMA, FlatParameters


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7), nn.SiLU(), nn.Linear(7, 3), nn.LayerNorm(3))


def _loss(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return net(x).square().mean()


def test_flat_training_step_matches_per_tensor_adamw_and_clipping():
    ref, net = _net(), _net()
    before = copy.deepcopy(net.state_dict())
    flat = FlatParameters(net)
    # same parameters, same values, each a view of the one flat tensor
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])
    assert all(p.data_ptr() >= flat.data.data_ptr() for p in net.parameters())
    opt_ref = torch.optim.AdamW(ref.parameters(), lr=1e-2, fused=True)
    opt = torch.optim.AdamW([flat.param], lr=1e-2, fused=True)
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        x = torch.randn(16, 5, generator=gen) * 10  # large: clipping is active
        opt_ref.zero_grad(set_to_none=True)
        _loss(ref, x).backward()
        norm_ref = torch.nn.utils.clip_grad_norm_(list(ref.parameters()), 0.1)
        opt_ref.step()
        flat.zero_grad()
        _loss(net, x).backward()
        norm = flat.clip_grad_norm_(0.1)
        opt.step()
        assert norm == pytest.approx(float(norm_ref), rel=1e-5)
    for (k, a), b in zip(ref.state_dict().items(), net.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=k)


def test_flat_ema_matches_ema_pytorch():
    ref_model, model = _net(), _net()
    flat = FlatParameters(model)
    kw = dict(beta=0.9, update_after_step=2, update_every=2, include_online_model=False)
    ref_ema = EMA(ref_model, **kw)
    ema = FlatEMA(model, flat, **kw)
    gen = torch.Generator().manual_seed(0)
    for _ in range(9):
        noise = [torch.randn(p.shape, generator=gen) for p in ref_model.parameters()]
        with torch.no_grad():
            for p, q, n in zip(ref_model.parameters(), model.parameters(), noise):
                p.add_(n)
                q.add_(n)
        ref_ema.update()
        ema.update()
    assert int(ema.step) == int(ref_ema.step)
    for (k, a), b in zip(
        ref_ema.ema_model.state_dict().items(), ema.ema_model.state_dict().values()
    ):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6, msg=k)
    # the EMA copy is its own storage: changing the online weights leaves it alone
    snapshot = ema.flat.data.clone()
    flat.data.add_(1.0)
    assert torch.equal(ema.flat.data, snapshot)


def test_flat_parameters_refuse_mixed_dtypes():
    net = nn.Linear(2, 2)
    net.bias.data = net.bias.data.double()
    with pytest.raises(ValueError, match="one dtype"):
        FlatParameters(net)


def test_flat_single_tensor_adam_is_bit_identical_to_per_tensor_adam():
    """EAQ's optimizer: Adam's per-tensor kernel over the flat tensor gives the same bits as
    Adam over the separate parameters (so the switch changed no EAQ result)."""
    ref, net = _net(), _net()
    flat = FlatParameters(net)
    opt_ref = torch.optim.Adam(ref.parameters(), lr=1e-2, foreach=False)
    opt = torch.optim.Adam([flat.param], lr=1e-2, foreach=False)
    gen = torch.Generator().manual_seed(2)
    for _ in range(7):
        x = torch.randn(16, 5, generator=gen)
        opt_ref.zero_grad(set_to_none=True)
        _loss(ref, x).backward()
        opt_ref.step()
        flat.zero_grad()
        _loss(net, x).backward()
        opt.step()
    for (k, a), b in zip(ref.state_dict().items(), net.state_dict().values()):
        assert torch.equal(a, b), k
