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
    lines += _difference_lines(report.get("paired_differences"))
    lines += [
        "",
        f'Threshold rule: `{report["threshold_rule"]}` (docs/reproduction.md, "Thresholds"); '
        f"F1 with zero_division="
        f"{report['zero_division']:g}; macro-F1 and mAP over test classes present in the test "
        f"clips; {report['definitions']['std']}. Every clip of each test fold is scored by every "
        "method; the supervised upper bound and the zero-rule are cross-fitted inside it.",
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


def _difference_lines(differences: dict[str, Any] | None) -> list[str]:
    """Paired bootstrap lines (pooled over rotations, then per rotation) for under the table."""
    if not differences:
        return []
    pooled = differences["intervals"]["pooled"]
    first = next(iter(pooled.values()))
    lines = [
        "",
        f"Paired differences, pooled over rotations (mean of per-rotation differences; "
        f"{100 * first['confidence_level']:g} % {first['interval_method']} bootstrap interval, "
        f"{first['n_resamples']} resamples of the {first['n_clips']} test clips within each "
        "rotation):",
        "",
    ]
    lines += [f"- {line}" for line in differences["lines"]["pooled"]]
    per_rotation = [scope for scope in differences["lines"] if scope != "pooled"]
    for scope in per_rotation:
        lines.append(f"- {scope}: " + "; ".join(differences["lines"][scope]))
    return lines


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
    lines += _sed_table(localisation_report)
    return "\n".join(lines) + "\n"


SED_TITLES = {
    "all_active": "True tags, every segment active (knows whether, not when)",
    "uniform/true_tags": "True tags, uniform attention-high segments",
    "temporal_attention/true_tags": "True tags, temporal attention-high segments",
    "uniform+all_active": "Uniform tags, every segment active",
    "uniform": "Zero-shot, uniform aggregation",
    "temporal_attention+all_active": "Attention tags, every segment active",
    "temporal_attention": "Zero-shot, temporal attention",
    "ceiling_1s": "Ceiling: the reference on the 1-s grid",
}
SED_COLUMNS = {
    "segment_f1": "Seg. F1 (1 s)",
    "segment_error_rate": "Seg. ER (1 s)",
    "event_f1": "Event F1",
    "segment_auroc": "Seg. AUROC",
    "segment_map": "Seg. AP",
    "psds": "PSDS1",
}


def _sed_table(localisation_report: dict[str, Any]) -> list[str]:
    """The DCASE-metric table (``experiment.sed``): rows x metrics, mean ± std over rotations."""
    sed = (localisation_report.get("sed") or {}).get("summary")
    if not sed:
        return []
    columns = list(SED_COLUMNS)
    lines = [
        "",
        "### DCASE metrics of the zero-shot time stamps (test-fold classes, mean ± std over "
        "rotations)",
        "",
        "| Time stamps | " + " | ".join(SED_COLUMNS[c] for c in columns) + " |",
        "| --- |" + " ---: |" * len(columns),
    ]
    for row, title in SED_TITLES.items():
        if row not in sed:
            continue
        cells = []
        for column in columns:
            stats = sed[row].get(column)
            scale = 1.0 if column in ("segment_error_rate", "psds") else 100.0
            digits = {"segment_error_rate": 2, "psds": 3}.get(column, 1)
            cells.append(
                "–"
                if stats is None
                else f"{scale * stats['mean']:.{digits}f} ± {scale * stats['std']:.{digits}f}"
            )
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "F1, AUROC and AP in %; ER and PSDS as fractions. Decision columns (F1, ER): tags by the "
        f'`{localisation_report["threshold_rule"]}` threshold rule (rows "True tags": the '
        "clip's real labels, no tag threshold), then attention-high segments "
        "(`predict.localisation`); AUROC, AP and PSDS are threshold-free (segment scores "
        "p_c + log(alpha_t n)). Event F1: 200 ms onset collar, offset collar max(200 ms, 20 %). "
        "The 1-s grid caps event F1 and PSDS (ceiling row). Libraries: sed_eval, "
        "sed_scores_eval (docs/reproduction.md).",
    ]
    return lines


def _segment_s_text(report: dict[str, Any]) -> str:
    return (
        f"Segments of {report['segment_s']:g} s; a segment is true when a strong-label event "
        f"overlaps it by more than {report['min_overlap_s']:g} s."
    )
