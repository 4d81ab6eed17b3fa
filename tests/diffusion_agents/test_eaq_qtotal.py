"""Q-total guidance: lambda > 0 against lambda = 0 on the same seed, data and model.

The dataset is built so that the check has a real chance to fail: MPE spread (2 agents, 6
steps) where half the episodes walk every agent towards its landmark and half walk away, so
the data has a clearly better and a clearly worse mode. The same seed, data and model size
are used for both fits; only ``q_weight`` differs. The return check compares the team
rewards the model generates (decoded reward rows), not the Q estimator that the loss
optimizes; it is an open failure, kept as a strict xfail (see its reason).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusion_agents.eaq import EAQAugmenter, EAQConfig
from wrappers import load_episodes, record_dataset

FLIP = {0: 0, 1: 2, 2: 1, 3: 4, 4: 3}


class TowardsOrAway:
    """Per episode: every agent walks towards its landmark (p=0.5) or away from it."""

    name = "towards-or-away"

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.towards = True

    def reset(self) -> None:
        self.towards = bool(self.rng.random() < 0.5)

    def act(self, obs):
        out = {}
        for agent, o in obs.items():
            i = int(agent.split("_")[1])
            rel = o[4 + 2 * i : 6 + 2 * i] - 0.5 * o[0:2]  # landmark i, minus some velocity
            if abs(rel[0]) > abs(rel[1]):
                a = 2 if rel[0] > 0 else 1
            else:
                a = 4 if rel[1] > 0 else 3
            out[agent] = np.int64(a if self.towards else FLIP[a])
        return out


def record_towards_or_away(dataset_id: str, episodes: int, max_cycles: int, seed: int = 0):
    """A 2-agent MPE spread dataset recorded with :class:`TowardsOrAway`."""
    return record_dataset(
        "mpe2/simple_spread_v3", TowardsOrAway(seed=seed), episodes, dataset_id,
        env_kwargs={"N": 2, "max_cycles": max_cycles}, ref_min_score=-10.0, ref_max_score=0.0,
        show_progress=False,
    )


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


@pytest.mark.xfail(
    strict=True,
    reason="open (issue 3): Q-total guidance raises Q_phi's estimate of the samples, not "
    "their generated return. Until the decoder kept fixed-length episodes at their length, "
    "this passed only because guided samples ended after 3 of 6 steps (docs/eaq.md).",
)
def test_q_total_guidance_raises_the_return_of_synthetic_episodes(fits):
    precision, real, out, _ = fits
    if precision != "fp32":
        pytest.skip("one precision is enough for the open check")
    spread = real.returns.std()
    assert out[0.3].batch.returns.mean() > out[0.0].batch.returns.mean() + 0.5 * spread


def test_q_total_guidance_is_capped_so_it_cannot_exploit_extrapolation():
    """``L_Qtot`` rewards raising ``Q_phi`` up to the best normalized return of the data (1)
    and no further, whatever ``Q_phi`` extrapolates off the data."""
    from diffusion_agents.eaq.encode import EpisodeLayout
    from diffusion_agents.eaq.model import EAQModel

    ds = record_dataset(
        "mpe2/simple_spread_v3", TowardsOrAway(seed=0), 4, "mpe2/spread2/capped-v0",
        env_kwargs={"N": 2, "max_cycles": 6}, show_progress=False,
    )
    layout = EpisodeLayout.from_batch(load_episodes(ds))
    model = EAQModel(layout=layout, config=EAQConfig(dim=8, dim_mults=(1,), q_hidden=16))
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
    from diffusion_agents.eaq.encode import EpisodeLayout
    from diffusion_agents.eaq.model import EAQModel

    ds = record_dataset(
        "mpe2/simple_spread_v3", TowardsOrAway(seed=0), 4, f"mpe2/spread2/through-{through}-v0",
        env_kwargs={"N": 2, "max_cycles": 6}, show_progress=False,
    )
    layout = EpisodeLayout.from_batch(load_episodes(ds))
    config = EAQConfig(dim=8, dim_mults=(1,), q_hidden=16, q_guidance_through=through)
    model = EAQModel(layout=layout, config=config)
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
