"""Statistics the field trusts (Agarwal et al. 2021, "Deep RL at the Edge of the Statistical
Precipice"), through ``rliable``.

Scores are arranged as ``(runs, tasks)`` matrices: one row per seed, one column per task
(env × dataset). Point estimates are the mean and the interquartile mean (IQM: the mean of
the middle 50 % of all run × task scores, ``scipy.stats.trim_mean(x, 0.25)``); intervals are
95 % percentile intervals of the *stratified* bootstrap (seeds resampled within each task).
The probability of improvement ``P(X > Y)`` is the Mann-Whitney U statistic averaged over
tasks, with ties counting 1/2.

Every function takes ``reps`` and ``seed``, so the same call gives the same interval.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping

import numpy as np
from rliable import library as rly
from rliable import metrics

DEFAULT_REPS = 2000


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95 % bootstrap interval ``[low, high]``."""

    value: float
    low: float
    high: float

    def fmt(self, digits: int = 1) -> str:
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


def _as_matrix(scores: np.ndarray) -> np.ndarray:
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.size == 0:
        raise ValueError(f"scores must be (runs,) or (runs, tasks), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("scores contain NaN or inf")
    return x


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean of all entries (rliable's ``aggregate_iqm``)."""
    return float(metrics.aggregate_iqm(_as_matrix(scores)))


def mean(scores: np.ndarray) -> float:
    return float(metrics.aggregate_mean(_as_matrix(scores)))


def _interval(
    score_dict: Mapping[str, np.ndarray], func, reps: int, seed: int
) -> dict[str, Estimate]:
    mats = {k: _as_matrix(v) for k, v in score_dict.items()}
    # rliable 1.2's StratifiedBootstrap draws its indices from the *global* numpy RNG
    # (np.random.choice) whatever random_state says: seed it here and restore it after.
    saved = np.random.get_state()
    try:
        np.random.seed(seed)
        with warnings.catch_warnings():  # arch: "random_state is deprecated"
            warnings.simplefilter("ignore", FutureWarning)
            points, cis = rly.get_interval_estimates(
                mats, func, reps=reps, random_state=np.random.RandomState(seed)
            )
    finally:
        np.random.set_state(saved)
    out = {}
    for k in mats:
        p, ci = np.atleast_1d(points[k]), np.asarray(cis[k]).reshape(2, -1)
        out[k] = [Estimate(float(p[j]), float(ci[0, j]), float(ci[1, j])) for j in range(len(p))]
    return out


def aggregate_estimates(
    score_dict: Mapping[str, np.ndarray], *, reps: int = DEFAULT_REPS, seed: int = 0
) -> dict[str, dict[str, Estimate]]:
    """Mean and IQM over all runs × tasks, with stratified-bootstrap 95 % CIs.

    Args:
        score_dict: ``{algorithm: (runs, tasks)}`` normalized scores.
    Returns:
        ``{algorithm: {"mean": Estimate, "iqm": Estimate}}``.
    """

    def func(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_mean(x), metrics.aggregate_iqm(x)])

    est = _interval(score_dict, func, reps, seed)
    return {k: {"mean": v[0], "iqm": v[1]} for k, v in est.items()}


def per_task_estimates(
    scores: np.ndarray, *, reps: int = DEFAULT_REPS, seed: int = 0
) -> dict[str, Estimate]:
    """Mean and IQM of one task's ``(seeds,)`` scores with 95 % bootstrap CIs over seeds."""
    return aggregate_estimates({"x": np.asarray(scores).reshape(-1, 1)}, reps=reps, seed=seed)["x"]


def probability_of_improvement(
    x: np.ndarray, y: np.ndarray, *, reps: int = DEFAULT_REPS, seed: int = 0
) -> Estimate:
    """``P(X > Y)`` for ``(runs, tasks)`` score matrices of two algorithms, with its CI.

    Per task, the probability that a random run of X scores above a random run of Y
    (ties count 1/2), averaged over tasks; the interval comes from the stratified bootstrap
    of both algorithms' runs.
    """
    xm, ym = _as_matrix(x), _as_matrix(y)
    if xm.shape[1] != ym.shape[1]:
        raise ValueError(
            f"X and Y must cover the same tasks: {xm.shape[1]} vs {ym.shape[1]} columns"
        )
    point = float(metrics.probability_of_improvement(xm, ym))
    # rliable's own interval for this metric calls scipy's Mann-Whitney U once per task and
    # replicate (16 s for 2000 reps on 3x2 scores, 2 CPU cores); the same stratified
    # bootstrap vectorized in numpy takes milliseconds (tests compare the two).
    rng = np.random.RandomState(seed)
    per_task = []
    for j in range(xm.shape[1]):
        xs = xm[rng.randint(0, xm.shape[0], (reps, xm.shape[0])), j]
        ys = ym[rng.randint(0, ym.shape[0], (reps, ym.shape[0])), j]
        gt = (xs[:, :, None] > ys[:, None, :]).mean(axis=(1, 2))
        eq = (xs[:, :, None] == ys[:, None, :]).mean(axis=(1, 2))
        per_task.append(gt + 0.5 * eq)
    boot = np.mean(per_task, axis=0)
    low, high = np.percentile(boot, [2.5, 97.5])
    return Estimate(point, float(low), float(high))


def pooled_paired_difference(
    diffs: np.ndarray, *, reps: int = DEFAULT_REPS, seed: int = 0
) -> Estimate:
    """Mean paired difference over replicate transforms, training seeds and episodes.

    ``diffs`` is ``(fits, seeds, episodes)``: ``diffs[f, s]`` holds training seed ``s``'s
    per-episode differences between a learner trained on replicate ``f`` of an augmentation
    (the same generator settings, another transform seed) and the same learner, same seed,
    trained on the source dataset, over the same evaluation episodes. The interval adds the
    transform's own randomness to :func:`paired_difference`'s: each bootstrap draw resamples
    training seeds (one draw for all replicates, since every replicate's difference subtracts
    the same run on the source), then replicates, then episodes within each (replicate, seed).
    """
    d = np.asarray(diffs, np.float64)
    if d.ndim != 3 or min(d.shape) == 0:
        raise ValueError(f"diffs must be (fits, seeds, episodes) with no empty axis, got {d.shape}")
    if not np.all(np.isfinite(d)):
        raise ValueError("diffs contain NaN or inf")
    n_fits, n_seeds, n_eps = d.shape
    rng = np.random.RandomState(seed)
    boot = np.empty(reps)
    for r in range(reps):
        cells = d[rng.randint(0, n_fits, n_fits)][:, rng.randint(0, n_seeds, n_seeds)]
        eps = rng.randint(0, n_eps, cells.shape)
        boot[r] = np.take_along_axis(cells, eps, axis=2).mean()
    low, high = np.percentile(boot, [2.5, 97.5])
    return Estimate(float(d.mean()), float(low), float(high))


def pooled_group_difference(
    a: np.ndarray, b: np.ndarray, *, reps: int = DEFAULT_REPS, seed: int = 0
) -> Estimate:
    """Pooled mean of ``a`` minus pooled mean of ``b``: two generator settings, each with
    its own replicate fits, against one source.

    ``a`` and ``b`` are ``(fits, seeds, episodes)`` arrays as in
    :func:`pooled_paired_difference` (differences to the same source runs), over the same
    training seeds and evaluation episodes; their fit counts may differ. Each bootstrap draw
    resamples training seeds once for both (they share the source's runs), then each
    setting's own fits, then episodes within each cell, as that function does.
    """
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if x.ndim != 3 or y.ndim != 3 or x.shape[1:] != y.shape[1:] or min(*x.shape, *y.shape) == 0:
        raise ValueError(
            f"a and b must be (fits, seeds, episodes) over the same seeds and episodes, got "
            f"{x.shape} and {y.shape}"
        )
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("a or b contains NaN or inf")
    n_seeds, n_eps = x.shape[1:]
    rng = np.random.RandomState(seed)
    boot = np.empty(reps)
    for r in range(reps):
        s = rng.randint(0, n_seeds, n_seeds)
        means = []
        for d in (x, y):
            cells = d[rng.randint(0, d.shape[0], d.shape[0])][:, s]
            means.append(np.take_along_axis(cells, rng.randint(0, n_eps, cells.shape), axis=2).mean())
        boot[r] = means[0] - means[1]
    low, high = np.percentile(boot, [2.5, 97.5])
    return Estimate(float(x.mean() - y.mean()), float(low), float(high))


def paired_difference(
    x: list[np.ndarray], y: list[np.ndarray], *, reps: int = DEFAULT_REPS, seed: int = 0
) -> Estimate:
    """Mean of ``x - y`` over paired evaluation episodes, with a two-level bootstrap CI.

    ``x[s]`` and ``y[s]`` are one training seed's per-episode scores of two algorithms on the
    *same* evaluation episodes (same env seeds, in the same order), so each difference
    cancels what the episode's start state contributes. On MPE spread that is most of a
    score's spread: one episode's normalized score has a standard deviation near 90, and two
    algorithms' scores on the same episode correlate by 0.5-0.8. The interval resamples
    training seeds, then episodes within each drawn seed (a hierarchical bootstrap), so it
    covers both seed-to-seed and episode-to-episode noise. Neither rliable nor
    ``scipy.stats.bootstrap`` resamples at two levels, hence numpy here.
    """
    if len(x) != len(y) or not x:
        raise ValueError(f"need the same number (>= 1) of seeds, got {len(x)} and {len(y)}")
    diffs = []
    for s, (a, b) in enumerate(zip(x, y)):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if a.shape != b.shape or a.ndim != 1 or a.size == 0:
            raise ValueError(f"seed {s}: paired scores need equal 1-D shapes, got {a.shape}, {b.shape}")
        if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
            raise ValueError(f"seed {s}: scores contain NaN or inf")
        diffs.append(a - b)
    point = float(np.mean([d.mean() for d in diffs]))
    rng = np.random.RandomState(seed)
    n_seeds = len(diffs)
    boot = np.empty(reps)
    for r in range(reps):
        picks = rng.randint(0, n_seeds, n_seeds)
        boot[r] = np.mean([diffs[p][rng.randint(0, diffs[p].size, diffs[p].size)].mean() for p in picks])
    low, high = np.percentile(boot, [2.5, 97.5])
    return Estimate(point, float(low), float(high))


# The variance components of a ``(fits, seeds, episodes)`` difference array, in the order of
# the model below; :func:`pooled_standard_error` divides each by what averages it out.
COMPONENTS = ("fit", "seed", "fit_x_seed", "episode", "residual")


def replicate_variance_components(diffs: np.ndarray) -> dict[str, float]:
    """Where the noise of a pooled replicate difference comes from.

    ``diffs`` is :func:`pooled_paired_difference`'s ``(fits, seeds, episodes)`` array: fits
    crossed with training seeds, and each seed's evaluation episodes shared by every fit.
    The model is ``d[f, s, e] = mu + fit[f] + seed[s] + fit_x_seed[f, s] + episode[s, e] +
    residual[f, s, e]``: ``fit`` is how one transform seed differs from another for every
    learner, ``fit_x_seed`` one learner run's own luck on one fit, ``episode`` what an
    evaluation episode shares across fits (mostly the source run's score on it, which every
    fit's difference subtracts). Returns the variance of each (the balanced-design ANOVA
    estimates from the expected mean squares; a negative estimate, which sampling noise can
    give, is reported as 0). The design is balanced, so these closed forms need no
    mixed-model fit (and no statsmodels, which the project does not otherwise use).
    """
    d = np.asarray(diffs, np.float64)
    if d.ndim != 3 or min(d.shape) < 2:
        raise ValueError(f"diffs must be (fits, seeds, episodes) with each axis >= 2, got {d.shape}")
    if not np.all(np.isfinite(d)):
        raise ValueError("diffs contain NaN or inf")
    n_f, n_s, n_e = d.shape
    m = d.mean()
    cell = d.mean(axis=2)  # (F, S)
    fit_m, seed_m = cell.mean(axis=1), cell.mean(axis=0)
    ep_m = d.mean(axis=0)  # (S, E)
    ms_f = n_s * n_e * np.sum((fit_m - m) ** 2) / (n_f - 1)
    ms_s = n_f * n_e * np.sum((seed_m - m) ** 2) / (n_s - 1)
    ms_fs = n_e * np.sum((cell - fit_m[:, None] - seed_m[None, :] + m) ** 2) / ((n_f - 1) * (n_s - 1))
    ms_g = n_f * np.sum((ep_m - seed_m[:, None]) ** 2) / (n_s * (n_e - 1))
    resid = d - cell[:, :, None] - ep_m[None] + seed_m[None, :, None]
    ms_r = np.sum(resid**2) / ((n_f - 1) * n_s * (n_e - 1))
    est = {
        "fit": (ms_f - ms_fs) / (n_s * n_e),
        "seed": (ms_s - ms_fs - ms_g + ms_r) / (n_f * n_e),
        "fit_x_seed": (ms_fs - ms_r) / n_e,
        "episode": (ms_g - ms_r) / n_f,
        "residual": ms_r,
    }
    return {k: float(max(v, 0.0)) for k, v in est.items()}


def pooled_standard_error(
    components: Mapping[str, float], fits: int, seeds: int, episodes: int
) -> dict[str, float]:
    """Standard error of the pooled mean difference for a design of ``fits`` × ``seeds`` ×
    ``episodes``, from :func:`replicate_variance_components`: ``{"total": se, component:
    its share of the variance}``. With the measured design's sizes it is the standard error
    of the estimate in hand; with others, what more fits or more seeds would buy."""
    div = {"fit": fits, "seed": seeds, "fit_x_seed": fits * seeds,
           "episode": seeds * episodes, "residual": fits * seeds * episodes}
    parts = {k: components[k] / div[k] for k in COMPONENTS}
    total = sum(parts.values())
    out = {"total": float(np.sqrt(total))}
    out.update({k: float(v / total) if total > 0 else 0.0 for k, v in parts.items()})
    return out
