"""Tests of the shared diffusion core and the temporal U-Net."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from diffusion_agents.diffusion import (
    GaussianDiffusion,
    classifier_free_guidance,
    condition_dropout,
    training_autocast,
)
from diffusion_agents.networks import MLP, SinusoidalPosEmb, TemporalUNet

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_schedules_are_valid():
    for schedule in ("cosine", "linear"):
        d = GaussianDiffusion(n_timesteps=100, schedule=schedule)
        abar = d.alphas_cumprod
        assert torch.all(abar[1:] < abar[:-1])
        assert 0.0 < float(d.betas.min()) and float(d.betas.max()) < 1.0
        assert float(abar[0]) > 0.99 and float(abar[-1]) < 0.05


def test_bad_options_name_the_value():
    with pytest.raises(ValueError, match="prediction='noise'.*allowed"):
        GaussianDiffusion(prediction="noise")
    with pytest.raises(ValueError, match="schedule='quadratic'"):
        GaussianDiffusion(schedule="quadratic")
    d = GaussianDiffusion(n_timesteps=10)
    with pytest.raises(ValueError, match="sampler='euler'"):
        d.sample(lambda x, t: x, (2, 3), sampler="euler")


def test_q_sample_statistics():
    d = GaussianDiffusion(n_timesteps=200)
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((20000, 1), 0.7)
    for s in (0, 50, 150, 199):
        t = torch.full((x0.shape[0],), s, dtype=torch.long)
        noise = torch.randn(x0.shape, generator=g)
        x = d.q_sample(x0, t, noise)
        mean, std = float(x.mean()), float(x.std())
        assert mean == pytest.approx(0.7 * float(d.alphas_cumprod[s].sqrt()), abs=0.02)
        assert std == pytest.approx(float((1 - d.alphas_cumprod[s]).sqrt()), abs=0.02)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_parameterizations_round_trip(prediction):
    d = GaussianDiffusion(n_timesteps=50, prediction=prediction)
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand((8, 3, 5), generator=g) * 2 - 1
    noise = torch.randn(x0.shape, generator=g)
    t = torch.randint(0, 50, (8,), generator=g)
    x_t = d.q_sample(x0, t, noise)
    target = d.target(x0, noise, t)
    assert torch.allclose(d.predict_x0(target, x_t, t), x0, atol=1e-3)
    # an oracle model has zero loss
    loss = d.loss(lambda x, tt: target, x0, t=t, noise=noise)
    assert float(loss) < 1e-10


def test_loss_weights_mask_positions():
    d = GaussianDiffusion(n_timesteps=20, prediction="x0")
    x0 = torch.zeros(4, 2, 6)
    w = torch.zeros(4, 1, 6)
    w[..., :3] = 1.0

    def model(x, t):
        out = torch.zeros_like(x)
        out[..., 3:] = 100.0  # wrong only where the weight is zero
        return out

    assert float(d.loss(model, x0, weights=w)) == 0.0
    assert float(d.loss(model, x0)) > 1.0


@functools.cache
def _train_toy(
    prediction: str, steps: int = 400
) -> tuple[GaussianDiffusion, nn.Module]:
    """A tiny MLP denoiser on a 1-D distribution with two modes at +-0.5 (cached)."""
    torch.manual_seed(0)
    d = GaussianDiffusion(n_timesteps=100, prediction=prediction)
    emb = SinusoidalPosEmb(16)
    net = MLP(17, 1, hidden=(64, 64))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)

    def model(x, t):
        return net(torch.cat([x, emb(t)], dim=-1))

    for _ in range(steps):
        sign = torch.randint(0, 2, (128, 1), generator=g).float() * 2 - 1
        x0 = sign * 0.5 + 0.02 * torch.randn((128, 1), generator=g)
        loss = d.loss(model, x0, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return d, model


@pytest.mark.parametrize("prediction", ["eps", "x0"])
@pytest.mark.parametrize("sampler,steps", [("ddim", 5), ("ddim", 10), ("ddpm", 20)])
def test_samples_from_pure_noise_land_in_data_range(prediction, sampler, steps):
    d, model = _train_toy(prediction)
    g = torch.Generator().manual_seed(3)
    x = d.sample(model, (1000, 1), steps=steps, sampler=sampler, generator=g)
    assert torch.isfinite(x).all()
    assert float(x.abs().max()) <= 1.0 + 1e-6
    # not saturated at the clip bounds, and both modes are drawn
    assert float((x.abs() > 0.95).float().mean()) < 0.05
    assert 0.2 < float(x.abs().mean()) < 0.8
    assert (
        float((x > 0.1).float().mean()) > 0.2 and float((x < -0.1).float().mean()) > 0.2
    )


def test_unclipped_eps_prediction_saturates_with_few_steps():
    """The pitfall the clip fixes: x0 = (x_K - sqrt(1 - abar_K) eps) / sqrt(abar_K) explodes."""
    d, model = _train_toy("eps")
    g = torch.Generator().manual_seed(3)
    x = d.sample(model, (1000, 1), steps=3, sampler="ddim", generator=g, clip=False)
    assert float((x.abs() > 1.0).float().mean()) > 0.5
    g = torch.Generator().manual_seed(3)
    x = d.sample(model, (1000, 1), steps=3, sampler="ddim", generator=g)
    assert float(x.abs().max()) <= 1.0 and float((x.abs() > 0.95).float().mean()) < 0.05


def test_inpainting_holds_known_values_and_same_seed_same_result():
    d = GaussianDiffusion(n_timesteps=50, prediction="eps")
    net = TemporalUNet(in_channels=3, base_width=8, dim_mults=(1,))
    mask = torch.zeros(2, 3, 7, dtype=torch.bool)
    mask[..., :2] = True
    values = torch.full((2, 3, 7), 0.25)

    def model(x, t):
        return net(x, t)

    for sampler, steps in (("ddim", 4), ("ddpm", 6)):
        outs = []
        for _ in range(2):
            g = torch.Generator().manual_seed(7)
            outs.append(
                d.sample(
                    model,
                    (2, 3, 7),
                    steps=steps,
                    sampler=sampler,
                    inpaint=(mask, values),
                    generator=g,
                    eta=0.5,
                )
            )
        assert torch.equal(outs[0], outs[1])
        assert torch.all(outs[0][mask] == 0.25)
        assert float(outs[0][~mask].abs().max()) <= 1.0
    # a callable works too
    out = d.sample(
        model, (2, 3, 7), steps=3, inpaint=lambda x: torch.where(mask, values, x)
    )
    assert torch.all(out[mask] == 0.25)


def test_low_temperature_reduces_spread():
    d, model = _train_toy("x0")
    g = torch.Generator().manual_seed(0)
    hot = d.sample(model, (1024, 1), steps=10, sampler="ddpm", generator=g)
    g = torch.Generator().manual_seed(0)
    cold = d.sample(
        model, (1024, 1), steps=10, sampler="ddpm", temperature=0.0, generator=g
    )
    # temperature only scales the injected noise; zero noise gives a deterministic chain
    g = torch.Generator().manual_seed(0)
    cold2 = d.sample(
        model, (1024, 1), steps=10, sampler="ddpm", temperature=0.0, generator=g
    )
    assert torch.equal(cold, cold2)
    assert not torch.equal(hot, cold)


def test_classifier_free_guidance_combines_and_batches():
    calls = []

    def net_fn(x, t, drop):
        calls.append(x.shape[0])
        return torch.where(drop[:, None], torch.zeros_like(x), torch.ones_like(x))

    x = torch.randn(3, 4)
    t = torch.zeros(3, dtype=torch.long)
    out = classifier_free_guidance(net_fn, 1.5)(x, t)
    assert torch.allclose(out, torch.full_like(x, 1.5)) and calls == [6]
    calls.clear()
    out2 = classifier_free_guidance(net_fn, 1.5, batched=False)(x, t)
    assert torch.equal(out, out2) and calls == [3, 3]
    calls.clear()
    assert torch.equal(classifier_free_guidance(net_fn, 1.0)(x, t), torch.ones_like(x))
    assert calls == [3]
    drop = condition_dropout(10000, 0.25, generator=torch.Generator().manual_seed(0))
    assert drop.dtype == torch.bool and 0.22 < float(drop.float().mean()) < 0.28
    with pytest.raises(ValueError, match="p=1.5"):
        condition_dropout(3, 1.5)


# -- networks ----------------------------------------------------------------------------


@pytest.mark.parametrize("horizon", [1, 5, 8, 11])
def test_unet_shapes_any_horizon(horizon):
    net = TemporalUNet(
        in_channels=5, out_channels=4, base_width=8, dim_mults=(1, 2, 4), cond_dim=2
    )
    x = torch.randn(3, 5, horizon)
    out = net(
        x,
        torch.tensor([0, 5, 9]),
        cond=torch.randn(3, 2),
        drop_cond=torch.tensor([False, True, False]),
    )
    assert out.shape == (3, 4, horizon)


def test_unet_agent_attention_mixes_agents_only_when_on():
    torch.manual_seed(0)
    a, b, h = 3, 2, 6
    x = torch.randn(b * a, 4, h)
    t = torch.zeros(b * a, dtype=torch.long)
    x2 = x.clone()
    x2[1] += 1.0  # agent 1 of sample 0 changes
    for attention in (False, True):
        net = TemporalUNet(
            in_channels=4,
            base_width=8,
            dim_mults=(1, 2),
            n_agents=a,
            agent_attention=attention,
        ).eval()
        with torch.no_grad():
            y, y2 = net(x, t), net(x2, t)
        same_agent0 = torch.allclose(y[0], y2[0])
        assert same_agent0 == (not attention)
        assert torch.allclose(y[a:], y2[a:])  # other samples never mix
    # masked agents are not attended to
    net = TemporalUNet(
        in_channels=4, base_width=8, dim_mults=(1, 2), n_agents=a, agent_attention=True
    ).eval()
    mask = torch.tensor([[True, False, True], [True, True, True]])
    with torch.no_grad():
        y, y2 = net(x, t, agent_mask=mask), net(x2, t, agent_mask=mask)
    assert torch.allclose(y[0], y2[0], atol=1e-6)


def test_training_autocast_bf16_fp32_and_refusals(monkeypatch):
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    with training_autocast("bf16", "cpu"):
        assert (a @ b).dtype == torch.bfloat16
    with training_autocast("fp32", torch.device("cpu")):
        assert (a @ b).dtype == torch.float32
    with pytest.raises(ValueError, match="precision='fp16' is not supported"):
        training_autocast("fp16", "cpu")
    # No GPU here: a stand-in for a pre-Ampere CUDA device (the check runs before any
    # CUDA call that would need one).
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda dev=None: "Tesla V100")
    with pytest.raises(ValueError, match="Tesla V100 has none. Use precision='fp32'"):
        training_autocast("bf16", "cuda")
    training_autocast("fp32", "cuda")  # float32 needs nothing
