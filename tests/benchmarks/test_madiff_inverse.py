"""``python -m benchmarks.madiff_inverse``: a head-only inverse-dynamics curve on a tiny model."""

from __future__ import annotations

import json
import math

import pytest
import torch

from benchmarks import madiff_inverse
from diffusion_agents import MADiffConfig, MADiffPolicy
from tests.benchmarks.harness_helpers import DATASET, make_dataset

CFG = MADiffConfig(
    base_width=8, dim_mults=(1,), inv_hidden=(32, 32), history=1, horizon=3,
    n_steps=10, batch_size=8, ema_start=5, n_diffusion_steps=20, sampling_steps=2,
    checkpoint_every=10_000, learning_rate=3e-3,
)


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "per-agent"])
def test_head_curve_reports_real_and_plan_inputs_and_leaves_the_policy_alone(shared):
    make_dataset(episodes=12)
    policy = MADiffPolicy.train(
        DATASET, CFG.replace(shared_inverse_dynamics=shared), show_progress=False
    )
    head = policy.model.inverse_module
    before = {k: v.clone() for k, v in head.state_dict().items()}
    rows, heads, junction = madiff_inverse.inverse_curve(
        policy, steps=120, log_every=20, keep_at=[60, 120], holdout=0.25, seed=0,
        n_states=64, show_progress=False,
    )
    assert [r["step"] for r in rows] == [20, 40, 60, 80, 100, 120]
    assert sorted(heads) == [60, 120]
    assert set(junction) == {"real_step", "plan_first_step", "plan_later_steps", "plan_next_error"}
    assert all(math.isfinite(v) and v >= 0 for v in junction.values())
    for r in rows:
        for k in ("real_loss", "plan_loss", "real_acc", "plan_acc", "real_entropy"):
            assert math.isfinite(r[k]), (k, r)
    # the fresh head learns the held-out real transitions (MPE: the action sets the velocity)
    assert rows[-1]["real_loss"] < rows[0]["real_loss"]
    after = head.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_command_writes_a_report_with_scores(tmp_path, capsys):
    make_dataset(episodes=8)
    ckpt = tmp_path / "p.safetensors"
    MADiffPolicy.train(DATASET, CFG, show_progress=False).save(ckpt)
    out = tmp_path / "inv.json"
    rc = madiff_inverse.main([
        str(ckpt), "--steps", "20", "--log-every", "10", "--eval-at", "10,20",
        "--episodes", "1", "--out", str(out),
    ])
    assert rc == 0
    report = json.loads(out.read_text())
    assert [r["step"] for r in report["curve"]] == [10, 20]
    assert report["junction"]["real_step"] > 0
    assert sorted(report["scores"]) == ["10", "20"]
    assert "| inverse-dynamics head after |" in capsys.readouterr().out
    assert madiff_inverse.main([str(ckpt), "--steps", "20", "--eval-at", "30"]) == 2
