"""The ``evaluate`` node that scores zero-shot localisation (``experiment.localisation``): the
attention kept by ``score_test_clips`` against the strong labels, with the rule ``predict`` uses."""

from __future__ import annotations

from typing import Any

import pandas as pd

from zeroshot_audio.experiment.evaluate import EvaluateConfig, EvaluationScores
from zeroshot_audio.experiment.localisation import localisation_report
from zeroshot_audio.model.localisation import LocalisationRule


def score_localisation(
    test_scores: EvaluationScores,
    strong_labels: pd.DataFrame,
    evaluate_params: dict[str, Any],
    localisation_params: dict[str, Any],
) -> dict[str, Any]:
    """Segment-level F1 of every model's time stamps; ``localisation_params`` is
    ``predict.localisation`` (what is scored is what predict outputs)."""
    config = EvaluateConfig.from_dict(evaluate_params)
    return localisation_report(
        test_scores,
        strong_labels,
        LocalisationRule.from_dict(localisation_params),
        config.localisation.min_overlap_s,
        config.std_ddof,
        config.localisation.event_max_clips,
    )
