"""Zero-shot tagging and time stamps for any audio file and any label text.

A trained temporal-attention model scores T-segment windows against any set of label embeddings,
so predicting is: cut each file into windows of the training layout (10 x 1-s segments, with their
time offsets), embed each window's segments with the same VGGish set-up as ``featurize``, embed the
label texts with the encoder the model was trained with, score, threshold as in ``evaluate``, and
turn per-label attention into ``onset_s``/``offset_s`` events (``model.localisation``).

Labels are free text ("a siren far away") or AudioSet mids ("/m/03kmc9"); a mid is replaced by
the text its class was embedded from (``label_embeddings``), then encoded like any other text.

A file that cannot be used (missing, undecodable, silent-length, non-finite, shorter than one
VGGish example) is reported with a reason and skipped; the others go on.

No Kedro here: usable from a notebook, e.g.::

    predictor = Predictor(checkpoint, FeaturizeConfig.from_params(featurize_params, seed))
    labels = resolve_labels(["dog barking", "/m/07cx4"], label_embeddings)
    result = predict_files(predictor, ["long.wav"], labels, PredictConfig(...))
"""

from __future__ import annotations

import glob
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from zeroshot_audio.audio import io as audio_io
from zeroshot_audio.audio import vggish
from zeroshot_audio.audio.featurize import FeaturizeConfig
from zeroshot_audio.device import resolve_device
from zeroshot_audio.model.attention import TemporalAttentionModel
from zeroshot_audio.model.localisation import (
    LocalisationRule,
    active_segments,
    segments_to_events,
)
from zeroshot_audio.model.metrics import THRESHOLD_RULES, apply_threshold_rule

logger = logging.getLogger(__name__)

# What a folder is searched for; a file named explicitly is always tried, whatever its suffix.
AUDIO_EXTENSIONS = ("wav", "flac", "ogg", "oga", "opus", "mp3", "aiff", "aif", "m4a", "webm", "mp4")
FILE_SCORES = ("max", "mean")
LABEL_SEPARATOR = ";"
_MID_PATTERN = re.compile(r"^/[a-z]/[0-9a-z_]+$")
# A listed path that does not exist is reported like a missing audio file; a failure that is not
# one of featurize's reasons (audio_io.FAILURE_REASONS) gets its own code.
MISSING_FILE = audio_io.MISSING_FILE
UNEXPECTED_ERROR = "unexpected_error"


class ModelNotTrainedError(RuntimeError):
    """No trained checkpoint to predict with; the message says what to run."""


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThresholdConfig:
    """As in ``evaluate``: ``tuned`` (the checkpoint's validation threshold), ``fixed``, ``top_k``."""

    rule: str = "tuned"
    fixed: float = 0.0
    top_k: int = 1

    def __post_init__(self) -> None:
        if self.rule not in THRESHOLD_RULES:
            raise ValueError(f"threshold rule must be one of {THRESHOLD_RULES}, got {self.rule!r}")
        if int(self.top_k) < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")


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
    batch_size: int = 64
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

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> PredictConfig:
        """Build from the ``predict`` parameters block, rejecting unknown keys."""
        params = dict(params)
        _reject_unknown(params, cls, "predict")
        nested = {
            "threshold": ThresholdConfig,
            "figures": FigureConfig,
        }
        for key, kind in nested.items():
            values = dict(params.get(key) or {})
            _reject_unknown(values, kind, f"predict.{key}")
            params[key] = kind(**values)
        params["localisation"] = LocalisationRule.from_dict(params.get("localisation"))
        if "audio" not in params or "labels" not in params:
            raise ValueError("predict needs `audio` and `labels` parameters")
        if params.get("extensions") is not None:
            params["extensions"] = tuple(split_list(params["extensions"], "predict.extensions"))
        else:
            params.pop("extensions", None)
        return cls(**params)


def _reject_unknown(values: Mapping[str, Any], kind: type, where: str) -> None:
    known = {f.name for f in fields(kind)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {sorted(unknown)} in {where}; known: {sorted(known)}"
        )


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


