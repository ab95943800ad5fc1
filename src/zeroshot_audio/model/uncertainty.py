"""Paired bootstrap intervals for the difference between two taggers scored on the same clips.

Why: with 70-ish test clips per rotation, "13.9 +- 1.5 vs 12.3 +- 1.8" cannot say whether
attention beats uniform. Both methods are scored on the *same* clips, so the right question is
about the difference A - B on a resample of clips: a clip that is hard for A is usually hard for B
too, and pairing removes that shared noise (Efron & Tibshirani 1993, ch. 16; Koehn 2004 for the
same test in MT).

How (scipy.stats.bootstrap with the clip-index trick): the one "sample" handed to scipy is the
vector of clip indices ``0..N-1``; ``statistic(idx)`` scores both methods on the clips ``idx``
(with repeats) and returns A - B for micro-F1, macro-F1 and mAP at once. Because A and B are
always evaluated on the same resampled clips, the bootstrap is paired by construction (scipy's
``paired=True`` is moot with a single sample). The statistic is vectorised: a batch of resamples
becomes a [B, N] matrix of clip multiplicities ``w`` and every count is ``w @ per_clip_counts``.

Pooled over rotations (each rotation has its own test classes): a *stratified* bootstrap. Each
rotation's clips are resampled within that rotation, from its own seeded stream, every
rotation's difference is computed on its own class set, and the pooled statistic is the mean of
the per-rotation differences: its bootstrap distribution is the mean of the rotations'
distributions, resample by resample (scipy then gives the interval of that distribution, with
the pooled jackknife for BCa), so the resampling is done once per rotation. That is the quantity the
results table reports (mean over rotations), so the interval belongs to the table's numbers;
concatenating clips of different class sets into one macro-F1 or mAP would average classes that
were never candidates for the same clip.

Conventions are those of :mod:`zeroshot_audio.model.metrics` (checked by the tests): F1 with
``zero_division=0``; macro-F1 and mAP average over the classes with at least one positive *in the
resample* (a class whose positives all fall out of a resample has no recall or AP there, so it is
left out of that resample's average for both methods alike); a resample with no positive at all
scores 0 for both methods. AP is scikit-learn's (step-wise, tied scores form one threshold).

Intervals: ``percentile`` by default (no jackknife, so it scales to AudioSet's 20k-clip test
folds; ``BCa`` is available). A bootstrap distribution that is constant (e.g. two identical score
sets) gives the degenerate interval [v, v] instead of scipy's NaN.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
from scipy.stats import bootstrap

from zeroshot_audio.model.metrics import parallel_map

METRICS: tuple[str, ...] = ("micro_f1", "macro_f1", "map")
METRIC_TITLES = {"micro_f1": "micro-F1", "macro_f1": "macro-F1", "map": "mAP"}
INTERVAL_METHODS = ("percentile", "basic", "BCa")
# Resamples x clips per vectorised batch: bounds the [B, N] working arrays (~40 MB of float64).
_BATCH_ELEMENTS = 5_000_000


@dataclass(frozen=True)
class PairedScores:
    """One rotation's test clips scored by two methods: what a paired comparison needs.

    ``targets`` [N, C] bool; ``scores_*`` [N, C] real (for mAP); ``predictions_*`` [N, C] bool
    (for F1: the output of the method's threshold rule, e.g. ``metrics.apply_threshold_rule``).
    """

    targets: np.ndarray
    scores_a: np.ndarray
    scores_b: np.ndarray
    predictions_a: np.ndarray
    predictions_b: np.ndarray

    def __post_init__(self) -> None:
        arrays = {name: np.asarray(getattr(self, name)) for name in self.__dataclass_fields__}
        shape = arrays["targets"].shape
        if len(shape) != 2 or shape[0] < 2 or shape[1] < 1:
            raise ValueError(f"targets must be [N, C] with N >= 2 clips; got shape {shape}")
        for name, array in arrays.items():
            if array.shape != shape:
                raise ValueError(f"{name} has shape {array.shape}, targets have {shape}")
        for name in ("scores_a", "scores_b"):
            if not np.isfinite(arrays[name].astype(np.float64)).all():
                raise ValueError(f"{name} contains NaN or infinite scores")
        for name, array in arrays.items():
            dtype = bool if name in ("targets", "predictions_a", "predictions_b") else np.float64
            object.__setattr__(self, name, array.astype(dtype))

    @property
    def n_clips(self) -> int:
        return int(self.targets.shape[0])


@dataclass(frozen=True)
class DifferenceInterval:
    """A - B in one metric (fractions, not points): the all-clips estimate and its interval."""

    metric: str
    estimate: float
    low: float
    high: float
    confidence_level: float
    n_resamples: int
    n_clips: int
    interval_method: str

    @property
    def excludes_zero(self) -> bool:
        """True when the whole interval lies on one side of 0 (a difference the data support)."""
        return self.low > 0.0 or self.high < 0.0

    def to_dict(self) -> dict[str, float | int | str | bool]:
        return {**asdict(self), "excludes_zero": self.excludes_zero}


class _Counts:
    """Per-clip counts of one rotation, precomputed once so a resample is a matrix product."""

    def __init__(self, paired: PairedScores) -> None:
        y = paired.targets
        self.positives = y.astype(np.float64)  # [N, C]
        self.f1_counts = []  # per method: (tp, fp, fn) as [N, C] float
        for pred in (paired.predictions_a, paired.predictions_b):
            self.f1_counts.append(
                tuple((m).astype(np.float64) for m in (y & pred, ~y & pred, y & ~pred))
            )
        # AP: per method and class, the clips in descending score order, where the positives sit
        # in that order, the end of each positive's run of tied scores (a threshold cannot split
        # ties) and the last positive of that run.
        self.rankings = [
            [_ranking(scores[:, c], y[:, c]) for c in range(y.shape[1])]
            for scores in (paired.scores_a, paired.scores_b)
        ]
        self.y = y

    def metrics(self, weights: np.ndarray, method: int) -> np.ndarray:
        """[3, B]: micro-F1, macro-F1, mAP of one method under clip multiplicities [B, N]."""
        tp, fp, fn = (weights @ m for m in self.f1_counts[method])  # [B, C]
        n_pos = weights @ self.positives  # [B, C]
        present = n_pos > 0
        n_present = present.sum(axis=1)
        micro_den = 2 * tp.sum(axis=1) + fp.sum(axis=1) + fn.sum(axis=1)
        micro = _safe_ratio(2 * tp.sum(axis=1), micro_den)
        f1 = _safe_ratio(2 * tp, 2 * tp + fp + fn)
        macro = _safe_ratio((f1 * present).sum(axis=1), n_present)
        ap = self._average_precision(weights, method, n_pos)
        mean_ap = _safe_ratio(np.where(present, ap, 0.0).sum(axis=1), n_present)
        return np.stack([micro, macro, mean_ap])

    def _average_precision(self, weights: np.ndarray, method: int, n_pos: np.ndarray) -> np.ndarray:
        """[B, C] scikit-learn AP of every class under multiplicities (NaN-free; 0 if no positive).

        AP = sum over thresholds k of (R_k - R_{k-1}) P_k; with weights, the positives gained at a
        threshold are the weighted positives of its tie run, P_k = TP_k / PP_k. Classes run on
        every core (``metrics.parallel_map``).
        """
        # [N, B]: one clip's multiplicities in all resamples are contiguous, so gathering clips in
        # score order copies rows. The gathers are memory-bound: the counts travel as bytes (a
        # clip drawn more than 255 times in one resample needs a larger type), summed in float32
        # (exact for counts up to 2^24).
        small = weights.max(initial=0) <= np.iinfo(np.uint8).max
        by_clip = np.ascontiguousarray(weights.T, dtype=np.uint8 if small else np.float32)

        def class_ap(c: int) -> np.ndarray:
            order, positives, run_starts, run_of, last_positive = self.rankings[method][c]
            if positives.size == 0:
                return np.zeros(weights.shape[0])
            ranked = by_clip[order[: run_starts[-1][1]]]  # [n, B] down to the last positive's run
            # predicted positives at the end of each run holding a positive: sums of the stretches
            # between those run ends, accumulated
            stretches = np.add.reduceat(ranked, run_starts[:, 0], axis=0, dtype=np.float32)
            predicted = np.cumsum(stretches, axis=0)
            hits = ranked[positives].astype(np.float64)  # [n_pos, B]
            true_positives = np.cumsum(hits, axis=0)[last_positive]  # TP at each positive's run end
            precision = _safe_ratio(true_positives, predicted[run_of])
            return _safe_ratio((hits * precision).sum(axis=0), n_pos[:, c])

        return np.stack(parallel_map(class_ap, range(self.y.shape[1])), axis=1)


def _ranking(
    scores: np.ndarray, positive: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One class's ranking for AP under multiplicities.

    AP = sum over positives p of w_p * TP(run of p) / PP(run of p) / P, where the run of p is
    its stretch of tied scores (a threshold cannot split it); this equals scikit-learn's
    sum_k (R_k - R_{k-1}) P_k over the distinct thresholds k. Returns the clip order (descending
    score), the positives' positions in it, [start, stop) of the stretches that end at the runs
    holding a positive, which stretch each positive's run ends, and (among positives) the last
    positive of each positive's run.
    """
    order = np.argsort(-scores, kind="stable")
    ranked = scores[order]
    run_end = np.r_[np.flatnonzero(ranked[1:] < ranked[:-1]), ranked.size - 1]
    end_of = np.repeat(run_end, np.diff(np.r_[-1, run_end]))  # position -> end of its run
    positives = np.flatnonzero(positive[order])
    group_end = end_of[positives]
    ends = np.unique(group_end)
    run_starts = np.stack([np.r_[0, ends[:-1] + 1][: ends.size], ends + 1], axis=1)
    run_of = np.searchsorted(ends, group_end)
    last_positive = np.searchsorted(group_end, group_end, side="right") - 1
    return order, positives, run_starts, run_of, last_positive


def _safe_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.zeros(np.broadcast(numerator, denominator).shape)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _multiplicities(idx: np.ndarray, n_clips: int) -> np.ndarray:
    """[B, N] how often each clip appears in each resample of clip indices [B, M]."""
    idx = np.asarray(idx, dtype=np.int64)
    n_batch = idx.shape[0]
    flat = (idx + np.arange(n_batch)[:, None] * n_clips).ravel()
    return np.bincount(flat, minlength=n_batch * n_clips).reshape(n_batch, n_clips).astype(float)


def _difference(counts: _Counts, idx: np.ndarray) -> np.ndarray:
    weights = _multiplicities(idx, counts.y.shape[0])
    return counts.metrics(weights, 0) - counts.metrics(weights, 1)


def clip_set_metrics(
    targets: np.ndarray, scores: np.ndarray, predictions: np.ndarray
) -> dict[str, float]:
    """micro-F1, macro-F1 and mAP of one method on all clips, by the bootstrap's own code.

    Equal to ``metrics.classification_metrics`` (tested); exposed so a report can show the point
    estimates that the intervals are about.
    """
    paired = PairedScores(targets, scores, scores, predictions, predictions)
    values = _Counts(paired).metrics(np.ones((1, paired.n_clips)), 0)[:, 0]
    return dict(zip(METRICS, (float(v) for v in values), strict=True))


def paired_bootstrap(
    paired: PairedScores,
    *,
    n_resamples: int = 1000,
    confidence_level: float = 0.95,
    seed: int = 0,
    interval_method: str = "percentile",
) -> dict[str, DifferenceInterval]:
    """A - B in micro-F1, macro-F1 and mAP on one rotation's clips, with bootstrap intervals."""
    return stratified_paired_bootstrap(
        [paired],
        n_resamples=n_resamples,
        confidence_level=confidence_level,
        seed=seed,
        interval_method=interval_method,
    )[1]


def stratified_paired_bootstrap(
    rotations: Sequence[PairedScores],
    *,
    n_resamples: int = 1000,
    confidence_level: float = 0.95,
    seed: int = 0,
    interval_method: str = "percentile",
) -> tuple[list[dict[str, DifferenceInterval]], dict[str, DifferenceInterval]]:
    """Each rotation's A - B interval, and the pooled one: the mean over rotations of A - B.

    Every rotation's clips are resampled within it (stratified), from its own seeded stream. The
    pooled bootstrap distribution is the mean of the rotations' distributions, resample by
    resample: the rotations' resamples are independent, so each mean is a draw of the stratified
    bootstrap, and the resampling work is done once for both. With one rotation the pooled
    interval is that rotation's. ``seed`` makes the resamples (hence the intervals) reproducible.
    """
    if not rotations:
        raise ValueError("no rotation to bootstrap")
    if n_resamples < 1000:
        raise ValueError(f"n_resamples must be >= 1000 for a 95 % interval; got {n_resamples}")
    if not 0.0 < confidence_level < 1.0:
        raise ValueError(f"confidence_level must lie in (0, 1); got {confidence_level}")
    if interval_method not in INTERVAL_METHODS:
        raise ValueError(f"interval_method must be one of {INTERVAL_METHODS}")
    counts = [_Counts(r) for r in rotations]
    streams = np.random.SeedSequence(seed).spawn(len(rotations))
    options = {"confidence_level": confidence_level, "method": interval_method}
    per_rotation, distributions, estimates = [], [], []
    for rotation, stream in zip(counts, streams, strict=True):
        data = (np.arange(rotation.y.shape[0]),)
        statistic = _mean_difference([rotation])
        result, caught = _bootstrap(
            data,
            statistic,
            n_resamples=n_resamples,
            batch=max(1, _BATCH_ELEMENTS // len(data[0])),
            rng=np.random.default_rng(stream),
            **options,
        )
        estimates.append(statistic(*data))
        per_rotation.append(_intervals(result, caught, estimates[-1], len(data[0]), options))
        distributions.append(np.asarray(result.bootstrap_distribution))
    if len(rotations) == 1:
        return per_rotation, per_rotation[0]
    data = tuple(np.arange(c.y.shape[0]) for c in counts)
    statistic = _mean_difference(counts)
    result, caught = _bootstrap(  # no new resample: the interval of the pooled distribution
        data,
        statistic,
        n_resamples=0,
        bootstrap_result=SimpleNamespace(bootstrap_distribution=np.mean(distributions, axis=0)),
        **options,
    )
    n_clips = sum(len(d) for d in data)
    pooled_estimate = np.mean(estimates, axis=0)  # the statistic on all clips, not recomputed
    return per_rotation, _intervals(result, caught, pooled_estimate, n_clips, options)


def _mean_difference(counts: Sequence[_Counts]):
    """scipy's vectorised statistic: [3, ...], the mean over ``counts``' rotations of A - B."""

    def statistic(*indices: np.ndarray, axis: int = -1) -> np.ndarray:
        del axis  # scipy moves the resampled axis last; multiplicities are taken along it
        lead = np.shape(indices[0])[:-1]
        per_rotation = [
            _difference(c, np.reshape(i, (-1, np.shape(i)[-1])))
            for c, i in zip(counts, indices, strict=True)
        ]
        return np.mean(per_rotation, axis=0).reshape((len(METRICS), *lead))

    return statistic


def _bootstrap(data: tuple[np.ndarray, ...], statistic, **kwargs) -> tuple[Any, list]:
    """scipy's bootstrap on clip indices (paired=False: each rotation's indices resampled on
    their own), with its warnings caught for ``_intervals`` to judge."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = bootstrap(data, statistic, vectorized=True, paired=False, **kwargs)
    return result, caught


def _intervals(
    result: Any, caught: list, estimate: np.ndarray, n_clips: int, options: dict[str, Any]
) -> dict[str, DifferenceInterval]:
    distribution = np.asarray(result.bootstrap_distribution)
    degenerate = np.ptp(distribution, axis=1) == 0.0
    if not degenerate.all():  # scipy's warnings about degenerate metrics are answered below
        for warning in caught:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    intervals = {}
    for m, metric in enumerate(METRICS):
        low = float(result.confidence_interval.low[m])
        high = float(result.confidence_interval.high[m])
        if degenerate[m]:  # every resample gives the same difference: the interval is a point
            low = high = float(distribution[m, 0])
        intervals[metric] = DifferenceInterval(
            metric=metric,
            estimate=float(estimate[m]),
            low=low,
            high=high,
            confidence_level=options["confidence_level"],
            n_resamples=distribution.shape[1],
            n_clips=n_clips,
            interval_method=options["method"],
        )
    return intervals


def format_difference(
    interval: DifferenceInterval, name_a: str = "attention", name_b: str = "uniform"
) -> str:
    """One line for under a table: ``attention - uniform: +1.6 [-1.2, +4.3] micro-F1 points``."""
    title = METRIC_TITLES.get(interval.metric, interval.metric)
    return (
        f"{name_a} - {name_b}: {100 * interval.estimate:+.1f} "
        f"[{100 * interval.low:+.1f}, {100 * interval.high:+.1f}] {title} points"
    )
