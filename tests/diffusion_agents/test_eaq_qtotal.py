"""Q-total guidance: lambda > 0 against lambda = 0 on the same seed, data and model.

The data give the check a real chance to fail: MPE spread with 2 agents, where every agent of
an episode walks towards its landmark or every agent walks away (p = 0.5), so the data have a
better and a worse mode (``benchmarks.eaq_guidance_toy``). Only ``q_weight`` differs between
the fits compared. The return check reads the team rewards the model generates (decoded
reward rows), not the Q estimator that the loss optimizes; it runs on 12-step episodes, whose
modes are far apart, with a fit long enough that lambda = 0 reproduces both. The cheaper
6-step fits check the Q estimate and bf16 (docs/eaq.md, "Q guidance on a toy that the
generator can fit").
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.eaq_guidance_toy import (
    BASE,
    TowardsOrAway,
    record_towards_or_away,
    towards_share,
)
from diffusion_agents.eaq import EAQAugmenter, EAQConfig
from wrappers import load_episodes, record_dataset


def _fit_both(precision: str):
    """The same seed, data and model fitted with lambda = 0 and 0.3; records which dtype
    the fit's convolutions ran in."""
    ds = record_towards_or_away(f"mpe2/spread2/bimodal-{precision}-v0", 60, max_cycles=6)
    real = load_episodes(ds)
    base = EAQConfig(
        n_steps=300, batch_size=32, dim=16, dim_mults=(1, 2), q_hidden=64,
        q_warmup_steps=100, n_diffusion_steps=50, sample_steps=10, sample_batch_size=256,
        seed=0, precision=precision,
    )
    seen: set[torch.dtype] = set()

    def conv_dtype(module, args, output):
        if isinstance(module, torch.nn.Conv1d) and torch.is_grad_enabled():
            seen.add(output.dtype)

    out = {}
    for lam in (0.0, 0.3):
        hook = torch.nn.modules.module.register_module_forward_hook(conv_dtype)
        try:
            aug = EAQAugmenter(base.replace(q_weight=lam)).fit(real, show_progress=False)
        finally:
            hook.remove()
        assert all(p.dtype == torch.float32 for p in aug.model.parameters())
        out[lam] = aug.sample(256, seed=1, show_progress=False)
    return real, out, seen


@pytest.fixture(scope="module", params=["fp32", "bf16"])
def fits(request, tmp_path_factory):
    # module scope runs before the per-test Minari root of conftest: a root of its own
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(tmp_path_factory.mktemp("minari")))
        return request.param, *_fit_both(request.param)


def test_q_total_guidance_raises_the_q_estimate_of_synthetic_episodes(fits):
    """Also with ``precision="bf16"``: the fit's convolutions then run in bfloat16 (checked),
    parameters stay float32, and guidance still moves the samples."""
    precision, real, out, seen = fits
    assert seen == {torch.bfloat16 if precision == "bf16" else torch.float32}
    r0, r1 = out[0.0], out[0.3]
    assert r0.acceptance_rate > 0.5 and r1.acceptance_rate > 0.5
    # fixed-length data gives fixed-length samples (EpisodeLayout.min_length)
    assert set(r0.batch.lengths) == set(r1.batch.lengths) == {6}
    spread = real.returns.std()
    assert abs(r0.batch.returns.mean() - real.returns.mean()) < spread  # lambda = 0 imitates
    assert r1.q_estimate.mean() > r0.q_estimate.mean() + 0.5 * spread


