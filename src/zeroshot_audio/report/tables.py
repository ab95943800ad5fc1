"""Markdown tables of the evaluation: the paper's layout (methods x metrics, mean ± std over
rotations, in %) and the zero-shot localisation table. Pure functions of the report dicts that
``experiment.metrics.tag_report`` and ``experiment.localisation.localisation_report`` build.
"""

from __future__ import annotations

from typing import Any

from zeroshot_audio.experiment.localisation import BASELINE
from zeroshot_audio.experiment.metrics import SUMMARY_METRICS
from zeroshot_audio.experiment.protocol import METHOD_TITLES, METHODS
from zeroshot_audio.model.localisation import LocalisationRule


def evaluation_table(report: dict[str, Any]) -> str:
    """Markdown in the paper's layout: methods x metrics, mean ± std over rotations (in %)."""
    summary = report["summary"]
    rotations = report["rotations"]
    gammas = {
        method: sorted(
            {r["methods"][method]["gamma"] for r in rotations.values() if method in r["methods"]}
        )
        for method in summary
    }
    lines = [
        f"## Multi-label zero-shot audio classification: test folds, mean ± std over "
        f"{len(rotations)} rotations (%)",
        "",
        "| Method | micro-F1 | macro-F1 | mAP |",
        "| --- | ---: | ---: | ---: |",
    ]
    for method, metrics in summary.items():
        title = METHOD_TITLES[method]
        if gammas[method] and gammas[method][0] is not None:
            title += " (γ = " + ", ".join(f"{g:g}" for g in gammas[method]) + ")"
        cells = [
            f"{100 * metrics[m]['mean']:.1f} ± {100 * metrics[m]['std']:.1f}"
            for m in SUMMARY_METRICS
        ]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Threshold rule: `{report['threshold_rule']}`; F1 with zero_division="
        f"{report['zero_division']:g}; macro-F1 and mAP over test classes present in the test "
        f"clips; {report['definitions']['std']}.",
        "",
        "### Per rotation (micro-F1 / macro-F1 / mAP, %)",
        "",
        "| Method | "
        + " | ".join(
            f"{name} (test fold {r['folds']['test']}, {r['n_test_clips']} clips)"
            for name, r in rotations.items()
        )
        + " |",
        "| --- |" + " ---: |" * len(rotations),
    ]
    for method in summary:
        cells = []
        for r in rotations.values():
            result = r["methods"].get(method)
            cells.append(
                "–"
                if result is None
                else " / ".join(f"{100 * result[m]:.1f}" for m in SUMMARY_METRICS)
            )
        lines.append(f"| {METHOD_TITLES[method]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def localisation_table(localisation_report: dict[str, Any]) -> str:
    """Markdown: segment-level F1 (precision, recall) of time stamps, mean ± std over rotations."""
    summary = localisation_report["summary"]
    rule = LocalisationRule.from_dict(localisation_report["localisation_rule"])
    titles = {**METHOD_TITLES, BASELINE: "Every segment active (baseline)"}

    def cell(stats: dict[str, Any] | None) -> str:
        if not stats:
            return "–"
        return (
            f"{100 * stats['f1']['mean']:.1f} ± {100 * stats['f1']['std']:.1f} "
            f"({100 * stats['precision']['mean']:.0f} / {100 * stats['recall']['mean']:.0f})"
        )

    if not localisation_report["rotations"]:
        return (
            "## Zero-shot localisation\n\nNot scored: no test clip has a strong label "
            f"({localisation_report.get('skipped_rotations')}).\n"
        )
    lines = [
        f"## Zero-shot localisation: test-fold classes, segment-level F1 (%), mean ± std over "
        f"{len(localisation_report['rotations'])} rotations",
        "",
        "| Time stamps | of the true tags | of the predicted tags |",
        "| --- | ---: | ---: |",
    ]
    rows = [BASELINE] + [m for m in METHODS if m in summary]
    for row in rows:
        views = summary.get(row, {})
        lines.append(
            f"| {titles.get(row, row)} | {cell(views.get('true_tags'))} | "
            f"{cell(views.get('predicted_tags'))} |"
        )
        baseline = summary.get(f"{row}+{BASELINE}")
        if baseline:
            lines.append(
                f"| {titles.get(row, row)}, every segment of its tags | – | "
                f"{cell(baseline.get('predicted_tags'))} |"
            )
    lines += [
        "",
        f"Cells: F1 (precision / recall). {_segment_s_text(localisation_report)} Time stamps: "
        f"segments with {rule.describe()} attention in tagged windows (`predict.localisation`); "
        f"tags by the `{localisation_report['threshold_rule']}` threshold rule.",
    ]
    return "\n".join(lines) + "\n"


def _segment_s_text(report: dict[str, Any]) -> str:
    return (
        f"Segments of {report['segment_s']:g} s; a segment is true when a strong-label event "
        f"overlaps it by more than {report['min_overlap_s']:g} s."
    )
