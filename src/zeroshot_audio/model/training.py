"""Fitting and scoring the temporal-attention model over contiguous tensors.

The whole segment table lives in one [N, T, W] tensor (W = 128 for VGGish) on the training device (uint8 when the
table is quantised, so 2M AudioSet clips take 2.6 GB), and a split is a vector of row indices into
it. A batch is one fancy-index of that tensor: no per-sample Dataset, no collate, no host-to-device
copy per step. Validation after every epoch picks the checkpoint (early stopping on a parameterised
metric); mixed precision (bfloat16 autocast) is used on CUDA.

Validation cost. Scoring 250-300k AudioSet validation clips after every epoch cost 3-4x the
training itself (issue 11). Per-epoch validation therefore runs on a fixed, seeded subset of
``FitConfig.validation_clips`` clips (the same clips every epoch and every run with the same
seed: :func:`validation_subset`); the caller scores the full validation split once, after
training, for the final threshold. When the subset is the whole split (every split of the
default data), the best epoch's numbers already are the full-split ones and are reused: no
split is scored twice.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from zeroshot_audio.config import build_strict
from zeroshot_audio.model.attention import TemporalAttentionModel, dequantize
from zeroshot_audio.model.loss import warp_loss
from zeroshot_audio.model.metrics import mean_average_precision, tune_global_threshold

logger = logging.getLogger(__name__)

MONITORS = {"val_map": "max", "val_micro_f1": "max", "val_loss": "min"}
OPTIMIZERS = ("adam", "sgd")


@contextmanager
def cpu_threads(n_threads: int | None) -> Iterator[None]:
    """Run a block with ``n_threads`` torch intra-op CPU threads (None: leave torch's default).

    The model's CPU ops are small (a batch of 64 clips is ~20 M multiply-adds per layer), too
    small to amortise thread synchronisation: on a loaded 2-core machine one thread trained 10x
    faster than two (docs/reproduction.md). GPU work is unaffected.
    """
    if n_threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(int(n_threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass(frozen=True)
class FitConfig:
    """Optimisation settings; the defaults are the project's documented choices."""

    epochs: int = 40
    batch_size: int = 64
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9  # SGD only
    margin: float = 1.0
    monitor: str = "val_map"
    patience: int = 8
    eval_batch_size: int = 4096
    mixed_precision: bool = True  # takes effect on CUDA only
    show_progress: bool = True
    validation_clips: int | None = 20000  # per-epoch validation subset; None = all

    def __post_init__(self) -> None:
        if self.validation_clips is not None and self.validation_clips < 1:
            raise ValueError(f"validation_clips must be >= 1 or null, got {self.validation_clips}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {sorted(MONITORS)}, got {self.monitor!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> FitConfig:
        """Build from ``train.fit`` parameters; an unknown key is an error naming it."""
        return build_strict(cls, values, "train.fit")


@dataclass
class ClipSet:
    """One split: row indices into the shared segment tensor, its targets and its classes."""

    segments: Tensor  # [N_all, T, W], uint8 or float32, shared by every split
    n_valid: Tensor  # [N_all] int64
    rows: Tensor  # [n] int64 rows of this split
    targets: Tensor  # [n, C] bool
    label_embeddings: Tensor  # [C, E] float32, the split's candidate classes

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    @property
    def device(self) -> torch.device:
        return self.segments.device

    def batch(self, positions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(segments [B, T, W], valid mask [B, T], targets [B, C]) for split positions."""
        rows = self.rows[positions]
        n_segments = self.segments.shape[1]
        mask = torch.arange(n_segments, device=self.device)[None, :] < self.n_valid[rows, None]
        return self.segments[rows], mask, self.targets[positions]

    def subset(self, positions: np.ndarray | Tensor) -> ClipSet:
        """The clips at split ``positions`` (in the order given), sharing the segment table."""
        positions = torch.as_tensor(np.asarray(positions), dtype=torch.int64, device=self.device)
        return ClipSet(
            self.segments,
            self.n_valid,
            self.rows[positions],
            self.targets[positions],
            self.label_embeddings,
        )


def validation_subset(n_clips: int, limit: int | None, seed: int) -> np.ndarray | None:
    """Sorted split positions of the per-epoch validation subset (``limit`` of ``n_clips``,
    drawn with ``seed``), or None when the whole split is used (``limit`` None or >= n)."""
    if limit is None or limit >= n_clips:
        return None
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_clips, size=int(limit), replace=False))


def segments_to_device(
    embeddings: np.ndarray, n_valid: np.ndarray, device: torch.device
) -> tuple[Tensor, Tensor]:
    """The [N, T, W] table and its valid counts as device tensors (zero-copy on CPU)."""
    with warnings.catch_warnings():
        # Arrow-backed arrays are read-only; the tensor is never written to.
        warnings.simplefilter("ignore", UserWarning)
        segments = torch.from_numpy(np.ascontiguousarray(embeddings))
    return segments.to(device), torch.as_tensor(np.asarray(n_valid), dtype=torch.int64).to(device)


def make_clip_set(
    segments: Tensor,
    n_valid: Tensor,
    rows: np.ndarray,
    targets: np.ndarray,
    label_embeddings: np.ndarray,
) -> ClipSet:
    """Put one split's indices, targets and label embeddings next to the shared table."""
    device = segments.device
    return ClipSet(
        segments=segments,
        n_valid=n_valid,
        rows=torch.as_tensor(np.asarray(rows), dtype=torch.int64, device=device),
        targets=torch.as_tensor(np.asarray(targets, dtype=bool), device=device),
        label_embeddings=torch.as_tensor(
            np.asarray(label_embeddings, dtype=np.float32), device=device
        ),
    )


@torch.no_grad()
def segment_statistics(clips: ClipSet, chunk: int = 4096) -> tuple[Tensor, Tensor]:
    """Per-dimension mean and std of the valid segments of a split (chunked, float64 sums)."""
    total = torch.zeros(clips.segments.shape[2], dtype=torch.float64, device=clips.device)
    squares = torch.zeros_like(total)
    count = 0
    for start in range(0, len(clips), chunk):
        positions = torch.arange(start, min(start + chunk, len(clips)), device=clips.device)
        x, mask, _ = clips.batch(positions)
        valid = dequantize(x)[mask]  # [n_valid_segments, W]
        total += valid.sum(dim=0, dtype=torch.float64)
        squares += valid.square().sum(dim=0, dtype=torch.float64)
        count += valid.shape[0]
    if count == 0:
        raise ValueError("no valid segment to compute input statistics from")
    mean = total / count
    std = (squares / count - mean * mean).clamp(min=0).sqrt()
    return mean.float(), std.float()


@dataclass
class FitResult:
    """The chosen checkpoint and how training went."""

    state_dict: dict[str, Tensor]
    best_epoch: int
    best_value: float
    monitor: str
    history: list[dict[str, float]] = field(default_factory=list)
    epochs_run: int = 0
    stopped_early: bool = False
    train_seconds: float = 0.0
    clips_per_second: float = 0.0
    validation_seconds: float = 0.0  # per-epoch validation, all epochs
    n_validation_clips_per_epoch: int = 0
    # The best epoch's validation record, when it was computed on the WHOLE validation split
    # (then its val_threshold / val_micro_f1 are the final ones); None after a subset.
    full_validation: dict[str, float] | None = None


def _autocast(device: torch.device, enabled: bool):
    if enabled and device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast(device_type="cuda", dtype=dtype)
    return torch.autocast(device_type=device.type, enabled=False)


def _optimizer(model: torch.nn.Module, config: FitConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=config.learning_rate,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
    return torch.optim.Adam(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )


@torch.no_grad()
def score_clips(
    model: TemporalAttentionModel,
    clips: ClipSet,
    *,
    batch_size: int = 4096,
    gamma: float | None = None,
    with_attention: bool = False,
    attention_for: np.ndarray | None = None,
    mixed_precision: bool = True,
    margin: float | None = None,
) -> dict[str, Any]:
    """Scores [n, C] (and optionally attention [n, T, C], and the mean loss) for a whole split.

    ``attention_for`` (bool [n]) keeps the attention of those clips only ([m, T, C], in split
    order): the attention of a large test split need not be held whole when a few clips use it.
    """
    model.eval()
    n_clips, n_classes = len(clips), clips.label_embeddings.shape[0]
    keep = None
    if attention_for is not None or not with_attention:
        keep = torch.as_tensor(
            np.asarray(attention_for if with_attention else np.zeros(n_clips), dtype=bool),
            device=clips.device,
        )
    # filled batch by batch: no list of batches to concatenate (a second copy of a large split)
    scores = np.empty((n_clips, n_classes), dtype=np.float32)
    n_kept = n_clips if keep is None else int(keep.sum())
    attention = np.empty(
        (n_kept if with_attention else 0, clips.segments.shape[1], n_classes), np.float32
    )
    loss_sum, loss_clips, kept_so_far = 0.0, 0, 0
    for start in range(0, n_clips, batch_size):
        positions = torch.arange(start, min(start + batch_size, n_clips), device=clips.device)
        x, mask, targets = clips.batch(positions)
        rows = None if keep is None else keep[positions]
        with _autocast(clips.device, mixed_precision):
            out = model.score(x, mask, clips.label_embeddings, gamma=gamma, attention_rows=rows)
        batch_scores = out.scores.float()
        if margin is not None:
            n_with_positive = int(targets.any(dim=1).sum())
            loss_sum += float(warp_loss(batch_scores, targets, margin)) * n_with_positive
            loss_clips += n_with_positive
        scores[start : start + len(positions)] = batch_scores.cpu().numpy()
        if with_attention:
            batch_attention = out.attention.float().cpu().numpy()
            attention[kept_so_far : kept_so_far + len(batch_attention)] = batch_attention
            kept_so_far += len(batch_attention)
    result: dict[str, Any] = {"scores": scores}
    if with_attention:
        result["attention"] = attention
    if margin is not None:
        result["loss"] = loss_sum / max(loss_clips, 1)
    return result


def validation_metrics(
    model: TemporalAttentionModel, clips: ClipSet, config: FitConfig
) -> dict[str, float]:
    """The per-epoch validation numbers: loss, mAP and micro-F1 at the tuned global threshold."""
    scored = score_clips(
        model,
        clips,
        batch_size=config.eval_batch_size,
        mixed_precision=config.mixed_precision,
        margin=config.margin,
    )
    y_true = clips.targets.cpu().numpy()
    threshold, micro_f1 = tune_global_threshold(y_true, scored["scores"])
    return {
        "val_loss": float(scored["loss"]),
        "val_map": mean_average_precision(y_true, scored["scores"]),
        "val_micro_f1": micro_f1,
        "val_threshold": threshold,
    }


def fit(
    model: TemporalAttentionModel,
    train: ClipSet,
    validation: ClipSet,
    config: FitConfig,
    *,
    seed: int,
    description: str = "fit",
    validation_seed: int | None = None,
) -> FitResult:
    """Train ``model`` in place and load into it the best checkpoint on ``validation``.

    Both splits must live on the same device as the model will; the model is moved there.
    Per-epoch validation uses :func:`validation_subset` of ``config.validation_clips`` clips
    drawn with ``validation_seed`` (default ``seed``; give the same one to the fits that should
    see the same clips, e.g. the candidates of a gamma grid).
    """
    if len(train) == 0 or len(validation) == 0:
        raise ValueError(
            f"{description}: empty split (train {len(train)}, validation {len(validation)} clips)"
        )
    device = train.device
    model.to(device)
    subset = validation_subset(
        len(validation),
        config.validation_clips,
        seed if validation_seed is None else validation_seed,
    )
    per_epoch = validation if subset is None else validation.subset(subset)
    validation_seconds = 0.0
    if model.config.standardize_segments:
        model.set_segment_statistics(*segment_statistics(train))
    optimizer = _optimizer(model, config)
    scaler = torch.amp.GradScaler(
        "cuda",
        enabled=bool(
            config.mixed_precision and device.type == "cuda" and not torch.cuda.is_bf16_supported()
        ),
    )
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    sign = 1.0 if MONITORS[config.monitor] == "max" else -1.0
    best_value, best_epoch, best_state = -np.inf, 0, None
    history: list[dict[str, float]] = []
    n_train = len(train)
    n_batches = (n_train + config.batch_size - 1) // config.batch_size
    train_seconds, epochs_without_gain, stopped_early = 0.0, 0, False

    bar = tqdm(
        range(1, config.epochs + 1),
        desc=description,
        unit="epoch",
        disable=None if config.show_progress else True,  # None: only on a terminal
        leave=False,
    )
    for epoch in bar:
        model.train()
        started = time.perf_counter()
        order = torch.randperm(n_train, generator=generator, device=device)
        loss_total = torch.zeros((), device=device)
        for b in range(n_batches):
            x, mask, targets = train.batch(
                order[b * config.batch_size : (b + 1) * config.batch_size]
            )
            with _autocast(device, config.mixed_precision):
                scores = model(x, mask, train.label_embeddings).scores
            loss = warp_loss(scores.float(), targets, config.margin)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            loss_total += loss.detach()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        epoch_seconds = time.perf_counter() - started
        train_seconds += epoch_seconds

        record = {"epoch": float(epoch), "train_loss": float(loss_total) / n_batches}
        validation_started = time.perf_counter()
        record.update(validation_metrics(model, per_epoch, config))
        validation_seconds += time.perf_counter() - validation_started
        record["epoch_seconds"] = epoch_seconds
        history.append(record)
        value = sign * record[config.monitor]
        if not np.isfinite(value):
            raise FloatingPointError(
                f"{description}: {config.monitor} is {record[config.monitor]} at epoch {epoch}; "
                "training diverged (lower the learning rate or check the inputs for NaN)"
            )
        if value > best_value:
            best_value, best_epoch, epochs_without_gain = value, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            epochs_without_gain += 1
        bar.set_postfix(
            loss=f"{record['train_loss']:.3f}",
            **{config.monitor: f"{record[config.monitor]:.3f}"},
        )
        if epochs_without_gain >= config.patience:
            stopped_early = True
            break
    bar.close()

    model.load_state_dict(best_state)
    model.eval()
    clips_per_second = n_train * len(history) / max(train_seconds, 1e-9)
    logger.info(
        "%s: %d epochs on %d clips (%s), %.0f clips/s, validation on %d of %d clips took %.1f s; "
        "best %s %.4f at epoch %d%s",
        description,
        len(history),
        n_train,
        device,
        clips_per_second,
        len(per_epoch),
        len(validation),
        validation_seconds,
        config.monitor,
        sign * best_value,
        best_epoch,
        " (early stop)" if stopped_early else "",
    )
    return FitResult(
        state_dict={k: v.cpu() for k, v in best_state.items()},
        best_epoch=best_epoch,
        best_value=float(sign * best_value),
        monitor=config.monitor,
        history=history,
        epochs_run=len(history),
        stopped_early=stopped_early,
        train_seconds=train_seconds,
        clips_per_second=clips_per_second,
        validation_seconds=validation_seconds,
        n_validation_clips_per_epoch=len(per_epoch),
        full_validation=dict(history[best_epoch - 1]) if subset is None else None,
    )