@pytest.fixture(scope="module")
def fits12(tmp_path_factory):
    """The toy at 12 steps, where the two modes are far apart (returns about -6 towards and
    -16 away, within-mode spread 2), fitted long enough that lambda = 0 reproduces both
    modes (``benchmarks.eaq_guidance_toy.BASE``), seed 0: lambda = 0, the default 0.3 with
    the paper's guidance (all rows), and 0.3 guided through the action rows only."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(tmp_path_factory.mktemp("minari12")))
        real = load_episodes(record_towards_or_away("mpe2/spread2/bimodal12-v0", 60, 12))
    out = {}
    for name, changes in (("none", {"q_weight": 0.0}), ("all", {"q_weight": 0.3}),
                          ("actions", {"q_weight": 0.3, "q_guidance_through": "actions"})):
        cfg = EAQConfig.from_dict({**BASE, **changes, "seed": 0})
        out[name] = EAQAugmenter(cfg).fit(real, show_progress=False).sample(
            1024, seed=1, show_progress=False
        )
    return real, out


def _gain(r0, r1) -> tuple[float, float]:
    """Mean return of ``r1`` minus ``r0`` and the standard error of that difference."""
    se = np.sqrt(r0.returns.var(ddof=1) / len(r0.returns)
                 + r1.returns.var(ddof=1) / len(r1.returns))
    return float(r1.returns.mean() - r0.returns.mean()), float(se)


def test_q_total_guidance_raises_the_return_of_synthetic_episodes(fits12):
    """The generated return (decoded reward rows, not ``Q_phi``) of lambda = 0.3 exceeds
    lambda = 0's from the same seed, and lambda = 0 imitates the data: both modes at about
    their real shares, the better one at its real return.

    How much it exceeds depends on the guidance. Guided through the action rows
    (``q_guidance_through="actions"``) the gain is large and stable: +1.57 / +0.85 / +0.74
    (3.2-6.9 standard errors) over fit seeds 0-2 on an AMD EPYC, +1.15 (4.9) for seed 0 on
    an Intel Xeon; the test asks for two standard errors. The paper's guidance through all
    rows (the default) gains a tenth of the return's spread: +0.67 / +0.43 / +0.58 (2.9 /
    1.9 / 2.5 standard errors) on the AMD CPU but +0.13 to +0.20 (0.6-0.9) for seed 0 on the
    Intel one, where float rounding changes the fit; the test asks that it exceeds lambda = 0,
    not that it does so by two standard errors on every CPU (docs/eaq.md, "Q guidance on a
    toy that the generator can fit")."""
    real, out = fits12
    r0 = out["none"].batch
    assert {*r0.lengths, *out["all"].batch.lengths, *out["actions"].batch.lengths} == {12}
    share = towards_share(r0) > 0.5
    real_share = towards_share(real) > 0.5
    assert abs(share.mean() - real_share.mean()) < 0.15  # lambda = 0 keeps both modes
    assert abs(r0.returns[share].mean() - real.returns[real_share].mean()) < 1.5
    diff, se = _gain(r0, out["actions"].batch)
    assert diff > 2 * se, ("actions", diff, se)
    diff, se = _gain(r0, out["all"].batch)
    assert diff > 0, ("all rows", diff, se)


def _small_model(dataset_id: str, **config):
    from diffusion_agents.eaq.encode import EpisodeLayout
    from diffusion_agents.eaq.model import EAQModel

    ds = record_dataset(
        "mpe2/simple_spread_v3", TowardsOrAway(seed=0), 4, dataset_id,
        env_kwargs={"N": 2, "max_cycles": 6}, show_progress=False,
    )
    layout = EpisodeLayout.from_batch(load_episodes(ds))
    cfg = EAQConfig(dim=8, dim_mults=(1,), q_hidden=16, **config)
    return layout, EAQModel(layout=layout, config=cfg)


def test_q_total_guidance_is_capped_so_it_cannot_exploit_extrapolation():
    """``L_Qtot`` rewards raising ``Q_phi`` up to the best normalized return of the data (1)
    and no further, whatever ``Q_phi`` extrapolates off the data."""
    layout, model = _small_model("mpe2/spread2/capped-v0")
    with torch.no_grad():
        model.q.mlp.net[-1].bias.fill_(10.0)  # an estimator that extrapolates to 10
    x = torch.rand(8, layout.num_features, layout.horizon) * 2 - 1
    assert model.q(x).min() > 1.0
    losses = model.losses(
        x, torch.ones(8, layout.horizon, dtype=torch.bool), q_weight=0.3, temperature=0.2
    )
    assert losses["q_guidance"].item() == -1.0
    model.zero_grad()
    losses["q_guidance"].backward()  # beyond the cap: no push on the generator at all
    grads = [p.grad for p in model.net.parameters() if p.grad is not None]
    assert all(float(g.abs().max()) == 0.0 for g in grads)


@pytest.mark.parametrize("through", ["all", "actions"])
def test_q_guidance_through_actions_leaves_observation_rows_alone(through):
    """``q_guidance_through="actions"``: ``L_Qtot``'s gradient reaches ``f_theta``'s estimate
    on the action rows only; with ``"all"`` (the paper) also on the observation rows."""
    layout, model = _small_model(f"mpe2/spread2/through-{through}-v0", q_guidance_through=through)
    captured = []

    def keep(module, args, output):
        output.retain_grad()
        captured.append(output)

    handle = model.net.register_forward_hook(keep)
    x = torch.rand(8, layout.num_features, layout.horizon) * 1.6 - 0.8
    losses = model.losses(
        x, torch.ones(8, layout.horizon, dtype=torch.bool), q_weight=0.3, temperature=0.2
    )
    handle.remove()
    losses["q_guidance"].backward()
    grad = captured[0].grad.abs().sum(dim=(0, 2))  # (features,)
    obs = torch.as_tensor(layout.rows("obs"))
    act = torch.as_tensor(layout.rows("action_onehot"))
    assert float(grad[act].sum()) > 0
    if through == "actions":
        assert float(grad[obs].sum()) == 0.0
    else:
        assert float(grad[obs].sum()) > 0


def test_q_guidance_through_is_validated():
    with pytest.raises(ValueError, match="q_guidance_through"):
        EAQConfig(q_guidance_through="observations")


def _gap_after_q_training(alpha: float) -> float:
    """Train ``Q_phi`` alone for 60 steps on ``q_fit``; return its mean rating of
    ``f_theta``'s estimates minus its rating of the data."""
    torch.manual_seed(0)
    layout, model = _small_model(f"mpe2/spread2/conservative-{int(alpha > 0)}-v0",
                                 q_conservative=alpha)
    x = torch.rand(16, layout.num_features, layout.horizon) * 1.6 - 0.8
    mask = torch.ones(16, layout.horizon, dtype=torch.bool)
    opt = torch.optim.Adam(model.q.parameters(), lr=1e-2)
    for step in range(60):
        gen = torch.Generator().manual_seed(step)
        losses = model.losses(x, mask, q_weight=0.3, temperature=0.2, generator=gen)
        model.zero_grad()
        losses["q_fit"].backward()
        assert all(p.grad is None or float(p.grad.abs().max()) == 0.0
                   for p in model.net.parameters())  # the term never reaches f_theta
        opt.step()
    with torch.no_grad():  # f_theta's estimate from a half-noised batch, as in the loss
        t = torch.full((16,), model.diffusion.n_timesteps // 2)
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(99))
        x0_hat = model.net(model.diffusion.q_sample(x, t, noise), t).clamp(-1, 1)
        return float((model.q(model.relax_actions(x0_hat, 0.2)) - model.q(x)).mean())


def test_conservative_q_rates_the_generator_output_below_the_data():
    """``q_conservative``: the gap term trains ``Q_phi`` only, and leaves it rating
    ``f_theta``'s estimates lower, relative to the data, than the paper's estimator does."""
    plain, conservative = _gap_after_q_training(0.0), _gap_after_q_training(0.5)
    assert conservative < plain - 0.5, (plain, conservative)


def test_q_conservative_is_validated():
    with pytest.raises(ValueError, match="q_conservative"):
        EAQConfig(q_conservative=-0.1)


def test_q_time_left_reads_the_steps_left_from_the_padding_row():
    """``q_time_left=True``: ``Q_phi`` gets ``2 left / H - 1`` with ``left`` counted from the
    padding row (no gradient through it); without it, ``Q_phi`` ignores that row."""
    layout, model = _small_model("mpe2/spread2/time-left-v0", q_time_left=True)
    _, plain = _small_model("mpe2/spread2/time-left-plain-v0")
    h, pad = layout.horizon, layout.row("padding")
    lengths = torch.tensor([2, h, 1])
    x = torch.rand(3, layout.num_features, h) * 2 - 1
    x[:, pad, :] = torch.where(torch.arange(h)[None, :] < lengths[:, None], -0.9, 0.8)
    left = (lengths[:, None] - torch.arange(h)[None, :]).clamp(min=0)
    assert torch.allclose(model.q.time_left(x), 2.0 * left / h - 1.0)
    assert model.q.mlp.net[0].in_features == plain.q.mlp.net[0].in_features + 1

    shorter = x.clone()
    shorter[1, pad, h - 2 :] = 0.8  # episode 1 now ends two steps earlier
    assert not torch.allclose(model.q(shorter)[1], model.q(x)[1])
    assert torch.equal(plain.q(shorter), plain.q(x))

    x.requires_grad_(True)
    model.q(x).sum().backward()
    assert float(x.grad[:, pad].abs().sum()) == 0.0
    assert float(x.grad[:, layout.rows("obs")].abs().sum()) > 0
