"""benchmarks.stats against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from rliable import library as rly
from rliable import metrics

from benchmarks import stats


def test_iqm_hand_computed():
    # middle 50 % of 1..8 is 3, 4, 5, 6
    assert stats.iqm(np.arange(1, 9)) == pytest.approx(4.5)
    # (runs, tasks) matrix: all 8 entries pooled; outliers trimmed
    x = np.array([[1.0, 100.0], [2.0, 3.0], [4.0, 5.0], [6.0, -50.0]])
    assert stats.iqm(x) == pytest.approx(np.mean([2.0, 3.0, 4.0, 5.0]))
    assert stats.mean(x) == pytest.approx(x.mean())


def test_two_point_bootstrap_interval():
    # bootstrap means of {0, 1} (2 seeds) are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4,
    # so the 95 % percentile interval is exactly [0, 1]
    est = stats.per_task_estimates(np.array([0.0, 1.0]), reps=2000, seed=0)
    assert est["mean"].value == pytest.approx(0.5)
    assert (est["mean"].low, est["mean"].high) == (0.0, 1.0)


def test_constant_scores_have_zero_width_interval():
    est = stats.per_task_estimates(np.array([3.0, 3.0, 3.0]), reps=500)
    for k in ("mean", "iqm"):
        assert (est[k].value, est[k].low, est[k].high) == (3.0, 3.0, 3.0)


def test_mean_interval_matches_normal_theory_and_is_seeded():
    x = np.random.default_rng(0).normal(10.0, 2.0, 400)
    est = stats.per_task_estimates(x, reps=2000, seed=0)["mean"]
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))  # 0.196 for sigma = 2, n = 400
    assert est.value == pytest.approx(x.mean())
    assert est.low == pytest.approx(x.mean() - half, abs=0.03)
    assert est.high == pytest.approx(x.mean() + half, abs=0.03)
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    again = stats.per_task_estimates(x, reps=2000, seed=0)["mean"]
    assert (again.low, again.high) == (est.low, est.high)
    assert (np.random.get_state()[1] == before).all()  # the global RNG is left as it was


def test_stratified_bootstrap_resamples_within_tasks():
    # task 0 is constant per run, task 1 varies: the aggregate interval must be narrower
    # than if the tasks' scores were pooled across tasks (stratification by task).
    x = np.array([[0.0, 10.0], [0.0, 12.0], [0.0, 14.0], [0.0, 16.0]])
    agg = stats.aggregate_estimates({"a": x}, reps=2000, seed=1)["a"]["mean"]
    assert agg.value == pytest.approx(6.5)
    # means of task 1 lie in [10, 16]; averaged with 0: [5, 8]
    assert 5.0 <= agg.low < 6.5 < agg.high <= 8.0


def test_probability_of_improvement_hand_computed():
    better = stats.probability_of_improvement(np.array([[2.0], [3.0]]), np.array([[0.0], [1.0]]))
    assert (better.value, better.low, better.high) == (1.0, 1.0, 1.0)
    # X = {1, 3}, Y = {2}: P(X > Y) = 1/2
    half = stats.probability_of_improvement(np.array([[1.0], [3.0]]), np.array([[2.0], [2.0]]))
    assert half.value == pytest.approx(0.5)
    # ties count 1/2
    tie = stats.probability_of_improvement(np.ones((3, 2)), np.ones((3, 2)))
    assert tie.value == pytest.approx(0.5)


def test_probability_of_improvement_interval_matches_rliable():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5, 2)), rng.normal(0.5, size=(5, 2))
    ours = stats.probability_of_improvement(x, y, reps=2000, seed=0)
    point, ci = rly.get_interval_estimates(
        {"p": (x, y)}, metrics.probability_of_improvement, reps=300,
        random_state=np.random.RandomState(0),
    )
    assert ours.value == pytest.approx(float(point["p"]))
    low, high = np.asarray(ci["p"]).reshape(-1)
    assert ours.low == pytest.approx(low, abs=0.06)
    assert ours.high == pytest.approx(high, abs=0.06)


def test_bad_scores_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        stats.iqm(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="same tasks"):
        stats.probability_of_improvement(np.ones((2, 2)), np.ones((2, 3)))


def test_improvement_pairs_are_the_ones_that_matter():
    from benchmarks.report import improvement_pairs

    entries = ["random", "bc", "bc_sampled", "iql_cql", "madiff_d", "bc+eaq", "iql_cql+eaq"]
    assert improvement_pairs(entries) == [
        ("madiff_d", "bc"), ("madiff_d", "bc_sampled"),
        ("bc+eaq", "bc"), ("iql_cql+eaq", "iql_cql"),
    ]
    assert improvement_pairs(["madiff_d", "bc+eaq"]) == []


def test_improvement_of_an_entry_run_on_some_tasks_uses_the_shared_tasks():
    from benchmarks.report import summarize

    def result(task, entry, seed, score):
        return {
            "run": {"task": task, "dataset": f"d/{task}-v0", "seed": seed},
            "entry": entry, "mean_normalized": score, "mean_return": score,
            "win_rate": None, "train_seconds": 0.0,
        }

    results = []
    for s in (0, 1, 2):
        for task in ("a", "b"):
            results.append(result(task, "bc", s, 10.0 + s))
        results.append(result("a", "bc+eaq", s, 20.0 + s))  # better on task a only
    summary = summarize(results, {}, reps=200)
    poi = summary["probability_of_improvement"]
    (key, est), = [(k, v) for k, v in poi.items() if k.startswith("bc+eaq > bc")]
    assert "(on " in key and "a:" in key and "b:" not in key
    assert est["value"] == 1.0


def test_leaderboard_lists_the_options_each_entry_ran_with():
    """A score is only readable next to its settings: the report lists what the grid set
    per entry (one row when every task got the same, one per task otherwise)."""
    from benchmarks.report import leaderboard_markdown, summarize

    def result(task, entry, seed, algo_opts, transform=None, tf_opts=None):
        return {
            "run": {"task": task, "dataset": f"d/{task}-v0", "seed": seed,
                    "algorithm_options": algo_opts, "transform": transform,
                    "transform_options": tf_opts or {}},
            "entry": entry, "mean_normalized": 1.0, "mean_return": 1.0,
            "win_rate": None, "train_seconds": 0.0,
        }

    results = [
        result(task, entry, s, opts, tf, tf_opts)
        for s in (0, 1) for task in ("a", "b")
        for entry, opts, tf, tf_opts in (
            ("random", {}, None, None),
            ("madiff_d", {"config": {"n_steps": 2000 if task == "a" else 3000}}, None, None),
            ("bc+eaq", {"steps": 20}, "eaq",
             {"config": {"n_steps": 5, "dim_mults": [1]}, "augment": {"ratio": 1.0}}),
        )
    ]
    summary = summarize(results, {}, reps=50)
    assert summary["settings"]["madiff_d"] == {"a:a-v0": "config.n_steps=2000",
                                               "b:b-v0": "config.n_steps=3000"}
    md = leaderboard_markdown(summary, title="t")
    assert "| random | `defaults` |" in md
    assert "| madiff_d (a:a-v0) | `config.n_steps=2000` |" in md
    assert "| madiff_d (b:b-v0) | `config.n_steps=3000` |" in md
    assert ("| bc+eaq | `steps=20, eaq.config.n_steps=5, eaq.config.dim_mults=[1], "
            "eaq.augment.ratio=1.0` |") in md


def test_paired_difference_hand_computed_and_seeded():
    x = [np.array([3.0, 5.0, 7.0]), np.array([1.0, 1.0])]
    y = [np.array([1.0, 4.0, 5.0]), np.array([0.0, 2.0])]
    est = stats.paired_difference(x, y, reps=500, seed=0)
    # per-seed mean differences 5/3 and 0, averaged over seeds
    assert est.value == pytest.approx((5 / 3 + 0.0) / 2)
    assert est.low <= est.value <= est.high
    again = stats.paired_difference(x, y, reps=500, seed=0)
    assert (again.low, again.high) == (est.low, est.high)
    # a constant shift has a zero-width interval at the shift
    same = stats.paired_difference([np.arange(5.0) + 2], [np.arange(5.0)], reps=200)
    assert (same.value, same.low, same.high) == (2.0, 2.0, 2.0)


def test_pairing_removes_the_shared_episode_noise():
    # two algorithms 1 point apart on episodes whose start states swing scores by +-50:
    # the paired interval must exclude 0 though the per-algorithm means overlap widely
    rng = np.random.default_rng(0)
    starts = [rng.normal(0, 50, 200) for _ in range(3)]
    x = [s + 1.0 + rng.normal(0, 0.5, 200) for s in starts]
    y = [s + rng.normal(0, 0.5, 200) for s in starts]
    est = stats.paired_difference(x, y, reps=1000, seed=0)
    assert est.low > 0.5 and est.high < 1.5
    unpaired = stats.per_task_estimates(np.array([v.mean() for v in x]), reps=1000)["mean"]
    assert unpaired.high - unpaired.low > 5.0


def test_paired_difference_refuses_mismatched_episodes():
    with pytest.raises(ValueError, match="seed 0"):
        stats.paired_difference([np.ones(3)], [np.ones(4)])
    with pytest.raises(ValueError, match="same number"):
        stats.paired_difference([np.ones(3)], [np.ones(3), np.ones(3)])
    with pytest.raises(ValueError, match="NaN"):
        stats.paired_difference([np.array([1.0, np.nan])], [np.ones(2)])


def test_summary_pairs_only_runs_on_the_same_episodes():
    from benchmarks.report import leaderboard_markdown, summarize

    def result(entry, seed, scores, eval_seeds):
        return {
            "run": {"task": "a", "dataset": "d/a-v0", "seed": seed}, "entry": entry,
            "mean_normalized": float(np.mean(scores)), "mean_return": 0.0,
            "normalized": list(scores), "returns": list(scores), "eval_seeds": eval_seeds,
            "win_rate": None, "train_seconds": 0.0,
        }

    results = [
        result("bc", 0, [10.0, 20.0], [1, 2]), result("bc+eaq", 0, [12.0, 22.0], [1, 2]),
        result("bc", 1, [10.0, 20.0], [3, 4]), result("bc+eaq", 1, [50.0, 60.0], [5, 6]),
    ]
    summary = summarize(results, {}, reps=200)
    d = summary["paired_differences"]["bc+eaq - bc"]["a:a-v0"]
    assert d["seeds"] == 1 and d["value"] == 2.0  # seed 1 ran other episodes: left out
    assert d["relative"] == pytest.approx(2.0 / 15.0)
    assert "bc+eaq - bc" in leaderboard_markdown(summary, title="t")


def test_summary_pairs_a_derived_dataset_with_its_source():
    from benchmarks.report import leaderboard_markdown, summarize

    def result(dataset, entry, seed, scores, eval_seeds=(1, 2)):
        return {
            "run": {"task": "t", "dataset": f"ns/{dataset}", "seed": seed}, "entry": entry,
            "mean_normalized": float(np.mean(scores)), "mean_return": 0.0,
            "normalized": list(scores), "returns": list(scores), "eval_seeds": list(eval_seeds),
            "win_rate": None, "train_seconds": 0.0,
        }

    results = [
        result("medium-v0", "bc", 0, [10.0, 20.0]), result("medium-v0", "bc", 1, [30.0, 40.0]),
        result("medium-eaq-v0", "bc", 0, [13.0, 23.0]),
        result("medium-eaq-v0", "bc", 1, [29.0, 39.0]),
        result("medium-v0", "iql", 0, [50.0, 60.0]),
        result("medium-eaq-v0", "iql", 0, [40.0, 50.0], eval_seeds=(7, 8)),  # not pairable
        result("other-v0", "bc", 0, [0.0, 0.0]),  # no source: not compared
    ]
    infos = {
        "ns/medium-eaq-v0": {"source_dataset_id": "ns/medium-v0"},
        "ns/medium-v0": {"source_dataset_id": None},
    }
    summary = summarize(results, infos, reps=200)
    derived = summary["dataset_differences"]
    assert list(derived) == ["bc"]  # iql's runs are on other episodes; other-v0 has no source
    d = derived["bc"]["t:medium-eaq-v0 - medium-v0"]
    assert d["seeds"] == 2 and d["value"] == pytest.approx(1.0)  # (+3 + -1) / 2
    assert d["relative"] == pytest.approx(1.0 / 25.0)
    md = leaderboard_markdown(summary, title="t")
    assert "| bc | t:medium-eaq-v0 - medium-v0 | 1.0 [" in md
    assert summarize(results, {}, reps=200)["dataset_differences"] == {}


def test_pooled_difference_counts_the_spread_between_replicates():
    rng = np.random.RandomState(0)
    noise = rng.normal(0.0, 1.0, (4, 10, 50))
    agree = 5.0 + noise  # four replicates with the same effect
    disagree = noise + np.array([15.0, -5.0, 12.0, -2.0])[:, None, None]  # same mean, 5.0
    a = stats.pooled_paired_difference(agree, reps=500)
    b = stats.pooled_paired_difference(disagree, reps=500)
    assert a.value == pytest.approx(agree.mean()) and b.value == pytest.approx(disagree.mean())
    assert a.low < a.value < a.high and b.low < b.value < b.high
    # seeds and episodes alone would give both the same narrow interval; the replicates'
    # disagreement must widen it (it spans -5 .. 15 here)
    assert (b.high - b.low) > 5 * (a.high - a.low)
    assert stats.pooled_paired_difference(disagree, reps=500) == b  # seeded
    with pytest.raises(ValueError, match="fits, seeds, episodes"):
        stats.pooled_paired_difference(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        stats.pooled_paired_difference(np.full((2, 2, 2), np.nan))


def test_group_difference_shares_the_seeds_of_the_two_settings():
    rng = np.random.RandomState(1)
    seed_luck = rng.normal(0.0, 10.0, (1, 12, 1))  # the source run's luck, in both settings
    a = 5.0 + seed_luck + rng.normal(0.0, 1.0, (3, 12, 40))
    b = 2.0 + seed_luck + rng.normal(0.0, 1.0, (5, 12, 40))
    est = stats.pooled_group_difference(a, b, reps=500)
    assert est.value == pytest.approx(a.mean() - b.mean())
    # the shared seed luck cancels: far narrower than either setting's own interval
    alone = stats.pooled_paired_difference(a, reps=500)
    assert est.low < 3.0 < est.high and (est.high - est.low) < 0.2 * (alone.high - alone.low)
    assert stats.pooled_group_difference(a, b, reps=500) == est  # seeded
    with pytest.raises(ValueError, match="same seeds and episodes"):
        stats.pooled_group_difference(a, b[:, :5])
    with pytest.raises(ValueError, match="NaN"):
        stats.pooled_group_difference(a, np.full_like(b, np.nan))


def test_summary_pools_replicate_augmentations_of_one_generator():
    from benchmarks.report import leaderboard_markdown, summarize

    def result(dataset, seed, scores):
        return {
            "run": {"task": "t", "dataset": f"ns/{dataset}", "seed": seed}, "entry": "iql",
            "mean_normalized": float(np.mean(scores)), "mean_return": 0.0,
            "normalized": list(scores), "returns": list(scores), "eval_seeds": [1, 2],
            "win_rate": None, "train_seconds": 0.0,
        }

    base = {0: [10.0, 20.0], 1: [30.0, 40.0]}
    shift = {"a-s1": 4.0, "a-s2": 2.0, "b-s1": -3.0}
    results = [result("medium-v0", s, v) for s, v in base.items()]
    results += [result(d, s, [x + k for x in v]) for d, k in shift.items() for s, v in base.items()]
    gen_a, gen_b = '{"q_weight": 0.0}', '{"q_weight": 0.3}'
    infos = {
        "ns/a-s1": {"source_dataset_id": "ns/medium-v0", "generator": gen_a},
        "ns/a-s2": {"source_dataset_id": "ns/medium-v0", "generator": gen_a},
        "ns/b-s1": {"source_dataset_id": "ns/medium-v0", "generator": gen_b},  # alone: no pool
        "ns/medium-v0": {"source_dataset_id": None, "generator": None},
    }
    summary = summarize(results, infos, reps=200)
    pooled = summary["replicate_differences"]
    assert list(pooled) == ["iql"] and list(pooled["iql"]) == ["t:a-s1 + a-s2 - medium-v0"]
    d = pooled["iql"]["t:a-s1 + a-s2 - medium-v0"]
    assert d["value"] == pytest.approx(3.0) and d["per_fit"] == pytest.approx([4.0, 2.0])
    assert d["fits"] == 2 and d["seeds"] == 2 and d["relative"] == pytest.approx(3.0 / 25.0)
    assert "t:a-s1 + a-s2 - medium-v0 (2 fits: +4.0, +2.0) | 3.0 [" in leaderboard_markdown(
        summary, title="t")


def test_paired_seed_diffs_keeps_only_seeds_every_replicate_shares():
    from benchmarks.report import paired_seed_diffs

    def run(scores, eval_seeds=(1, 2)):
        return {"normalized": scores, "eval_seeds": list(eval_seeds)}

    source = {0: run([1.0, 2.0]), 1: run([3.0, 4.0]), 2: run([5.0, 6.0]), 3: run(None)}
    reps = [
        {0: run([2.0, 2.0]), 1: run([3.0, 5.0]), 3: run([0.0, 0.0])},  # no seed 2
        {0: run([1.0, 4.0]), 1: run([3.0, 4.0], eval_seeds=(7, 8)), 2: run([5.0, 6.0])},
    ]
    diffs, seeds = paired_seed_diffs(source, reps, "normalized")
    # seed 1: other episodes in the second replicate; 2: absent from the first; 3: no scores
    assert seeds == [0]
    np.testing.assert_array_equal(diffs, [[[1.0, 0.0]], [[0.0, 2.0]]])
    assert diffs.shape == (2, 1, 2)  # (replicates, seeds, episodes)


def test_generator_key_ignores_only_the_seed_and_the_device():
    from benchmarks.harness import generator_key

    meta = {"settings": {"seed": 1, "device": "cuda", "dim": 128}, "q_weight": 0.3,
            "fit_steps": 3000, "num_synthetic_episodes": 500, "synthetic_only": False}
    other_seed = {**meta, "settings": {"seed": 4, "device": None, "dim": 128}}
    assert generator_key(meta) == generator_key(other_seed)
    assert generator_key(meta) != generator_key({**meta, "q_weight": 0.0})
    assert generator_key(meta) != generator_key({**meta, "settings": {"seed": 1, "dim": 64}})
    assert generator_key(meta) != generator_key({**meta, "reward_scale": 0.5})  # eaq_reward_scale
    assert generator_key(None) is None and generator_key({"source_dataset_id": "x"}) is None
    # a record written before an option existed matches one that states its default
    from diffusion_agents.eaq import EAQConfig

    full = {**meta, "settings": EAQConfig(seed=1, dim=128).to_dict()}
    older = {**full, "settings": {k: v for k, v in full["settings"].items() if k != "reward_decoder"}}
    assert generator_key(older) == generator_key(full)
    assert generator_key(full) != generator_key({**full, "settings": {**full["settings"], "reward_decoder": "model"}})


def test_run_commits_names_every_commit_once():
    from benchmarks.report import run_commits

    runs = [
        {"versions": {"git_commit": "b72d5f8837aa"}},
        {"versions": {"git_commit": "7f1fb502b41f"}},
        {"versions": {"git_commit": "b72d5f8837aa"}},
        {"versions": {}},
    ]
    assert run_commits(runs) == ["b72d5f8837", "7f1fb502b4", "?"]


def _crossed(rng, sd, shape):
    n_f, n_s, n_e = shape
    return (
        rng.normal(0, sd["fit"], (n_f, 1, 1)) + rng.normal(0, sd["seed"], (1, n_s, 1))
        + rng.normal(0, sd["fit_x_seed"], (n_f, n_s, 1)) + rng.normal(0, sd["episode"], (1, n_s, n_e))
        + rng.normal(0, sd["residual"], shape)
    )


def test_variance_components_recover_a_known_crossed_design():
    sd = {"fit": 0.5, "seed": 1.0, "fit_x_seed": 0.7, "episode": 2.0, "residual": 3.0}
    rng = np.random.default_rng(0)
    # one design's estimates are noisy (a variance from 10 fits); their mean is not biased
    ests = [stats.replicate_variance_components(_crossed(rng, sd, (10, 10, 20))) for _ in range(200)]
    for k, v in sd.items():
        assert np.mean([e[k] for e in ests]) == pytest.approx(v**2, rel=0.15), k
    # no fit effect at all: estimated near 0, never negative
    est0 = stats.replicate_variance_components(_crossed(rng, {**sd, "fit": 0.0}, (8, 10, 50)))
    assert 0.0 <= est0["fit"] < 0.05
    with pytest.raises(ValueError, match="each axis >= 2"):
        stats.replicate_variance_components(np.zeros((1, 3, 3)))


def test_pooled_standard_error_matches_the_spread_of_repeated_designs():
    sd = {"fit": 0.3, "seed": 0.5, "fit_x_seed": 0.6, "episode": 2.0, "residual": 2.5}
    shape = (6, 10, 20)
    rng = np.random.default_rng(1)
    means = [_crossed(rng, sd, shape).mean() for _ in range(400)]
    se = stats.pooled_standard_error({k: v**2 for k, v in sd.items()}, *shape)
    assert se["total"] == pytest.approx(np.std(means), rel=0.15)
    assert sum(se[k] for k in stats.COMPONENTS) == pytest.approx(1.0)
    # twice the seeds: the seed-level parts halve, the fit part does not move
    se2 = stats.pooled_standard_error({k: v**2 for k, v in sd.items()}, 6, 20, 20)
    assert se2["total"] < se["total"]
    assert se2["fit"] > se["fit"]
