"""The MADiff evaluation report: paired rows are differences on the same episodes."""

import numpy as np

from benchmarks.madiff_eval import PAIRED_DDPM, _print_table


def test_paired_rows_difference_same_episodes(capsys):
    rng = np.random.default_rng(0)
    start = [rng.normal(0, 50, 40) for _ in range(3)]  # what each episode's start contributes
    rows = {
        "madiff-d": [s + 10 for s in start],
        "madiff-d, guidance off (w=0)": [s + 6 for s in start],
        "bc": [s - 20 for s in start],
        "bc, sampled actions": [s for s in start],
        "madiff-d, 200-step DDPM": [s[:8] + 12 for s in start],
    }
    table = _print_table("t", rows, np.zeros(10), [])
    gap = table["madiff-d minus bc, sampled actions (paired episodes)"]
    assert np.allclose(gap, (10.0, 10.0, 10.0))  # the start-state noise cancels exactly
    assert np.allclose(table["madiff-d minus madiff-d, guidance off (w=0) (paired episodes)"][0], 4)
    assert np.allclose(table[PAIRED_DDPM], (-2.0, -2.0, -2.0))
    # unpaired rows keep the episode noise in their interval
    m, lo, hi = table["madiff-d"]
    assert hi - lo > 10
    assert "madiff-d minus bc (paired episodes) | 30.0 | [30.0, 30.0] | 3" in capsys.readouterr().out
