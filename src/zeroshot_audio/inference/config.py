"""The ``predict`` parameters, typed (conf/base/parameters_predict.yml), and label-list parsing.

Every block is built by ``config.build_strict``: a typo (``treshold:``) is an error naming it.
``ThresholdConfig`` is ``evaluate``'s (``model.metrics``), re-exported here: one rule, one type.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from zeroshot_audio.audio import vggish
from zeroshot_audio.audio.precision import check_precision
from zeroshot_audio.config import build_strict
from zeroshot_audio.model.localisation import LocalisationRule
from zeroshot_audio.model.metrics import ThresholdConfig

# What a folder is searched for; a file named explicitly is always tried, whatever its suffix.
AUDIO_EXTENSIONS = ("wav", "flac", "ogg", "oga", "opus", "mp3", "aiff", "aif", "m4a", "webm", "mp4")
FILE_SCORES = ("max", "mean")
LABEL_SEPARATOR = ";"
_MID_PATTERN = re.compile(r"^/[a-z]/[0-9a-z_]+$")


@dataclass(frozen=True)
class FigureConfig:
    enabled: bool = True
    max_files: int = 8
    max_labels: int = 8


@dataclass(frozen=True)
class PredictConfig:
    """The ``predict`` parameters, typed. See conf/base/parameters_predict.yml."""

    audio: tuple[str, ...]
    labels: tuple[str, ...]
    model: str = "auto"
    max_files: int | None = None
    extensions: tuple[str, ...] = AUDIO_EXTENSIONS
    threshold: ThresholdConfig = field(default_factory=ThresholdConfig)
    hop_s: float | None = None  # None: the window length (non-overlapping windows)
    file_score: str = "max"
    localisation: LocalisationRule = field(default_factory=LocalisationRule)
    # A file shorter than one VGGish example (0.975 s) but at least this long is zero-padded to
    # one segment (see audio.io.SegmentLayout); shorter ones are rejected as too_short.
    min_sound_s: float = 0.1
    batch_size: int = 64
    # VGGish arithmetic (audio/precision.py): auto | fp32 | bf16. The checkpoint's
    # EmbedderSpec.precision is informational; any mode within the error bound reproduces it.
    precision: str = "auto"
    figures: FigureConfig = field(default_factory=FigureConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "audio", tuple(split_list(self.audio, "predict.audio")))
        object.__setattr__(self, "labels", tuple(parse_labels(self.labels)))
        object.__setattr__(
            self, "extensions", tuple(e.lower().lstrip(".") for e in self.extensions)
        )
        if not self.audio:
            raise ValueError(
                "predict.audio is empty: give an audio folder, file or glob (several separated "
                f"by {LABEL_SEPARATOR!r})"
            )
        if self.file_score not in FILE_SCORES:
            raise ValueError(f"file_score must be one of {FILE_SCORES}, got {self.file_score!r}")
        if self.hop_s is not None and self.hop_s <= 0:
            raise ValueError(f"hop_s must be > 0, got {self.hop_s}")
        if self.max_files is not None and self.max_files < 1:
            raise ValueError(f"max_files must be >= 1 or null, got {self.max_files}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.min_sound_s > 0:
            raise ValueError(f"min_sound_s must be > 0 s, got {self.min_sound_s}")
        check_precision(self.precision)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> PredictConfig:
        """Build from the ``predict`` parameters block, rejecting unknown keys."""
        params = dict(params)
        if "audio" not in params or "labels" not in params:
            raise ValueError("predict needs `audio` and `labels` parameters")
        params["threshold"] = build_strict(
            ThresholdConfig, params.get("threshold"), "predict.threshold"
        )
        params["figures"] = build_strict(FigureConfig, params.get("figures"), "predict.figures")
        params["localisation"] = LocalisationRule.from_dict(params.get("localisation"))
        if params.get("extensions") is not None:
            params["extensions"] = tuple(split_list(params["extensions"], "predict.extensions"))
        else:
            params.pop("extensions", None)
        return build_strict(cls, params, "predict")


def weights_location(featurize_params: Mapping[str, Any] | None) -> vggish.WeightsSpec:
    """Where this machine keeps the VGGish files (``featurize.weights``). Only the location is
    taken from today's parameters: WHICH weights, layout and post-processing come from the
    checkpoint (``inference.predictor``)."""
    weights = dict((featurize_params or {}).get("weights") or {})
    return build_strict(vggish.WeightsSpec, weights, "featurize.weights")


def split_list(value: str | Sequence[str] | None, where: str) -> list[str]:
    """A YAML list, or one string with ``;`` between items (``kedro run --params`` splits on
    commas, so lists travel as ``a;b;c``); items are stripped, empty ones dropped."""
    if value is None:
        return []
    items = value.split(LABEL_SEPARATOR) if isinstance(value, str) else list(value)
    out = []
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"{where}: expected strings, got {type(item).__name__}: {item!r}")
        if item.strip():
            out.append(item.strip())
    return out


def parse_labels(labels: str | Sequence[str] | None) -> list[str]:
    """Label texts in order, duplicates dropped; an empty list is an error."""
    items = list(dict.fromkeys(split_list(labels, "predict.labels")))
    if not items:
        raise ValueError(
            "no labels given: predict needs at least one label text or AudioSet mid, e.g. "
            '`zeroshot-audio predict AUDIO_DIR --labels "dog barking" siren` or '
            '`kedro run --pipelines=predict --params "predict.labels=dog barking;siren"`'
        )
    return items


def is_audioset_mid(label: str) -> bool:
    return bool(_MID_PATTERN.match(label))
