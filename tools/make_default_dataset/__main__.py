"""Command line of the default-dataset generator: ``python -m tools.make_default_dataset --help``."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .constants import (
    DEFAULT_CLASS_BALANCE,
    DEFAULT_COMPRESSION_LEVEL,
    DEFAULT_EVENTS_PER_CLIP,
    DEFAULT_GAIN_DB_RANGE,
    DEFAULT_N_CLIPS,
    DEFAULT_PEAK_LIMIT_DBFS,
    DEFAULT_SEED,
)
from .dataset import write_dataset

logger = logging.getLogger("tools.make_default_dataset")


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.make_default_dataset",
        description="Generate the bundled default dataset (AudioSet format) from the sounds pack.",
    )
    parser.add_argument("--sounds", type=Path, required=True, help="sounds pack folder")
    parser.add_argument("--audioset", type=Path, required=True, help="AudioSet metadata folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--n-clips", type=int, default=DEFAULT_N_CLIPS)
    parser.add_argument(
        "--events-per-clip",
        type=float,
        nargs="+",
        default=list(DEFAULT_EVENTS_PER_CLIP),
        help="probabilities of 1, 2, 3, ... events per clip",
    )
    parser.add_argument("--gain-db", type=float, nargs=2, default=list(DEFAULT_GAIN_DB_RANGE))
    parser.add_argument("--class-balance", type=float, default=DEFAULT_CLASS_BALANCE)
    parser.add_argument("--peak-limit-dbfs", type=float, default=DEFAULT_PEAK_LIMIT_DBFS)
    parser.add_argument("--compression-level", type=float, default=DEFAULT_COMPRESSION_LEVEL)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    argv_list = list(sys.argv[1:] if argv is None else argv)
    command = "python -m tools.make_default_dataset " + shlex.join(argv_list)
    started = time.perf_counter()
    summary = write_dataset(
        args.sounds,
        args.audioset,
        args.out,
        seed=args.seed,
        n_clips=args.n_clips,
        events_per_clip=args.events_per_clip,
        gain_db_range=(args.gain_db[0], args.gain_db[1]),
        class_balance=args.class_balance,
        peak_limit_dbfs=args.peak_limit_dbfs,
        compression_level=args.compression_level,
        command=command,
    )
    total_bytes = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    logger.info(
        "wrote %s: %d clips, %d classes, %.2f MB in all; codec SNR median %.1f dB (min %.1f); "
        "%.1f s",
        args.out,
        summary.n_clips,
        summary.n_classes,
        total_bytes / 1e6,
        summary.snr_db_median,
        summary.snr_db_min,
        time.perf_counter() - started,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