# --------------------------------------------------------------------------------------------
# Inputs: files, labels, model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileFailure:
    file: str
    reason: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"file": self.file, "reason": self.reason, "detail": self.detail}


def list_audio_files(
    sources: Sequence[str],
    extensions: Sequence[str] = AUDIO_EXTENSIONS,
    max_files: int | None = None,
) -> tuple[list[str], list[FileFailure]]:
    """Files to tag from folders (searched recursively for ``extensions``), files and globs.

    A source that matches nothing is reported as a failure rather than stopping the others.
    Order: sources in the given order, each one's files sorted; duplicates dropped.
    """
    suffixes = {f".{e.lower().lstrip('.')}" for e in extensions}
    files: list[str] = []
    failures: list[FileFailure] = []
    for source in sources:
        path = Path(source).expanduser()
        if path.is_dir():
            found = sorted(
                str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes
            )
            if not found:
                failures.append(
                    FileFailure(
                        source,
                        MISSING_FILE,
                        f"folder has no audio file with extension {sorted(suffixes)}",
                    )
                )
        elif path.is_file():
            found = [str(path)]
        elif glob.has_magic(source):
            found = sorted(p for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
            if not found:
                failures.append(FileFailure(source, MISSING_FILE, "the pattern matches no file"))
        else:
            found = []
            failures.append(FileFailure(source, MISSING_FILE, "no such file or folder"))
        files.extend(found)
    files = list(dict.fromkeys(files))
    if max_files is not None:
        files = files[:max_files]
    return files, failures


def resolve_labels(
    labels: Sequence[str], label_embeddings: pd.DataFrame | None = None
) -> pd.DataFrame:
    """``label`` (as given), ``mid`` (None for free text) and ``text`` (what gets embedded).

    A mid takes the text its class was embedded from at training time; an unknown mid is an
    error naming it (free text is always accepted).
    """
    texts: dict[str, str] = {}
    if label_embeddings is not None and len(label_embeddings):
        texts = dict(zip(label_embeddings["mid"].astype(str), label_embeddings["text"].astype(str)))
    rows = []
    unknown = []
    for label in parse_labels(list(labels)):
        if is_audioset_mid(label):
            if label not in texts:
                unknown.append(label)
                continue
            rows.append({"label": label, "mid": label, "text": texts[label]})
        else:
            rows.append({"label": label, "mid": None, "text": label})
    if unknown:
        raise ValueError(
            f"unknown AudioSet mid(s) {unknown}: not among the {len(texts)} classes of "
            "label_embeddings (run embed_labels on the class table that has them, or give the "
            "label as free text)"
        )
    table = pd.DataFrame(rows, columns=["label", "mid", "text"]).astype(object)
    table["mid"] = table["mid"].where(table["mid"].notna(), None)
    return table


def select_checkpoint(
    trained_models: Mapping[str, Mapping[str, Any]], name: str = "auto"
) -> tuple[str, dict[str, Any]]:
    """The checkpoint to predict with: ``name``, or for ``auto`` the temporal-attention model of
    the rotation with the best validation micro-F1 (ties: the first name in sorted order)."""
    if not trained_models:
        raise ModelNotTrainedError(
            "no trained model: `trained_models` is empty. Train first: `kedro run` (everything) "
            "or `kedro run --pipelines=ingest,split,featurize,embed_labels,train`."
        )
    if name != "auto":
        if name not in trained_models:
            raise ValueError(
                f"predict.model={name!r} is not a trained checkpoint; available: "
                f"{sorted(trained_models)} (or 'auto')"
            )
        return name, dict(trained_models[name])
    candidates = [k for k, c in trained_models.items() if c.get("method") == "temporal_attention"]
    if not candidates:
        candidates = [k for k, c in trained_models.items() if c.get("method") != "supervised"]
    if not candidates:
        candidates = list(trained_models)
    best = max(
        sorted(candidates),
        key=lambda k: float(trained_models[k].get("validation_micro_f1", float("-inf"))),
    )
    return best, dict(trained_models[best])


def featurize_config_for_model(
    featurize_params: Mapping[str, Any], seed: int, device: str
) -> FeaturizeConfig:
    """The VGGish set-up that produced the training embeddings, from the ``featurize`` parameters.

    When training read AudioSet's released embeddings, new audio must be embedded like the
    release: official weights, PCA, 8-bit quantisation.
    """
    params = dict(featurize_params)
    source = params.pop("source", "audio")
    params.pop("released_embeddings_glob", None)
    config = FeaturizeConfig.from_params(params, seed=seed, device=device)
    if source == "released_embeddings":
        config = replace(
            config,
            postprocess="quantized",
            weights=replace(config.weights, allow_random=False),
        )
    return config


def check_compatible(checkpoint: Mapping[str, Any], config: FeaturizeConfig) -> None:
    """Refuse to feed a model embeddings of another kind than it was trained on."""
    trained = checkpoint.get("segment_dtype")
    if trained and trained != config.output_dtype:
        raise ValueError(
            f"the model was trained on {trained} segment embeddings, but the featurize "
            f"parameters now produce {config.output_dtype} (postprocess={config.postprocess!r}); "
            "predict with the featurize parameters the model was trained with, or retrain"
        )
    model_segments = checkpoint.get("config", {}).get("acoustic_dim", vggish.EMBEDDING_SIZE)
    if int(model_segments) != vggish.EMBEDDING_SIZE:
        raise ValueError(f"the model expects {model_segments}-d segments, VGGish gives 128")


# --------------------------------------------------------------------------------------------
# Audio -> windows -> segment embeddings
# --------------------------------------------------------------------------------------------


@dataclass
class AudioWindows:
    """One file cut into windows of the training layout, with their segment embeddings."""

    path: str
    duration_s: float
    sample_rate: int  # of the file as decoded (before resampling to 16 kHz)
    window_start_s: np.ndarray  # [W]
    n_valid: np.ndarray  # [W] valid segments per window
    embeddings: np.ndarray  # [W, T, 128] float32 or uint8, zeros past n_valid
    envelope: dict[str, np.ndarray]  # time_s, low, high: min/max per bin, for figures

    @property
    def valid_mask(self) -> np.ndarray:
        t = np.arange(self.embeddings.shape[1])
        return t[None, :] < self.n_valid[:, None]


def load_waveform(path: str | Path) -> tuple[np.ndarray, int, float]:
    """Whole file as 16-kHz mono float32, its original rate and its duration in seconds.

    Raises ``audio_io.ClipFailure`` (reason codes of featurize) for anything unusable.
    """
    data, sr = audio_io.decode(path)
    if data.shape[0] == 0:
        raise audio_io.ClipFailure(audio_io.ZERO_LENGTH, path, "decoded 0 samples")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise audio_io.ClipFailure(audio_io.NON_FINITE, path, f"{bad} NaN/inf samples")
    duration_s = data.shape[0] / sr
    return audio_io.resample(audio_io.to_mono(data), sr), sr, duration_s


def window_starts(n_samples: int, layout: audio_io.SegmentLayout, hop_samples: int) -> list[int]:
    """Start samples of the windows of a file: every hop, while a window still holds at least one
    valid segment (a last window shorter than the layout is masked, not padded with fake audio)."""
    starts = []
    start = 0
    while start < n_samples and layout.n_valid_segments(n_samples - start) > 0:
        starts.append(start)
        start += hop_samples
    return starts


def envelope(waveform: np.ndarray, sample_rate: int, n_bins: int = 2000) -> dict[str, np.ndarray]:
    """Min/max per bin: what a waveform plot needs, at a fixed small size per file."""
    n_bins = max(1, min(n_bins, len(waveform)))
    edges = np.linspace(0, len(waveform), n_bins + 1).astype(np.int64)
    low = np.minimum.reduceat(waveform, edges[:-1])
    high = np.maximum.reduceat(waveform, edges[:-1])
    return {
        "time_s": (edges[:-1] / sample_rate).astype(np.float32),
        "low": low.astype(np.float32),
        "high": high.astype(np.float32),
    }


Embedder = Callable[[torch.Tensor], torch.Tensor]


def plain_mapping(value: Mapping[str, Any] | Any | None) -> dict[str, Any]:
    """A parameters block as a dict, whether Kedro passes it as a mapping or, when a node of the
    same run type-hints it with a dataclass (``EncoderConfig``), as that dataclass."""
    if value is None:
        return {}
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return dict(value)


class Predictor:
    """A trained checkpoint with the VGGish embedder and text encoder it needs, loaded once.

    ``embedder`` and ``text_encoder`` may be injected (a notebook that already holds them, tests);
    otherwise they are built on first use from ``featurize_config`` and the checkpoint's recorded
    label encoder.
    """

    def __init__(
        self,
        checkpoint: Mapping[str, Any],
        featurize_config: FeaturizeConfig,
        *,
        name: str = "model",
        device: str | torch.device = "auto",
        embedder: Embedder | None = None,
        text_encoder: Any | None = None,
        encoder_fallback: Mapping[str, Any] | Any | None = None,
    ) -> None:
        check_compatible(checkpoint, featurize_config)
        self.name = name
        self.checkpoint = dict(checkpoint)
        self.featurize_config = featurize_config
        self.layout = featurize_config.layout
        self.device = resolve_device(device)
        self.model = TemporalAttentionModel.from_checkpoint(checkpoint).to(self.device)
        self._embedder = embedder
        self._text_encoder = text_encoder
        self._encoder_fallback = plain_mapping(encoder_fallback)
        self.vggish_weights = "injected" if embedder is not None else None

    # -- the two encoders, built lazily ---------------------------------------------------------

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            cfg = self.featurize_config
            weights = vggish.resolve_weights(cfg.weights, cfg.seed, cfg.postprocess != "none")
            self.vggish_weights = weights.source
            self._embedder = vggish.build_embedder(
                weights,
                seed=cfg.seed,
                final_relu=cfg.final_relu,
                postprocess=cfg.postprocess,
                device=self.device,
                channels_last=cfg.channels_last,
            )
        return self._embedder

    @property
    def encoder_config(self) -> dict[str, Any]:
        """The label encoder the model was trained with (recorded in the checkpoint by ``train``)."""
        recorded = plain_mapping(self.checkpoint.get("label_encoder"))
        if recorded.get("model_name_or_path"):
            return recorded
        return self._encoder_fallback

    @property
    def text_encoder(self) -> Any:
        if self._text_encoder is None:
            from zeroshot_audio.text import EncoderConfig, TextEncoder

            config = EncoderConfig.from_dict(self.encoder_config)
            self._text_encoder = TextEncoder(config, device=self.device)
        return self._text_encoder

    # -- steps ----------------------------------------------------------------------------------

    def encode_labels(self, labels: pd.DataFrame) -> np.ndarray:
        """``[C, E]`` float32 embeddings of ``labels['text']``, checked against the model."""
        vectors = np.asarray(self.text_encoder.encode(labels["text"].tolist()), dtype=np.float32)
        expected = self.model.config.semantic_dim
        if vectors.shape != (len(labels), expected):
            raise ValueError(
                f"the label encoder gives {vectors.shape[-1]}-d vectors but the model expects "
                f"{expected}-d: predict must use the encoder the model was trained with "
                f"({self.encoder_config.get('model_name_or_path')!r})"
            )
        return vectors

    def hop_samples(self, hop_s: float | None) -> int:
        layout = self.layout
        if hop_s is None:
            return layout.total_samples
        hop = round(hop_s * layout.sample_rate)
        if hop % layout.segment_samples or hop <= 0:
            raise ValueError(
                f"hop_s={hop_s} must be a positive multiple of the segment length "
                f"({layout.segment_s} s), so that windows share one segment grid"
            )
        return hop

    def windows(
        self, path: str | Path, hop_s: float | None = None, batch_size: int = 64
    ) -> AudioWindows:
        """Decode, cut into windows and embed every valid segment (batched across windows)."""
        waveform, sr, duration_s = load_waveform(path)
        layout = self.layout
        starts = window_starts(len(waveform), layout, self.hop_samples(hop_s))
        if not starts:
            raise audio_io.ClipFailure(
                audio_io.TOO_SHORT,
                path,
                f"{duration_s:.3f} s of audio, less than one VGGish example "
                f"({layout.min_coverage * layout.example_samples / layout.sample_rate:.3f} s)",
            )
        examples, n_valid = [], []
        for start in starts:
            piece, n_real = audio_io.fit_length(waveform[start:], layout.total_samples)
            valid = layout.n_valid_segments(n_real)
            clip = audio_io.ClipAudio(waveform=piece, n_real_samples=n_real, n_valid_segments=valid)
            examples.append(clip.example_windows(layout))
            n_valid.append(valid)
        flat = np.concatenate(examples)
        embedded = []
        with torch.inference_mode():
            for i in range(0, len(flat), batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(flat[i : i + batch_size]))
                embedded.append(self.embedder(batch.to(self.device)).cpu().numpy())
        vectors = np.concatenate(embedded)
        out = np.zeros((len(starts), layout.n_segments, vggish.EMBEDDING_SIZE), dtype=vectors.dtype)
        offset = 0
        for w, count in enumerate(n_valid):
            out[w, :count] = vectors[offset : offset + count]
            offset += count
        return AudioWindows(
            path=str(path),
            duration_s=float(duration_s),
            sample_rate=int(sr),
            window_start_s=np.asarray(starts, dtype=np.float64) / layout.sample_rate,
            n_valid=np.asarray(n_valid, dtype=np.int64),
            embeddings=out,
            envelope=envelope(waveform, layout.sample_rate),
        )

    @torch.inference_mode()
    def score(
        self, windows: AudioWindows, label_vectors: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scores ``[W, C]`` and attention ``[W, T, C]`` of every window for every label."""
        segments = torch.from_numpy(np.ascontiguousarray(windows.embeddings)).to(self.device)
        mask = torch.from_numpy(windows.valid_mask).to(self.device)
        labels = torch.from_numpy(np.asarray(label_vectors, dtype=np.float32)).to(self.device)
        out = self.model(segments, mask, labels)
        return out.scores.float().cpu().numpy(), out.attention.float().cpu().numpy()

    def threshold(self, config: ThresholdConfig) -> float | None:
        if config.rule == "tuned":
            if "threshold" not in self.checkpoint:
                raise ValueError(
                    f"checkpoint {self.name!r} has no tuned threshold; use threshold rule "
                    "'fixed' or 'top_k'"
                )
            return float(self.checkpoint["threshold"])
        if config.rule == "fixed":
            return float(config.fixed)
        return None


# --------------------------------------------------------------------------------------------
# Scores + attention -> tags and events
# --------------------------------------------------------------------------------------------


@dataclass
class FilePrediction:
    """Everything predicted for one file (arrays over windows W, segments T, labels C)."""

    windows: AudioWindows
    window_scores: np.ndarray  # [W, C]
    attention: np.ndarray  # [W, T, C]
    window_tags: np.ndarray  # [W, C] bool
    file_scores: np.ndarray  # [C]
    file_tags: np.ndarray  # [C] bool
    active: np.ndarray  # [W, T, C] bool: tagged window and high attention
    events: list[list[tuple[float, float]]]  # per label: (onset_s, offset_s)


def tag_and_localise(
    windows: AudioWindows,
    window_scores: np.ndarray,
    attention: np.ndarray,
    *,
    threshold: ThresholdConfig,
    threshold_value: float | None,
    localisation: LocalisationRule,
    segment_s: float,
    file_score: str = "max",
) -> FilePrediction:
    """Tags per window and per file, active segments and merged events.

    File score: the max (or mean) over windows, so a sound heard in any window tags the file.
    A label's segments can only be active in windows where the label is tagged and the file is
    tagged with it; windows share one grid of segments (hop = a multiple of the segment), so
    events merge across window boundaries.
    """
    rule = threshold.rule
    window_tags = apply_threshold_rule(
        window_scores, rule, threshold=threshold_value, k=threshold.top_k
    )
    file_scores = window_scores.max(axis=0) if file_score == "max" else window_scores.mean(axis=0)
    file_tags = apply_threshold_rule(
        file_scores[None, :], rule, threshold=threshold_value, k=threshold.top_k
    )[0]
    valid = windows.valid_mask
    high = active_segments(attention, valid, localisation)
    active = high & window_tags[:, None, :] & file_tags[None, None, :]

    first_segment = np.rint(windows.window_start_s / segment_s).astype(np.int64)
    n_grid = int((first_segment + windows.n_valid).max()) if len(first_segment) else 0
    grid = np.zeros((n_grid, window_scores.shape[1]), dtype=bool)
    for w, g0 in enumerate(first_segment):
        n = int(windows.n_valid[w])
        grid[g0 : g0 + n] |= active[w, :n]
    events = [
        segments_to_events(
            grid[:, c],
            segment_s,
            end_s=windows.duration_s,
            min_gap_s=localisation.min_gap_s,
            min_duration_s=localisation.min_duration_s,
        )
        for c in range(window_scores.shape[1])
    ]
    return FilePrediction(
        windows=windows,
        window_scores=window_scores,
        attention=attention,
        window_tags=window_tags,
        file_scores=file_scores,
        file_tags=file_tags,
        active=active,
        events=events,
    )


# --------------------------------------------------------------------------------------------
# Many files -> tables
# --------------------------------------------------------------------------------------------

PREDICTION_COLUMNS = [
    "file", "label", "mid", "text", "score", "predicted", "rank", "best_window_start_s",
    "n_windows", "duration_s", "threshold_rule", "threshold", "model",
]  # fmt: skip
EVENT_COLUMNS = ["file", "label", "mid", "text", "onset_s", "offset_s", "score"]
SEGMENT_COLUMNS = [
    "file", "label", "window", "window_start_s", "segment_start_s", "segment_end_s",
    "window_score", "window_predicted", "attention", "active",
]  # fmt: skip


@dataclass
class PredictResult:
    predictions: pd.DataFrame  # one row per (file, label)
    events: pd.DataFrame  # one row per sound event
    segments: pd.DataFrame  # one row per (file, label, valid segment of a window)
    failures: list[FileFailure]
    audio: dict[str, dict[str, Any]]  # per file: envelope and duration, for figures
    seconds: float = 0.0
    audio_seconds: float = 0.0


def predict_files(
    predictor: Predictor,
    files: Sequence[str],
    labels: pd.DataFrame,
    config: PredictConfig,
    *,
    label_vectors: np.ndarray | None = None,
    progress: bool = True,
) -> PredictResult:
    """Tag every file with every label; a file that fails is reported, the others go on."""
    started = time.perf_counter()
    if label_vectors is None:
        label_vectors = predictor.encode_labels(labels)
    threshold_value = predictor.threshold(config.threshold)
    segment_s = predictor.layout.segment_s
    prediction_rows: list[pd.DataFrame] = []
    event_rows: list[dict[str, Any]] = []
    segment_rows: list[pd.DataFrame] = []
    failures: list[FileFailure] = []
    audio: dict[str, dict[str, Any]] = {}
    audio_seconds = 0.0
    label_list = labels["label"].tolist()
    for path in tqdm(files, desc="predict", unit="file", disable=not progress):
        try:
            windows = predictor.windows(path, config.hop_s, config.batch_size)
        except audio_io.ClipFailure as err:
            failures.append(FileFailure(str(path), err.reason, err.detail))
            logger.warning("Skipping %s: %s: %s", path, err.reason, err.detail)
            continue
        except Exception as err:  # an unforeseen failure on one file must not stop the others
            failures.append(
                FileFailure(str(path), UNEXPECTED_ERROR, f"{type(err).__name__}: {err}")
            )
            logger.warning("Skipping %s: %s", path, err)
            continue
        scores, attention = predictor.score(windows, label_vectors)
        result = tag_and_localise(
            windows,
            scores,
            attention,
            threshold=config.threshold,
            threshold_value=threshold_value,
            localisation=config.localisation,
            segment_s=segment_s,
            file_score=config.file_score,
        )
        audio_seconds += windows.duration_s
        audio[str(path)] = {"duration_s": windows.duration_s, **windows.envelope}
        prediction_rows.append(
            _prediction_table(result, labels, config, threshold_value, predictor.name)
        )
        segment_rows.append(_segment_table(result, label_list, segment_s))
        for c, spans in enumerate(result.events):
            for onset, offset in spans:
                overlapping = (windows.window_start_s < offset) & (
                    windows.window_start_s + predictor.layout.n_segments * segment_s > onset
                )
                event_rows.append(
                    {
                        "file": str(path),
                        "label": label_list[c],
                        "mid": labels["mid"].iloc[c],
                        "text": labels["text"].iloc[c],
                        "onset_s": onset,
                        "offset_s": offset,
                        "score": float(scores[overlapping, c].max()),
                    }
                )
    seconds = time.perf_counter() - started
    logger.info(
        "predict: %d files (%.1f s of audio) tagged with %d labels in %.1f s (%.1fx real time), "
        "%d failed",
        len(audio),
        audio_seconds,
        len(labels),
        seconds,
        audio_seconds / seconds if seconds > 0 else 0.0,
        len(failures),
    )
    return PredictResult(
        predictions=_concat(prediction_rows, PREDICTION_COLUMNS),
        events=pd.DataFrame(event_rows, columns=EVENT_COLUMNS),
        segments=_concat(segment_rows, SEGMENT_COLUMNS),
        failures=failures,
        audio=audio,
        seconds=seconds,
        audio_seconds=audio_seconds,
    )


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def _prediction_table(
    result: FilePrediction,
    labels: pd.DataFrame,
    config: PredictConfig,
    threshold_value: float | None,
    model_name: str,
) -> pd.DataFrame:
    scores = result.file_scores
    rank = np.empty(len(scores), dtype=np.int64)
    rank[np.argsort(-scores, kind="stable")] = np.arange(1, len(scores) + 1)
    windows = result.windows
    return pd.DataFrame(
        {
            "file": windows.path,
            "label": labels["label"].to_numpy(),
            "mid": labels["mid"].to_numpy(),
            "text": labels["text"].to_numpy(),
            "score": scores.astype(np.float64),
            "predicted": result.file_tags.astype(bool),
            "rank": rank,
            "best_window_start_s": windows.window_start_s[result.window_scores.argmax(axis=0)],
            "n_windows": len(windows.window_start_s),
            "duration_s": windows.duration_s,
            "threshold_rule": config.threshold.rule,
            "threshold": np.nan if threshold_value is None else float(threshold_value),
            "model": model_name,
        }
    )


def _segment_table(result: FilePrediction, label_list: list[str], segment_s: float) -> pd.DataFrame:
    windows = result.windows
    w_index, t_index = np.nonzero(windows.valid_mask)
    n_rows, n_labels = len(w_index), len(label_list)
    start = windows.window_start_s[w_index] + t_index * segment_s
    return pd.DataFrame(
        {
            "file": windows.path,
            "label": np.tile(np.asarray(label_list, dtype=object), n_rows),
            "window": np.repeat(w_index, n_labels),
            "window_start_s": np.repeat(windows.window_start_s[w_index], n_labels),
            "segment_start_s": np.repeat(start, n_labels),
            "segment_end_s": np.repeat(np.minimum(start + segment_s, windows.duration_s), n_labels),
            "window_score": result.window_scores[w_index].reshape(-1).astype(np.float64),
            "window_predicted": result.window_tags[w_index].reshape(-1),
            "attention": result.attention[w_index, t_index].reshape(-1).astype(np.float64),
            "active": result.active[w_index, t_index].reshape(-1),
        }
    )


# --------------------------------------------------------------------------------------------
# Figure
# --------------------------------------------------------------------------------------------


def prediction_figure(
    file: str,
    audio: Mapping[str, Any],
    predictions: pd.DataFrame,
    events: pd.DataFrame,
    segments: pd.DataFrame,
    max_labels: int = 8,
) -> Any:
    """Waveform with the events of each tag, attention over time, and every label's score.

    ``audio`` holds the envelope (``time_s``, ``low``, ``high``) and ``duration_s``; the tables are
    this file's rows of the predict outputs. Attention is drawn relative to a flat attention
    (1 = the window's uniform share), so windows with different numbers of valid segments compare.
    Built on ``matplotlib.figure.Figure`` (no pyplot state), for the catalog's MatplotlibDataset.
    """
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    ranked = predictions.sort_values(["predicted", "score"], ascending=[False, False])
    shown = ranked["label"].head(max_labels).tolist()
    names = {
        label: label if text == label else f"{text} ({label})"
        for label, text in zip(predictions["label"], predictions["text"], strict=True)
    }
    colours = matplotlib.colormaps["tab10"].colors
    colour = {label: colours[i % len(colours)] for i, label in enumerate(shown)}
    duration = float(audio["duration_s"])

    figure = Figure(
        figsize=(11, 2.2 + 0.35 * len(shown) + 0.25 * len(predictions)), layout="constrained"
    )
    grid = figure.add_gridspec(
        3, 1, height_ratios=[1.2, max(1.0, 0.35 * len(shown)), max(1.0, 0.25 * len(predictions))]
    )
    wave_ax = figure.add_subplot(grid[0])
    attention_ax = figure.add_subplot(grid[1], sharex=wave_ax)
    score_ax = figure.add_subplot(grid[2])

    wave_ax.fill_between(audio["time_s"], audio["low"], audio["high"], color="0.45", linewidth=0)
    handles = []
    for label in shown:
        spans = events[events["label"] == label]
        for onset, offset in zip(spans["onset_s"], spans["offset_s"], strict=True):
            wave_ax.axvspan(onset, offset, color=colour[label], alpha=0.25)
        if len(spans):
            handles.append(Patch(color=colour[label], alpha=0.5, label=names[label]))
    wave_ax.set_xlim(0, duration)
    wave_ax.set_ylabel("amplitude")
    wave_ax.set_title(f"{file}  ({duration:.1f} s)", fontsize="medium")
    if handles:
        wave_ax.legend(handles=handles, fontsize="small", loc="upper right", framealpha=0.8)

    rows = segments[segments["label"].isin(shown)].copy()
    if len(rows):
        n_valid = rows.groupby(["window", "label"])["attention"].transform("size")
        rows["relative"] = rows["attention"] * n_valid
        table = rows.pivot_table(
            index="label", columns="segment_start_s", values="relative", aggfunc="max"
        )
        active = rows.pivot_table(
            index="label", columns="segment_start_s", values="active", aggfunc="max"
        )
        table = table.reindex(shown)
        active = active.reindex(shown).fillna(False).astype(bool)
        starts = table.columns.to_numpy(dtype=float)
        ends = rows.groupby("segment_start_s")["segment_end_s"].max().reindex(starts).to_numpy()
        edges = np.r_[starts, ends[-1]]
        mesh = attention_ax.pcolormesh(
            edges,
            np.arange(len(shown) + 1),
            table.to_numpy(dtype=float),
            cmap="magma",
            vmin=0.0,
            shading="flat",
        )
        figure.colorbar(mesh, ax=attention_ax, label="attention / uniform", pad=0.01)
        ys, xs = np.nonzero(active.to_numpy())
        for y, x in zip(ys, xs, strict=True):
            attention_ax.add_patch(
                matplotlib.patches.Rectangle(
                    (edges[x], y),
                    edges[x + 1] - edges[x],
                    1,
                    fill=False,
                    edgecolor="cyan",
                    linewidth=1.2,
                )
            )
    attention_ax.set_yticks(
        np.arange(len(shown)) + 0.5, [names[s] for s in shown], fontsize="small"
    )
    attention_ax.invert_yaxis()
    attention_ax.set_xlabel("time (s); cyan: active segments of a tag")

    order = predictions.sort_values("score")
    bar_colours = ["tab:green" if p else "0.6" for p in order["predicted"]]
    score_ax.barh([names[label] for label in order["label"]], order["score"], color=bar_colours)
    threshold = order["threshold"].iloc[0] if len(order) else np.nan
    if np.isfinite(threshold):
        score_ax.axvline(
            threshold, color="tab:red", linestyle="--", label=f"threshold {threshold:.3g}"
        )
        score_ax.legend(fontsize="small", loc="lower right")
    score_ax.set_xlabel("file score (green: predicted tag)")
    score_ax.tick_params(axis="y", labelsize="small")
    return figure
