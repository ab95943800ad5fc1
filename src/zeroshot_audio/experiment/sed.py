"""Zero-shot localisation scored with the DCASE metrics (``model.sed_metrics``), per rotation.

Reads the attention :func:`~zeroshot_audio.experiment.evaluate.score_rotation` kept for the test
clips with strong labels (no model runs again). For the test-fold (unseen) classes, rows:

- ``temporal_attention`` / ``uniform``: end to end, as ``predict`` outputs time stamps: decisions
  are the attention-high segments (``predict.localisation``) of the classes the clip is tagged
  with under the evaluate threshold rule; the threshold-free scores (segment AP/AUROC, PSDS) use
  the segment scores ``p_c + log(alpha_t * n_valid)`` (``attention_segment_scores``), no threshold;
- ``<method>+all_active``: the same tags with every valid segment active (a tagger without time
  stamps); uniform's own threshold-free scores are exactly that (flat attention);
- ``<method>/true_tags``: the attention-high segments of the clip's *true* tags: *when*
  without *whether* (the tagger's errors removed);
- ``all_active``: every valid segment of the clip's *true* tags (knows whether, not when): the
  baseline of the ``true_tags`` rows;
- ``ceiling_1s``: the reference itself on the 1-s grid (a segment is active when any event
  overlaps it). Perfect for segment metrics, but event F1 and PSDS stay far below 1 since 1-s
  boundaries miss the 200 ms onset collar: the resolution ceiling every row lives under.

MLflow keys: ``evaluate/localisation/sed/<row>/<metric>_mean``.
"""

from __future__ import annotations

import logging
from collections import defaultdict

import numpy as np
import pandas as pd

from zeroshot_audio.experiment.evaluate import RotationScores
from zeroshot_audio.experiment.metrics import mean_std
from zeroshot_audio.model.localisation import LocalisationRule, active_segments, all_active
from zeroshot_audio.model.sed_metrics import (
    attention_segment_scores,
    reference_grid,
    sed_metrics,
    sed_reference,
)

logger = logging.getLogger(__name__)

SED_METHODS = ("uniform", "temporal_attention")
SED_ROWS = (
    "all_active",
    "uniform/true_tags",
    "temporal_attention/true_tags",
    "uniform+all_active",
    "uniform",
    "temporal_attention+all_active",
    "temporal_attention",
    "ceiling_1s",
)
SED_REPORTED = (
    "segment_f1",
    "segment_error_rate",
    "event_f1",
    "segment_map",
    "segment_auroc",
    "psds",
)


def sed_rotation(
    scored: RotationScores,
    positions: np.ndarray,
    strong_labels: pd.DataFrame,
    rule: LocalisationRule,
    segment_s: float,
) -> dict[str, dict[str, float]]:
    """DCASE metrics of every row (module docstring) on the test clips at ``positions`` (those
    with strong labels)."""
    clips = scored.clips.iloc[positions]
    valid, y_true = scored.valid[positions], scored.y_true[positions]
    reference = sed_reference(
        strong_labels, clips["ytid"].astype(str).tolist(), scored.classes, valid.sum(1), segment_s
    )
    rows: dict[str, dict[str, float]] = {
        "all_active": sed_metrics(all_active(valid, y_true), reference)
    }
    for method in [m for m in SED_METHODS if m in scored.methods]:
        result = scored.methods[method]
        attention = scored.attention_of(method, positions)
        tags = result.predictions[positions]
        high = active_segments(attention, valid, rule)
        segment_scores = attention_segment_scores(result.scores[positions], attention, valid)
        rows[method] = sed_metrics(high & tags[:, None, :], reference, segment_scores)
        rows[f"{method}/true_tags"] = sed_metrics(high & y_true[:, None, :], reference)
        rows[f"{method}+all_active"] = sed_metrics(all_active(valid, tags), reference)
    oracle = reference_grid(reference, valid.shape[1])
    rows["ceiling_1s"] = sed_metrics(oracle, reference, oracle.astype(np.float64))
    logger.info(
        "%s DCASE localisation on %d clips: %s",
        scored.name,
        len(clips),
        ", ".join(f"{r} event F1 {v['event_f1']:.3f}" for r, v in rows.items()),
    )
    return rows


def sed_summary(
    per_rotation: dict[str, dict[str, dict[str, float]]], ddof: int
) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, float]]:
    """Mean ± std over rotations of each row's reported metrics, and their MLflow keys."""
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for rows in per_rotation.values():
        for row, metrics in rows.items():
            for metric in SED_REPORTED:
                if metric in metrics and np.isfinite(metrics[metric]):
                    values[row][metric].append(float(metrics[metric]))
    summary = {
        row: {metric: mean_std(v, ddof) for metric, v in metrics.items()}
        for row, metrics in values.items()
    }
    mlflow = {
        f"evaluate/localisation/sed/{row}/{metric}_mean": stats["mean"]
        for row, metrics in summary.items()
        for metric, stats in metrics.items()
    }
    return summary, mlflow


SED_DEFINITIONS = {
    "classes": "the test fold's (unseen) classes with at least one strong-label event among the "
    "scored clips (macro averages and AP/AUROC/PSDS); test clips without strong labels left out",
    "segment_f1": "1-s segment-based micro F1 (Mesaros et al. 2016), sed_eval's definition",
    "segment_error_rate": "1-s segment-based error rate (S + D + I) / N, sed_eval's definition",
    "event_f1": "event-based micro F1, onset collar 200 ms, offset collar max(200 ms, 20 % of the "
    "reference event), sed_scores_eval.collar_based",
    "segment_map": "mean over classes of segment-based (1 s) average precision, threshold-free",
    "segment_auroc": "mean over classes of segment-based (1 s) AUROC, threshold-free",
    "psds": "PSDS scenario 1 (DTC = GTC = 0.7, alpha_ST = 1, max eFPR 100/h), threshold-free, "
    "sed_scores_eval.intersection_based",
    "thresholds": "decision rows: tags by the evaluate threshold rule, then attention-high "
    "segments (predict.localisation); threshold-free columns: segment scores "
    "p_c + log(alpha_t * n_valid), no threshold",
    "ceiling_1s": "the reference on the 1-s grid (any overlap): the resolution ceiling",
}
