"""Batched, sharded, resumable VGGish featurisation of a clip list.

Resumability. Kedro writes a versioned dataset only when the node returns, so an interrupted
run would lose everything. Work therefore goes to a *work folder* keyed by a fingerprint of
everything that determines the embeddings (layout, post-processing, weights file hash or
random seed, audio lookup, format version): ``<work_dir>/<fingerprint>/``. The clip list is cut
into shards of ``shard_size`` clips; each shard's file name carries a hash of its clips and of
their audio files' size and mtime. A shard is written atomically (temp file, fsync, rename) as
``shard-<i>-<key>.parquet`` plus its failure list ``.json``; a rerun finds the finished shards
and computes only the missing ones, then the node hands the shard list to the versioned
dataset, which links them into the new version. Deleting the work folder is always safe.

Parallelism. Shards are independent tasks submitted to a ``concurrent.futures.Executor``: in
this process (one worker: the model is built once and batches fill the cores), a spawn-based
process pool (several workers, torch threads split between them), or a Dask cluster through
``distributed.Client.get_executor()`` when a scheduler address is configured (the work folder
must then be on storage every worker sees: a shared file system or any fsspec URL such as
``s3://``, and so must ``audio_root``). Inside a shard, clips are decoded by a background
thread while the network runs on batches of examples gathered across clips.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import (
    Executor,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    as_completed,
)
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from zeroshot_audio import storage
from zeroshot_audio.audio import io as audio_io
from zeroshot_audio.audio import precision, vggish
from zeroshot_audio.audio.embed import vggish_spec
from zeroshot_audio.audio.shard_worker import (
    ClipSpec,
    EmbeddedClips,
    ShardResult,
    ShardTask,
    embed_clips,
    failure_record,
    run_shard,
)
from zeroshot_audio.config import build_strict
from zeroshot_audio.contracts import segment_table
from zeroshot_audio.contracts.segment_table import ShardedTable
from zeroshot_audio.device import resolve_device

__all__ = [
    "ClipSpec",
    "EmbeddedClips",
    "ExecutorSpec",
    "FeaturizeConfig",
    "FeaturizeResult",
    "embed_clips",
    "featurize",
    "run_shard",
]

logger = logging.getLogger(__name__)

# Bump when a code change alters the embeddings of the same inputs (invalidates work folders).
FORMAT_VERSION = 2
SHARD_ERROR = "shard_error"


@dataclass(frozen=True)
class ExecutorSpec:
    """``scheduler_address`` set: Dask; else ``max_workers`` > 1: process pool; else in-process."""

    max_workers: int = 1
    scheduler_address: str | None = None

    @property
    def kind(self) -> str:
        if self.scheduler_address:
            return "dask"
        return "process" if self.max_workers > 1 else "inline"


@dataclass(frozen=True)
class FeaturizeConfig:
    """Everything the featurize stage needs (the ``featurize`` parameters, typed)."""

    audio_root: str
    filename_pattern: str = "{ytid}.ogg"
    file_is_full_recording: bool = False
    n_segments: int = 10
    segment_s: float = 1.0
    min_segment_coverage: float = 1.0
    min_sound_s: float = 0.1
    postprocess: str = "none"
    final_relu: bool = False
    weights: vggish.WeightsSpec = field(default_factory=vggish.WeightsSpec)
    batch_size: int = 64
    shard_size: int = 128
    max_clips: int | None = None
    torch_threads: int | None = None
    decode_workers: int = 0
    channels_last: bool = True
    precision: str = "auto"
    executor: ExecutorSpec = field(default_factory=ExecutorSpec)
    work_dir: str = "data/04_feature/featurize_work"
    seed: int = 0
    device: str = "auto"

    @classmethod
    def from_params(
        cls, params: dict[str, Any], seed: int = 0, device: str = "auto"
    ) -> FeaturizeConfig:
        """Build from the ``featurize`` parameters, rejecting unknown keys (typos)."""
        params = dict(params)
        run_level = {"seed", "device"} & set(params)
        if run_level:
            raise ValueError(
                f"unknown featurize parameter(s) {sorted(run_level)}: the seed and device are the "
                "run's (params:seed, params:device)"
            )
        params["weights"] = build_strict(
            vggish.WeightsSpec, params.get("weights"), "featurize.weights"
        )
        params["executor"] = build_strict(
            ExecutorSpec, params.get("executor"), "featurize.executor"
        )
        config = build_strict(cls, {**params, "seed": seed, "device": device}, "featurize")
        config.layout  # validates the segment layout  # noqa: B018
        if config.postprocess not in vggish.POSTPROCESS_MODES:
            raise ValueError(
                f"featurize.postprocess must be one of {vggish.POSTPROCESS_MODES}, got {config.postprocess!r}"
            )
        precision.check_precision(config.precision)
        if config.decode_workers < 0:
            raise ValueError(f"featurize.decode_workers must be >= 0, got {config.decode_workers}")
        if config.decode_workers and config.executor.kind != "inline":
            raise ValueError(
                "featurize.decode_workers > 0 is for one process driving the network (a GPU); "
                f"with executor {config.executor.kind!r} every worker decodes its own clips: set "
                "decode_workers: 0 or use a single worker"
            )
        return config

    @property
    def layout(self) -> audio_io.SegmentLayout:
        return audio_io.SegmentLayout(
            n_segments=self.n_segments,
            segment_s=self.segment_s,
            example_samples=vggish.EXAMPLE_SAMPLES,
            min_coverage=self.min_segment_coverage,
            min_sound_s=self.min_sound_s,
        )

    @property
    def output_dtype(self) -> str:
        return "uint8" if self.postprocess == "quantized" else "float32"


@dataclass
class FeaturizeResult:
    """What :func:`featurize` produced: the shards (in clip order) and the report."""

    table: ShardedTable
    report: dict[str, Any]


# --------------------------------------------------------------------------------------------
# Driver side
# --------------------------------------------------------------------------------------------


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def config_fingerprint(config: FeaturizeConfig, weights_fingerprint: str) -> str:
    """Hash of what determines the embeddings; execution knobs (batch size, workers, threads,
    device, shard size) are left out, so changing them reuses finished shards."""
    semantic = {
        "format_version": FORMAT_VERSION,
        "audio_root": storage.canonical(config.audio_root),
        "filename_pattern": config.filename_pattern,
        "file_is_full_recording": config.file_is_full_recording,
        "layout": asdict(config.layout),
        "postprocess": config.postprocess,
        "final_relu": config.final_relu,
        "weights": weights_fingerprint,
        # fp32 is left out so that work folders made before the precision option stay valid.
        **({"precision": config.precision} if config.precision != "fp32" else {}),
    }
    return _hash(semantic)


def prepare_clips(clips: pd.DataFrame, config: FeaturizeConfig) -> tuple[list[ClipSpec], int]:
    """Clip list in input order, duplicates of (ytid, start_s) dropped; returns (clips, n_dup)."""
    missing = {"ytid", "start_s", "end_s"} - set(clips.columns)
    if missing:
        raise ValueError(f"clip table lacks column(s) {sorted(missing)}")
    frame = clips[["ytid", "start_s", "end_s"]]
    n_before = len(frame)
    frame = frame.drop_duplicates(subset=["ytid", "start_s"], keep="first")
    n_unique = len(frame)
    if config.max_clips is not None:
        frame = frame.iloc[: config.max_clips]
    specs = [
        ClipSpec(
            ytid=str(ytid),
            start_s=float(start),
            end_s=float(end),
            path=audio_io.format_audio_path(
                config.audio_root, config.filename_pattern, str(ytid), float(start), float(end)
            ),
        )
        for ytid, start, end in frame.itertuples(index=False, name=None)
    ]
    return specs, n_before - n_unique


@contextmanager
def open_executor(spec: ExecutorSpec) -> Iterator[Executor]:
    """The executor the parameters ask for (see :class:`ExecutorSpec`)."""
    if spec.kind == "dask":
        from distributed import Client

        with Client(spec.scheduler_address) as client:
            yield client.get_executor(pure=False)
    elif spec.kind == "process":
        # spawn, not fork: a forked child inherits torch's OpenMP pool in an undefined state.
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=spec.max_workers, mp_context=ctx) as pool:
            yield pool
    else:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="featurize") as pool:
            yield pool


def featurize(
    clips: pd.DataFrame,
    config: FeaturizeConfig,
    progress: bool = True,
) -> FeaturizeResult:
    """Featurise every clip of ``clips`` (columns ytid, start_s, end_s), resuming finished
    shards of earlier runs with the same fingerprint."""
    started = time.perf_counter()
    specs, n_duplicates = prepare_clips(clips, config)
    weights = vggish.resolve_weights(config.weights, config.seed, config.postprocess != "none")
    # Resolved once here, so every worker (and the fingerprint and spec) sees the concrete mode.
    config = replace(
        config,
        precision=precision.resolve_precision(config.precision, resolve_device(config.device)),
    )
    fingerprint = config_fingerprint(config, weights.fingerprint)
    spec = vggish_spec(
        config.layout, config.postprocess, config.final_relu, weights, precision=config.precision
    )
    work = storage.join(config.work_dir, fingerprint[:16])
    storage.makedirs(work)
    n_stale = storage.remove_stale_temp_files(work)
    storage.write_json(
        {"fingerprint": fingerprint, "config": asdict(config), "weights": weights.fingerprint},
        storage.join(work, "config.json"),
    )

    kind = config.executor.kind
    torch_threads = config.torch_threads
    if kind == "process" and not torch_threads:
        torch_threads = max(1, (os.cpu_count() or 1) // config.executor.max_workers)
    task_config = replace(config, torch_threads=torch_threads)

    tasks: list[ShardTask] = []
    for index, start in enumerate(range(0, len(specs), config.shard_size)):
        chunk = tuple(specs[start : start + config.shard_size])
        key = _hash([fingerprint, [(asdict(c), storage.stamp(c.path)) for c in chunk]])[:16]
        stem = storage.join(work, f"shard-{index:06d}-{key}")
        tasks.append(
            ShardTask(
                index=index,
                clips=chunk,
                parquet_path=stem + ".parquet",
                failures_path=stem + ".failures.json",
                # In-process workers share the resolved weights; remote ones resolve their own
                # (shipping 290 MB of tensors per task would dwarf the work).
                weights=weights if kind == "inline" else None,
                config=task_config,
                embedder_spec=spec,
            )
        )
    done = [t for t in tasks if storage.exists(t.parquet_path) and storage.exists(t.failures_path)]
    todo = [t for t in tasks if t not in done]
    logger.info(
        "featurize: %d clips in %d shards (%d already done in %s), executor=%s, device=%s, weights=%s",
        len(specs),
        len(tasks),
        len(done),
        work,
        kind,
        config.device,
        weights.source,
    )

    shard_errors: dict[int, str] = {}
    results: list[ShardResult] = []
    compute_started = time.perf_counter()
    if todo:
        with open_executor(config.executor) as executor:
            futures = {executor.submit(run_shard, t, fingerprint): t for t in todo}
            bar = tqdm(
                total=sum(len(t.clips) for t in todo),
                desc="featurize",
                unit="clip",
                disable=not progress,
            )
            for future in as_completed(futures):
                task = futures[future]
                try:
                    results.append(future.result())
                except Exception as err:  # a crashed worker loses its shard, not the run
                    shard_errors[task.index] = f"{type(err).__name__}: {err}"
                    logger.error("featurize: shard %d failed: %s", task.index, err)
                bar.update(len(task.clips))
            bar.close()
    compute_s = time.perf_counter() - compute_started

    failures: list[dict[str, Any]] = []
    paths: list[str] = []
    for task in tasks:
        if task.index in shard_errors:
            failures += [
                failure_record(c, SHARD_ERROR, shard_errors[task.index]) for c in task.clips
            ]
            continue
        paths.append(task.parquet_path)
        failures += json.loads(storage.read_text(task.failures_path))

    n_computed = sum(r.n_ok for r in results)
    n_examples = sum(r.n_examples for r in results)
    reasons = Counter(f["reason"] for f in failures)
    n_ok = len(specs) - len(failures)
    elapsed = time.perf_counter() - started
    logger.info(
        "featurize: %d clips embedded (%d computed now, %d examples, %.2f clips/s, %.1f examples/s), "
        "%d failed %s, %d shards reused",
        n_ok,
        n_computed,
        n_examples,
        n_computed / compute_s if compute_s > 0 else 0.0,
        n_examples / compute_s if compute_s > 0 else 0.0,
        len(failures),
        dict(reasons),
        len(done),
    )
    if specs and n_ok == 0:
        examples = "; ".join(f"{f['path']}: {f['reason']}: {f['detail']}" for f in failures[:3])
        raise RuntimeError(
            f"featurize: none of the {len(specs)} clips could be featurised "
            f"({dict(reasons)}). Check audio_root/filename_pattern. First failures: {examples}"
        )

    n_padded = sum(r.n_padded for r in results)
    schema = segment_table.segment_schema(config.n_segments, config.output_dtype, embedder=spec)
    report = {
        "n_clips_input": int(len(clips)),
        "n_duplicates_dropped": int(n_duplicates),
        "n_clips": len(specs),
        "n_featurized": n_ok,
        "n_failed": len(failures),
        "failures_by_reason": dict(sorted(reasons.items())),
        "failures": failures,
        "n_shards": len(tasks),
        "n_shards_reused": len(done),
        "n_clips_computed": n_computed,
        "n_examples_computed": n_examples,
        # Clips shorter than one example (>= min_sound_s), zero-padded to one segment; counted
        # among the clips computed in this run (a reused shard is not re-read).
        "n_short_clips_padded": n_padded,
        "n_stale_temp_files_removed": n_stale,
        "compute_seconds": round(compute_s, 3),
        "clips_per_second": round(n_computed / compute_s, 3)
        if compute_s > 0 and n_computed
        else None,
        "total_seconds": round(elapsed, 3),
        "work_folder": work,
        "fingerprint": fingerprint,
        "vggish_weights": weights.source,
        "vggish_pca": weights.pca_source,
        "weights_fingerprint": weights.fingerprint,
        "executor": kind,
        "device": str(resolve_device(config.device)),
        "embedding_dtype": config.output_dtype,
        "n_segments": config.n_segments,
        "segment_s": config.segment_s,
        "postprocess": config.postprocess,
        "final_relu": config.final_relu,
        "precision": config.precision,
        "embedder": spec.to_dict(),
    }
    return FeaturizeResult(table=ShardedTable(paths=paths, schema=schema), report=report)
