"""The worker side of featurize: one shard of clips -> one atomic Parquet file + its failures.

A :class:`ShardTask` is self-contained and picklable, so the same :func:`run_shard` runs in this
process, in a spawn-based process pool or on a Dask worker. Inside a shard, clips are decoded
ahead (:func:`prefetch`: a background thread, or ``decode_workers`` processes to feed a GPU) while
the network runs on batches gathered across clips (``audio.embed.SegmentBatcher``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import multiprocessing
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch

from zeroshot_audio import storage
from zeroshot_audio.audio import io as audio_io
from zeroshot_audio.audio import precision as precision_modes
from zeroshot_audio.audio import vggish
from zeroshot_audio.audio.embed import SegmentBatcher
from zeroshot_audio.contracts import segment_table
from zeroshot_audio.contracts.segment_table import EmbedderSpec, atomic_write_parquet
from zeroshot_audio.device import resolve_device

if TYPE_CHECKING:
    from zeroshot_audio.audio.featurize import FeaturizeConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipSpec:
    ytid: str
    start_s: float
    end_s: float
    path: str


@dataclass(frozen=True)
class ShardTask:
    """One unit of work: picklable, self-contained (a worker needs nothing else)."""

    index: int
    clips: tuple[ClipSpec, ...]
    parquet_path: str
    failures_path: str
    config: FeaturizeConfig
    weights: vggish.LoadedWeights | None  # None: the worker resolves them (Dask / process pool)
    embedder_spec: EmbedderSpec | None = None  # written into the shard's schema metadata


@dataclass
class ShardResult:
    index: int
    n_ok: int
    n_failed: int
    n_examples: int
    n_padded: int
    seconds: float


# --------------------------------------------------------------------------------------------
# Worker side
# --------------------------------------------------------------------------------------------

_EMBEDDER_CACHE: dict[str, vggish.VGGishEmbedder] = {}


def _embedder_for(task: ShardTask, fingerprint: str) -> vggish.VGGishEmbedder:
    """One embedder per worker process (and per configuration), built on first use."""
    cfg = task.config
    key = (
        f"{fingerprint}|{cfg.final_relu}|{cfg.postprocess}|{cfg.device}|{cfg.channels_last}"
        f"|{cfg.precision}"
    )
    if key not in _EMBEDDER_CACHE:
        weights = task.weights or vggish.resolve_weights(
            cfg.weights, cfg.seed, cfg.postprocess != "none"
        )
        _EMBEDDER_CACHE.clear()  # keep one model (~290 MB) per worker
        _EMBEDDER_CACHE[key] = vggish.build_embedder(
            weights,
            seed=cfg.seed,
            final_relu=cfg.final_relu,
            postprocess=cfg.postprocess,
            device=resolve_device(cfg.device),
            channels_last=cfg.channels_last,
            # featurize() resolves ``auto`` once in the driver; a shard run on its own resolves it
            # here (same rule, same answer on the same device).
            precision=cfg.precision
            if cfg.precision in precision_modes.COMPUTE_DTYPES
            else precision_modes.resolve_precision(cfg.precision, resolve_device(cfg.device)),
        )
    return _EMBEDDER_CACHE[key]


T = TypeVar("T")
R = TypeVar("R")


_DECODE_POOLS: dict[int, ProcessPoolExecutor] = {}


def _decode_pool(workers: int) -> ProcessPoolExecutor:
    """One pool of ``workers`` decode processes per process, kept across shards (a spawned
    process imports torch and torchaudio once, not per shard); a broken pool is replaced."""
    pool = _DECODE_POOLS.get(workers)
    if pool is None or getattr(pool, "_broken", False):
        ctx = multiprocessing.get_context("spawn")
        pool = _DECODE_POOLS[workers] = ProcessPoolExecutor(workers, mp_context=ctx)
    return pool


def prefetch(
    fn: Callable[[T], R], items: Iterable[T], depth: int, workers: int = 0
) -> Iterator[tuple[T, Future]]:
    """Run ``fn`` over ``items`` ahead of the caller, at most ``depth`` items ahead, so that audio
    decoding overlaps the network's forward passes: in one background thread (``workers`` = 0;
    libsndfile releases the GIL), or in ``workers`` processes (``fn`` must then be picklable),
    which a GPU needs to be fed faster than one core decodes."""
    if workers:
        pool, depth = _decode_pool(workers), max(depth, 4 * workers)
        context: Any = contextlib.nullcontext(pool)
    else:
        context = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode")
    with context as executor:
        pending: deque[tuple[T, Future]] = deque()
        for item in items:
            pending.append((item, executor.submit(fn, item)))
            if len(pending) > depth:
                yield pending.popleft()
        while pending:
            yield pending.popleft()


def result_of(future: Future, fn: Callable[[T], R], item: T) -> R:
    """``future``'s result; if a decode process died (a decoder crashing on a hostile file takes
    its process, and the pool with it, down), ``item`` is decoded again alone in a fresh process,
    so that only the file that kills its decoder fails (as ``decode_error``), not its neighbours."""
    try:
        return future.result()
    except BrokenProcessPool:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(1, mp_context=ctx) as alone:
            try:
                return alone.submit(fn, item).result()
            except BrokenProcessPool:
                path = getattr(item, "path", str(item))
                raise audio_io.ClipFailure(
                    audio_io.DECODE_ERROR, path, "the decoder crashed its process"
                ) from None


def load_clip(clip: ClipSpec, layout: audio_io.SegmentLayout, full_recording: bool) -> Any:
    """Module level, so that a decode process can be handed it."""
    return audio_io.load_clip(clip.path, clip.start_s, clip.end_s, layout, full_recording)


@dataclass
class EmbeddedClips:
    """What :func:`embed_clips` made: the featurised clips, their ``n_valid_segments``,
    ``[n, T, 128]`` embeddings (zeros past the valid segments), one failure record per clip that
    could not be used, and the clips shorter than one example that were zero-padded."""

    clips: list[ClipSpec]
    n_valid: np.ndarray
    embeddings: np.ndarray
    failures: list[dict[str, Any]]
    padded: list[ClipSpec]


def embed_clips(
    clips: Iterable[ClipSpec],
    embedder: vggish.VGGishEmbedder,
    config: FeaturizeConfig,
) -> EmbeddedClips:
    """Embed clips in batches of ``config.batch_size`` examples gathered across clips."""
    layout = config.layout
    batcher = SegmentBatcher(embedder, layout.n_segments, config.batch_size)
    ok: list[ClipSpec] = []
    n_valid: list[int] = []
    failures: list[dict[str, Any]] = []
    padded: list[ClipSpec] = []

    load = functools.partial(load_clip, layout=layout, full_recording=config.file_is_full_recording)
    for clip, future in prefetch(load, clips, depth=8, workers=config.decode_workers):
        try:
            audio = result_of(future, load, clip)
        except audio_io.ClipFailure as err:
            failures.append(failure_record(clip, err.reason, err.detail))
            logger.warning("Skipping clip %s@%s: %s", clip.ytid, clip.start_s, err)
            continue
        except Exception as err:  # an unforeseen decoder crash must not kill the shard
            failures.append(
                failure_record(clip, audio_io.DECODE_ERROR, f"{type(err).__name__}: {err}")
            )
            logger.warning("Skipping clip %s@%s: %s", clip.ytid, clip.start_s, err)
            continue
        if layout.is_padded_short_sound(audio.n_real_samples):
            padded.append(clip)
            logger.info(
                "Clip %s@%s holds %.3f s of audio: one zero-padded segment",
                clip.ytid,
                clip.start_s,
                audio.n_real_samples / layout.sample_rate,
            )
        ok.append(clip)
        n_valid.append(audio.n_valid_segments)
        batcher.add(audio.example_windows(layout))
    return EmbeddedClips(
        ok, np.asarray(n_valid, dtype=np.int16), batcher.finish(), failures, padded
    )


def failure_record(clip: ClipSpec, reason: str, detail: str) -> dict[str, Any]:
    return {
        "ytid": clip.ytid,
        "start_s": clip.start_s,
        "path": clip.path,
        "reason": reason,
        "detail": detail,
    }


class _TorchThreads:
    """Torch's thread count is process-wide, and a Dask worker may run several shards at once in
    threads: the count found before the first shard is restored only when the last one ends (a
    save/restore per shard can leave the process stuck at another shard's count)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._before = 0

    @contextmanager
    def use(self, n: int | None) -> Iterator[None]:
        if not n:
            yield
            return
        with self._lock:
            if self._users == 0:
                self._before = torch.get_num_threads()
            self._users += 1
            torch.set_num_threads(n)
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    torch.set_num_threads(self._before)


_torch_threads = _TorchThreads().use


def run_shard(task: ShardTask, fingerprint: str) -> ShardResult:
    """Embed one shard and write it atomically (failures first, the Parquet file last: the
    Parquet file's presence is what marks the shard finished)."""
    started = time.perf_counter()
    cfg = task.config
    with _torch_threads(cfg.torch_threads):
        embedder = _embedder_for(task, fingerprint)
        done = embed_clips(task.clips, embedder, cfg)
    table = segment_table.from_arrays(
        [c.ytid for c in done.clips],
        [c.start_s for c in done.clips],
        done.n_valid,
        done.embeddings,
        embedder=task.embedder_spec,
    )
    storage.write_json(done.failures, task.failures_path)
    atomic_write_parquet(table, task.parquet_path)
    return ShardResult(
        index=task.index,
        n_ok=len(done.clips),
        n_failed=len(done.failures),
        n_examples=int(done.n_valid.sum()),
        n_padded=len(done.padded),
        seconds=time.perf_counter() - started,
    )
