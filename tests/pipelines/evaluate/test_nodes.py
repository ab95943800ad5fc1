"""``evaluate`` nodes: doorways from catalog inputs to the one scoring pass and the reports."""

import pytest
from matplotlib.figure import Figure

from tests.planted_catalog import PARAMS, planted_catalog, planted_training
from zeroshot_audio.experiment.evaluate import EvaluationScores
from zeroshot_audio.pipelines.evaluate.localisation import score_localisation
from zeroshot_audio.pipelines.evaluate.nodes import (
    plot_attention_heatmaps,
    plot_f1_chart,
    score_test_clips,
    summarise_evaluation,
)


def _score(evaluate_params=PARAMS["evaluate"]):
    trained, inputs = planted_training(), planted_catalog()
    return score_test_clips(
        trained["run"].checkpoints,
        trained["splits"],
        inputs["segment_embeddings"],
        inputs["label_embeddings"],
        inputs["clip_folds"],
        inputs["strong_labels"],
        evaluate_params,
        "cpu",
    )


@pytest.fixture(scope="module")
def scored():
    return _score()


def test_scores_feed_every_report_node_without_scoring_again(scored):
    scores, predictions = scored
    assert isinstance(scores, EvaluationScores) and set(scores.rotations) == {
        "rot0",
        "rot1",
        "rot2",
    }
    assert len(predictions) == sum(len(r.clips) * len(r.methods) for r in scores.rotations.values())
    inputs = planted_catalog()
    localisation = score_localisation(
        scores, inputs["strong_labels"], PARAMS["evaluate"], PARAMS["predict"]["localisation"]
    )
    report, table = summarise_evaluation(
        scores, inputs["label_embeddings"], PARAMS["evaluate"], localisation
    )
    assert report["localisation"]["summary"] == localisation["summary"]
    assert "mlflow_metrics" not in report["localisation"]
    assert table.index("## Multi-label") < table.index("## Zero-shot localisation")
    assert isinstance(plot_f1_chart(report), Figure)
    heatmaps = plot_attention_heatmaps(scores, inputs["label_embeddings"], PARAMS["evaluate"])
    assert len(heatmaps.axes) == 2 * PARAMS["evaluate"]["heatmaps"]["n_clips"]  # + colour bars


def test_a_typo_in_the_parameters_is_refused_naming_it(scored):
    with pytest.raises(ValueError, match=r"unknown evaluate parameter\(s\) \['std_dof'\]"):
        _score({**PARAMS["evaluate"], "std_dof": 0})
    with pytest.raises(ValueError, match=r"unknown localisation parameter\(s\) \['vale'\]"):
        score_localisation(scored[0], planted_catalog()["strong_labels"], PARAMS["evaluate"],
                           {"rule": "mass", "vale": 0.5})  # fmt: skip
