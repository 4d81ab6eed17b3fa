"""The U-Net's channels-last layers compute exactly what torch's convolutions compute."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from diffusion_agents.networks import Conv1d, UpConv1d


@pytest.mark.parametrize(
    ("c_in", "c_out", "k", "stride", "length"),
    [(5, 7, 3, 1, 8), (5, 7, 5, 1, 7), (6, 6, 3, 2, 8), (4, 3, 1, 1, 5), (300, 4, 5, 1, 6)],
)
def test_conv1d_channels_last_matches_conv1d(c_in, c_out, k, stride, length):
    torch.manual_seed(0)
    conv = Conv1d(c_in, c_out, k, stride=stride)
    x = torch.randn(3, c_in, length, requires_grad=True)
    ref = F.conv1d(x, conv.weight, conv.bias, stride=stride, padding=k // 2)
    g = torch.randn_like(ref)
    (gx_ref, gw_ref) = torch.autograd.grad(ref, (x, conv.weight), g)
    out = conv.forward_cl(x.transpose(1, 2)).transpose(1, 2)
    (gx, gw) = torch.autograd.grad(out, (x, conv.weight), g)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gw, gw_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("channels", "length"), [(4, 5), (8, 4), (400, 3)])
def test_upconv_channels_last_matches_conv_transpose(channels, length):
    torch.manual_seed(0)
    up = UpConv1d(channels)
    x = torch.randn(2, channels, length, requires_grad=True)
    ref = F.conv_transpose1d(x, up.weight, up.bias, stride=2, padding=1)
    g = torch.randn_like(ref)
    (gx_ref, gw_ref) = torch.autograd.grad(ref, (x, up.weight), g)
    out = up.forward_cl(x.transpose(1, 2)).transpose(1, 2)
    assert out.shape == (2, channels, 2 * length)
    (gx, gw) = torch.autograd.grad(out, (x, up.weight), g)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gw, gw_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("res_blocks", [1, 2, 3])
def test_unet_training_and_inference_layouts_agree(res_blocks):
    """Channels-last training (as under compile=True) and channels-first: one function."""
    from diffusion_agents.networks import TemporalUNet

    torch.manual_seed(0)
    net = TemporalUNet(
        in_channels=7, out_channels=5, base_width=8, dim_mults=(1, 2), cond_dim=1,
        kernel_size=3, n_agents=3, agent_attention=True, res_blocks=res_blocks,
    )
    x, t = torch.randn(6, 7, 7), torch.randint(0, 50, (6,))
    cond, drop = torch.rand(6, 1), torch.tensor([True, False] * 3)
    net.channels_last_training = True
    train_out = net(x, t, cond, drop)
    net.channels_last_training = False
    torch.testing.assert_close(net(x, t, cond, drop), train_out, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        infer_out = net(x, t, cond, drop)
    assert train_out.shape == (6, 5, 7)
    torch.testing.assert_close(train_out.detach(), infer_out, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("attention", [True, False])
def test_unet_nhwc_layout_matches_channels_first_with_gradients(attention):
    """The eager CPU path on 4-D channels-last tensors (TemporalUNet.nhwc, the default for
    training and large inputs) computes the channels-first function: outputs, input and
    parameter gradients against a float64 reference, with an absent agent; it really runs
    on 4-D tensors; small inputs without gradients and bfloat16 autocast keep 3-D tensors."""
    import copy

    from diffusion_agents.networks import Conv1d, TemporalUNet

    torch.manual_seed(0)
    net = TemporalUNet(
        in_channels=7, out_channels=5, base_width=8, dim_mults=(1, 2, 4), cond_dim=1,
        kernel_size=5, n_agents=3, agent_attention=attention,
    )
    x = torch.randn(12, 7, 11, dtype=torch.float64)  # 11 steps: padded to 12, cropped back
    t, cond = torch.randint(0, 50, (12,)), torch.rand(12, 1, dtype=torch.float64)
    mask = torch.ones(4, 3, dtype=torch.bool)
    mask[1, 2] = False
    seen = []
    for m in net.modules():
        if isinstance(m, Conv1d):
            m.register_forward_pre_hook(lambda mod, inp: seen.append(inp[0].dim()))

    def run(model, nhwc, dtype):
        model.nhwc = nhwc
        model.zero_grad()
        xi = x.to(dtype).detach().requires_grad_()
        out = model(xi, t, cond.to(dtype), agent_mask=mask)
        (out * torch.linspace(-1, 1, out.numel(), dtype=dtype).view_as(out)).sum().backward()
        grads = [p.grad.reshape(-1) for p in model.parameters() if p.grad is not None]
        return [v.detach().double() for v in (out, xi.grad, torch.cat(grads))]

    ref = run(copy.deepcopy(net).double(), False, torch.float64)
    seen.clear()
    for nhwc in (False, True):
        got = run(net, nhwc, torch.float32)
        assert set(seen) == {4 if nhwc else 3}
        seen.clear()
        assert got[0].shape == (12, 5, 11)
        for g, r in zip(got, ref):  # float32 rounding: ~1e-5 of the norm for either layout
            assert (g - r).norm() / r.norm() < 1e-4
    with torch.no_grad():
        small = net(x[:3].float(), t[:3], cond[:3].float(), agent_mask=mask[:1])
    assert set(seen) == {3}
    torch.testing.assert_close(small.double(), ref[0][:3], rtol=1e-4, atol=1e-5)
    seen.clear()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # precision="bf16": channels-first
        net(x.float(), t, cond.float(), agent_mask=mask).sum().backward()
    assert set(seen) == {3}


def test_agent_attention_channels_last_form_matches_with_gradients_and_masks():
    from diffusion_agents.networks import AgentAttention

    torch.manual_seed(0)
    att = AgentAttention(16, n_agents=3, heads=4)
    x = torch.randn(4 * 3, 16, 5, requires_grad=True)  # (batch * agents, c, horizon)
    mask = torch.ones(4, 3, dtype=torch.bool)
    mask[1, 2] = False
    mask[3] = False  # every agent absent: attends to everything, no NaN
    ref = att(x, mask)
    out = att(x.transpose(1, 2), mask, cl=True).transpose(1, 2)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    g = torch.randn_like(out)
    (g_ref,) = torch.autograd.grad(ref, x, g)
    (g_out,) = torch.autograd.grad(out, x, g)
    torch.testing.assert_close(g_out, g_ref, rtol=1e-5, atol=1e-6)


def test_agent_attention_written_out_matches_torch_multihead_attention():
    """``_attend`` is nn.MultiheadAttention's math with its weights, gradients included."""
    from diffusion_agents.networks import AgentAttention

    torch.manual_seed(0)
    att = AgentAttention(16, n_agents=3, heads=4)
    q = torch.randn(10, 3, 16, requires_grad=True)  # (batch * horizon, agents, c)
    pad = torch.zeros(10, 3, dtype=torch.bool)
    pad[2, 1] = pad[7, 0] = True
    for key_pad in (None, pad):
        out = att._attend(q, key_pad)
        ref, _ = att.attn(q, q, q, key_padding_mask=key_pad, need_weights=False)
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
        g = torch.randn_like(out)
        got = torch.autograd.grad(out, [q, att.attn.in_proj_weight], g)
        want = torch.autograd.grad(ref, [q, att.attn.in_proj_weight], g)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_unet_res_blocks_sets_the_depth_and_keeps_the_default_state_dict():
    from diffusion_agents.networks import ResidualTemporalBlock, TemporalUNet

    def make(**kw):
        torch.manual_seed(0)
        return TemporalUNet(in_channels=6, base_width=8, dim_mults=(1, 2), **kw)

    def n_blocks(net):
        return sum(isinstance(m, ResidualTemporalBlock) for m in net.modules())

    # per level: res_blocks in the encoder (2 levels) and the decoder (1 level); 2 mid blocks
    assert [n_blocks(make(res_blocks=r)) for r in (1, 2, 3)] == [5, 8, 11]
    # the default keeps the state-dict keys of checkpoints written before the option existed
    assert make().state_dict().keys() == make(res_blocks=2).state_dict().keys()
    assert "downs.0.2.weight" in make().state_dict()  # the first level's downsampling conv
    with pytest.raises(ValueError, match="res_blocks"):
        make(res_blocks=0)
