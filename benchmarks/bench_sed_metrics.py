"""The DCASE localisation metrics of evaluate: the project's calls vs the libraries' textbook calls.

Evaluate at AudioSet scale spent 12 of its 18 minutes in ``model.sed_metrics`` (issue 11). The
baseline in the same run is each library called once on every clip and class, as its README shows
(``sed_eval.sound_event.SegmentBasedMetrics`` clip by clip, ``sed_scores_eval.collar_based.fscore``,
``segment_based.average_precision`` / ``auroc``, ``intersection_based.psds``); the project's
functions must give the same numbers, faster.

Clips and their (weak) labels are real AudioSet rows; every weak label gets one event at a seeded
random time (AudioSet's strong labels are not in ../shared), and the decisions and scores are the
reference with seeded noise. A third of the classes stand in for a test fold, as in evaluate.

    python benchmarks/bench_sed_metrics.py [--audioset tests/fixtures/audioset] [--clips 2000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from zeroshot_audio.metadata.audioset import parse_segments
from zeroshot_audio.model.sed_metrics import (
    OFFSET_COLLAR_RATE,
    OFFSET_COLLAR_S,
    ONSET_COLLAR_S,
    PSDS_SCENARIO_1,
    SEGMENT_RESOLUTION_S,
    _libraries,
    _score_frames,
    decision_events,
    event_based_metrics,
    reference_grid,
    sed_reference,
    segment_based_metrics,
    threshold_free_metrics,
)

REPO = Path(__file__).resolve().parents[1]
N_SEGMENTS = 10


def planted_case(audioset: Path, n_clips: int, seed: int):
    """Real clips and labels of eval_segments.csv, one seeded event per (clip, test-fold label)."""
    rng = np.random.default_rng(seed)
    mids = pd.read_csv(audioset / "class_labels_indices.csv")["mid"].to_numpy()
    path = audioset / "eval_segments.csv"
    rows, _, _ = parse_segments(path.read_text(), str(path), "eval", mids, strict=True)
    classes = sorted(rng.choice(mids, size=len(mids) // 3, replace=False).tolist())
    in_fold = set(classes)
    labels = rows["labels"].map(lambda ls: [m for m in ls if m in in_fold])
    rows = rows[labels.map(len) > 0].assign(labels=labels)
    rows = rows.iloc[rng.permutation(len(rows))[:n_clips]]
    events = []
    for ytid, clip_labels in zip(rows["ytid"], rows["labels"], strict=True):
        for mid in clip_labels:
            onset = round(float(rng.uniform(0, 8)), 3)
            events.append(
                (ytid, mid, onset, min(10.0, onset + round(float(rng.uniform(0.3, 6)), 3)))
            )
    strong = pd.DataFrame(events, columns=["clip", "mid", "onset_s", "offset_s"])
    clips = rows["ytid"].tolist()
    n_valid = np.where(
        rng.random(len(clips)) < 0.9, N_SEGMENTS, rng.integers(5, N_SEGMENTS, len(clips))
    )
    reference = sed_reference(strong, clips, classes, n_valid)
    truth = reference_grid(reference, N_SEGMENTS)
    decisions = truth ^ (rng.random(truth.shape) < 0.005)
    scores = truth + rng.normal(0, 0.3, truth.shape)
    return reference, decisions, scores


def present_classes_only(values: np.ndarray, reference):
    """The libraries refuse a class without reference events: every clip, those classes only."""
    present = reference.present_classes
    sub = reference.subset(range(len(reference.clips)), present)
    columns = [reference.classes.index(c) for c in present]
    return sub, _score_frames(values[:, :, columns].astype(float), sub)


def textbook_event_f1(decisions: np.ndarray, reference) -> dict[str, float]:
    _, _, sse = _libraries()
    present = reference.present_classes
    sub, frames = present_classes_only(decisions, reference)
    _, _, _, stats = sse.collar_based.fscore(
        frames,
        sub.events,
        0.5,
        onset_collar=ONSET_COLLAR_S,
        offset_collar=OFFSET_COLLAR_S,
        offset_collar_rate=OFFSET_COLLAR_RATE,
        time_decimals=6,
    )
    counts = {c: (stats[c]["tps"], stats[c]["fps"], stats[c]["n_ref"]) for c in present}
    # estimated events of a class without reference events: false positives (the library
    # refuses such a class; the project counts them the same way)
    for events in decision_events(decisions, reference).values():
        for _, _, mid in events:
            if mid not in counts:
                counts[mid] = (0, 0, 0)
            if mid not in present:
                tp, fp, n_ref = counts[mid]
                counts[mid] = (tp, fp + 1, n_ref)
    tps, fps, refs = (sum(float(v[k]) for v in counts.values()) for k in range(3))
    return {"event_f1": 2 * tps / (2 * tps + fps + refs - tps)}


def textbook_segment_metrics(decisions: np.ndarray, reference) -> dict[str, float]:
    """sed_eval's SegmentBasedMetrics, clip by clip, as its documentation shows."""
    sed_eval, dcase_util, _ = _libraries()
    metric = sed_eval.sound_event.SegmentBasedMetrics(
        event_label_list=list(reference.classes), time_resolution=SEGMENT_RESOLUTION_S
    )
    estimated = decision_events(decisions, reference)
    for clip in (c for c in reference.clips if reference.events[c] or estimated[c]):
        ref, est = (
            dcase_util.containers.MetaDataContainer(
                [{"filename": clip, "event_label": m, "onset": a, "offset": b} for a, b, m in e]
            )
            for e in (reference.events[clip], estimated[clip])
        )
        metric.evaluate(ref, est)
    overall = metric.results_overall_metrics()
    return {
        "segment_f1": overall["f_measure"]["f_measure"],
        "segment_error_rate": overall["error_rate"]["error_rate"],
    }


