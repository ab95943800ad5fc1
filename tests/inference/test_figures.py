"""``inference.figures``: one figure per file, named after it; none when disabled."""

from __future__ import annotations

import numpy as np
import pandas as pd

from zeroshot_audio.inference import FigureConfig
from zeroshot_audio.inference.figures import prediction_figures


def tables(file: str):
    predictions = pd.DataFrame(
        {
            "file": file,
            "label": ["tone", "dog"],
            "text": ["tone", "dog"],
            "score": [0.9, 0.1],
            "predicted": [True, False],
            "threshold": 0.5,
        }
    )
    events = pd.DataFrame({"file": [file], "label": ["tone"], "onset_s": [1.0], "offset_s": [2.0]})
    segments = pd.DataFrame(
        {
            "file": file,
            "label": ["tone", "dog"] * 3,
            "window": 0,
            "segment_start_s": np.repeat([0.0, 1.0, 2.0], 2),
            "segment_end_s": np.repeat([1.0, 2.0, 2.5], 2),
            "attention": [0.1, 0.3, 0.8, 0.3, 0.1, 0.4],
            "active": [False, False, True, False, False, False],
        }
    )
    t = np.linspace(0, 2.5, 50, dtype=np.float32)
    audio = {file: {"duration_s": 2.5, "time_s": t, "low": -np.ones(50), "high": np.ones(50)}}
    return predictions, events, segments, audio


def test_one_figure_per_file_named_after_it_and_none_when_disabled():
    file = "/clips/my [take 1].wav"
    figures = prediction_figures(*tables(file), FigureConfig())
    assert list(figures) == ["000_my__take_1_.png"]
    axes = figures["000_my__take_1_.png"].axes
    assert file in axes[0].get_title()
    assert prediction_figures(*tables(file), FigureConfig(enabled=False)) == {}
