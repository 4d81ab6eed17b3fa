"""benchmarks.eaq_smax_units reads the right SMAX observation columns (a real SMAX env)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jaxmarl", reason="SMAX tests need the [smax] extra (jaxmarl, jax)")

from benchmarks.eaq_smax_units import health_columns, unit_stats  # noqa: E402
from wrappers import RandomPolicy, load_episodes, make_env, record_dataset  # noqa: E402

ENV = "smax/3m"
KW = {"jit_opt_level": 0}


def test_health_columns_and_stats_on_recorded_episodes():
    env = make_env(ENV, **KW)
    ds = record_dataset(ENV, RandomPolicy(env, seed=0), num_episodes=3, dataset_id="smax/3m/random-v0",
                        env_kwargs=KW, num_ref_episodes=1, show_progress=False)
    batch = load_episodes(ds)
    enemy, own = health_columns(env.smax_env, batch.obs_dims[0])
    assert len(enemy) == env.smax_env.num_enemies
    with pytest.raises(ValueError, match="not SMAX unit_list"):
        health_columns(env.smax_env, batch.obs_dims[0] + 1)
    # every unit starts at full health: own health 1 per agent, a seen enemy 1, unseen 0
    first = batch.obs[:, 0]  # (E, A, D)
    np.testing.assert_allclose(first[..., own], 1.0)
    assert set(np.unique(first[..., enemy])) <= {0.0, 1.0}
    # health only falls; the team's own health is 0 for a dead agent
    assert (batch.obs[..., own] <= 1.0 + 1e-6).all() and (batch.obs[..., enemy] >= 0).all()

    rows = np.arange(len(batch.lengths))
    s = unit_stats(batch, rows, enemy, own)
    assert s["episodes"] == 3 and s["length"] == pytest.approx(batch.lengths.mean())
    assert s["return"] == pytest.approx(batch.returns.mean())
    assert s["own_health_t0-0"] == pytest.approx(len(batch.agents))
    seen0 = (first[..., enemy].sum(-1)).mean()  # every agent alive at t = 0
    assert s["enemy_in_view_t0-0"] == pytest.approx(seen0)
    assert s["own_health_rtg_corr_t0-0"] is None  # one step per episode in the window
    env.close()