def textbook_threshold_free(scores: np.ndarray, reference) -> dict[str, float]:
    _, _, sse = _libraries()
    present = reference.present_classes
    sub, frames = present_classes_only(scores, reference)
    segment = {"segment_length": SEGMENT_RESOLUTION_S, "time_decimals": 6}
    ap = sse.segment_based.average_precision(frames, sub.events, sub.durations, **segment)[0]
    auroc = sse.segment_based.auroc(frames, sub.events, sub.durations, **segment)[0]
    psds = sse.intersection_based.psds(
        frames, sub.events, sub.durations, **PSDS_SCENARIO_1, time_decimals=6
    )[0]
    return {
        "segment_map": float(np.mean([ap[c] for c in present])),
        "segment_auroc": float(np.mean([auroc[c] for c in present])),
        "psds": float(psds),
    }


def timed(fn, *args):
    started = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audioset", type=Path, default=REPO / "tests/fixtures/audioset")
    parser.add_argument("--clips", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    _libraries()  # imports (librosa, numba) outside the timings
    reference, decisions, scores = planted_case(args.audioset, args.clips, args.seed)
    n_events = sum(len(e) for e in reference.events.values())
    print(
        f"{len(reference.clips)} real clips, {len(reference.classes)} classes "
        f"({len(reference.present_classes)} with events), {n_events} events"
    )

    compare("segment-based (sed_eval)", textbook_segment_metrics, segment_based_metrics,
            decisions, reference, 1e-12)  # fmt: skip
    compare("event-based", textbook_event_f1, event_based_metrics, decisions, reference, 1e-12)
    compare("threshold-free", textbook_threshold_free, threshold_free_metrics, scores, reference,
            1e-9)  # fmt: skip


def compare(label, textbook, project, values, reference, tolerance: float) -> None:
    """Both on the same input: the same numbers (to ``tolerance``), and their times."""
    base, t_base = timed(textbook, values, reference)
    ours, t_ours = timed(project, values, reference)
    for key, value in base.items():
        assert abs(ours[key] - value) < tolerance, (key, ours[key], value)
    shown = ", ".join(f"{key} {ours[key]:.6f}" for key in base)
    print(
        f"{label}: {shown} (equal to the textbook calls): textbook {t_base:.2f} s, "
        f"project {t_ours:.2f} s, speed-up {t_base / t_ours:.1f}x"
    )


if __name__ == "__main__":
    main()
