"""Q-total guidance works: lambda > 0 yields higher-return synthetic episodes than lambda = 0.

The dataset is built so that the check has a real chance to fail: MPE spread (2 agents, 6
steps) where half the episodes walk every agent towards its landmark and half walk away, so
the data has a clearly better and a clearly worse mode. The same seed, data and model size
are used for both fits; only ``q_weight`` differs. The returns compared are the team rewards
the model generates (decoded reward rows), not the Q estimator that the loss optimizes.
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


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_q_total_guidance_raises_the_return_of_synthetic_episodes(precision):
    """Also with ``precision="bf16"``: the fit's convolutions then run in bfloat16 (checked),
    parameters stay float32, and guidance still works."""
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
        res = aug.sample(256, seed=1, show_progress=False)
        out[lam] = (res.batch.returns.mean(), res.q_estimate.mean(), res.acceptance_rate)
    assert seen == {torch.bfloat16 if precision == "bf16" else torch.float32}
    spread = real.returns.std()
    (r0, q0, acc0), (r1, q1, acc1) = out[0.0], out[0.3]
    assert acc0 > 0.5 and acc1 > 0.5, out
    # lambda = 0 imitates the data; lambda > 0 moves clearly towards the better mode
    assert abs(r0 - real.returns.mean()) < spread, (out, real.returns.mean())
    assert r1 > r0 + 0.5 * spread, (out, spread)
    assert q1 > q0, out


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
