"""The dynamics-consistency term (``EAQConfig(dynamics_weight=...)``) makes consecutive
synthetic steps follow the environment's physics.

The check does not use the learned one-step model: MPE's own kinematics give it. In
``simple_spread`` an agent's observed position moves by exactly ``0.1 * velocity`` per step
(``p_{t+1} = p_t + dt * v_t``, dt = 0.1; error 1e-8 on the recorded data), so the error
``|p_{t+1} - p_t - 0.1 v_t|`` of synthetic episodes measures their dynamics independently.
Same seed, data and model size for both fits; only ``dynamics_weight`` differs.
"""

from __future__ import annotations

import numpy as np
import pytest

from diffusion_agents.eaq import EAQAugmenter, EAQConfig
from tests.diffusion_agents.test_eaq_qtotal import record_towards_or_away
from wrappers import load_episodes


def kinematic_error(batch) -> float:
    """Mean ``|p_{t+1} - p_t - 0.1 v_t|`` over living steps (obs rows 0:2 velocity, 2:4 pos)."""
    o = batch.obs
    err = np.abs(o[:, 1:, :, 2:4] - o[:, :-1, :, 2:4] - 0.1 * o[:, :-1, :, 0:2]).sum(-1)
    t = np.arange(o.shape[1] - 1)[None, :]
    valid = t < (batch.lengths[:, None] - 1)
    return float(err[valid].mean())


def positions_spread(batch) -> float:
    """Std of the agents' positions across episodes, averaged over steps and agents."""
    return float(batch.obs[:, :-1, :, 2:4].std(axis=0).mean())


DW = 0.001  # the weight measured on MPE spread medium (docs/eaq.md)


def test_dynamics_weight_makes_synthetic_steps_follow_the_kinematics():
    ds = record_towards_or_away("mpe2/spread2/kinematics-v0", 60, max_cycles=10)
    real = load_episodes(ds)
    assert kinematic_error(real) < 1e-5
    base = EAQConfig(
        n_steps=400, batch_size=32, dim=16, dim_mults=(1, 2), q_hidden=64, q_weight=0.0,
        q_warmup_steps=100, n_diffusion_steps=50, sample_steps=10, sample_batch_size=128,
        seed=0,
    )
    errs, spread = {}, {}
    for dw in (0.0, DW):
        aug = EAQAugmenter(base.replace(dynamics_weight=dw)).fit(real, show_progress=False)
        res = aug.sample(128, seed=1, show_progress=False)
        assert res.acceptance_rate > 0.5
        errs[dw] = kinematic_error(res.batch)
        spread[dw] = positions_spread(res.batch)
        if dw:
            assert "dyn_consistency" in aug.history[-1] and aug.history[-1]["dyn_fit"] < 1.0
    assert errs[DW] < 0.8 * errs[0.0], errs
    # not by collapsing: a too-large weight made every sample the same episode (measured:
    # 0.073 vs 0.110 kinematic error, spread 0.0064 vs 0.0082 for this fit; a fit this small
    # is under-dispersed at any weight, real spread 0.67)
    assert spread[DW] > 0.5 * spread[0.0], spread


def test_dynamics_weight_round_trips_and_is_validated(tmp_path):
    with pytest.raises(ValueError, match="dynamics_weight"):
        EAQConfig(dynamics_weight=-1.0)
    ds = record_towards_or_away("mpe2/spread2/kin-save-v0", 6, max_cycles=5, seed=1)
    cfg = EAQConfig(
        n_steps=3, batch_size=4, dim=8, q_hidden=16, q_warmup_steps=1, n_diffusion_steps=10,
        sample_steps=2, dynamics_weight=0.5,
    )
    aug = EAQAugmenter(cfg).fit(ds, show_progress=False)
    back = EAQAugmenter.load(aug.save(tmp_path / "aug"))
    assert back.config.dynamics_weight == 0.5 and back.model.dyn is not None
    a = aug.sample(4, seed=3, show_progress=False).batch.obs
    b = back.sample(4, seed=3, show_progress=False).batch.obs
    np.testing.assert_array_equal(a, b)
