"""``evaluate`` nodes: doorways from catalog inputs to the one scoring pass and the reports."""

import pytest
from matplotlib.figure import Figure

from tests.planted_catalog import PARAMS, planted_catalog, planted_training
from zeroshot_audio.experiment.evaluate import EvaluationScores
from zeroshot_audio.pipelines.evaluate.localisation import score_localisation
from zeroshot_audio.pipelines.evaluate.nodes import (
    per_class_ap_outputs,
    plot_attention_heatmaps,
    plot_f1_chart,
    score_test_clips,
    summarise_evaluation,
    tabulate_test_predictions,
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
    scores = scored
    predictions = tabulate_test_predictions(scores)
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
        scores, inputs["label_embeddings"], PARAMS["evaluate"], PARAMS["seed"], localisation
    )
    assert report["localisation"]["summary"] == localisation["summary"]
    # paired intervals per rotation and pooled, in the report, MLflow and under the table
    differences = report["paired_differences"]
    assert set(differences["intervals"]) == {"rot0", "rot1", "rot2", "pooled"}
    pooled = differences["intervals"]["pooled"]["micro_f1"]
    assert pooled["low"] <= pooled["estimate"] <= pooled["high"]
    assert pooled["n_resamples"] >= 1000
    key = "evaluate/difference/temporal_attention_minus_uniform/micro_f1"
    assert report["mlflow_metrics"][key] == pytest.approx(pooled["estimate"])
    assert report["mlflow_metrics"][f"{key}_low"] == pytest.approx(pooled["low"])
    assert differences["lines"]["pooled"][0] in table
    assert "micro-F1 points" in table and table.count("attention - uniform:") >= 3
    # same seed, same interval
    again, _ = summarise_evaluation(
        scores, inputs["label_embeddings"], PARAMS["evaluate"], PARAMS["seed"], localisation
    )
    assert again["paired_differences"]["intervals"] == differences["intervals"]
    # DCASE localisation metrics with their baselines and the 1-s ceiling
    sed = localisation["sed"]["summary"]
    assert {"all_active", "uniform", "temporal_attention", "ceiling_1s"} <= set(sed)
    assert sed["ceiling_1s"]["segment_f1"]["mean"] == pytest.approx(1.0)
    assert "### DCASE metrics" in table and "Ceiling: the reference on the 1-s grid" in table
    assert (
        "evaluate/localisation/sed/temporal_attention/psds_mean" in localisation["mlflow_metrics"]
    )
    per_class, figure = per_class_ap_outputs(report, PARAMS["evaluate"])
    n_classes = sum(len(r.classes) for r in scores.rotations.values())
    assert len(per_class) == n_classes and isinstance(figure, Figure)
    assert {"ap_temporal_attention", "ap_uniform", "ap_difference", "rotation"} <= set(per_class)
    assert "mlflow_metrics" not in report["localisation"]
    assert table.index("## Multi-label") < table.index("## Zero-shot localisation")
    assert isinstance(plot_f1_chart(report), Figure)
    heatmaps = plot_attention_heatmaps(scores, inputs["label_embeddings"], PARAMS["evaluate"])
    assert len(heatmaps.axes) == 2 * PARAMS["evaluate"]["heatmaps"]["n_clips"]  # + colour bars


def test_a_typo_in_the_parameters_is_refused_naming_it(scored):
    with pytest.raises(ValueError, match=r"unknown evaluate parameter\(s\) \['std_dof'\]"):
        _score({**PARAMS["evaluate"], "std_dof": 0})
    with pytest.raises(ValueError, match=r"unknown localisation parameter\(s\) \['vale'\]"):
        score_localisation(scored, planted_catalog()["strong_labels"], PARAMS["evaluate"],
                           {"rule": "mass", "vale": 0.5})  # fmt: skip
