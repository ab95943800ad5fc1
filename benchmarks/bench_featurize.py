"""Featurize throughput per precision, side by side in one run, with the error of each mode.

Rows (each configuration in its own fresh process, on the same N real 10-s clips: the bundled
default dataset, else mixtures of ../shared sound events; the same seeded random weights, whose
FLOPs equal the official ones):

- per-clip: the reference-equivalent path (the public torchvggish port's way): decode a clip,
  numpy float64 log-mel frontend, one VGGish forward per clip in PyTorch's default NCHW layout
  (on the project's 1-s example layout, so that its bytes compare with fp32's: a second,
  independent fp32 implementation gives the noise floor of the byte comparison).
- fp32 / bf16 / int8: decode the clips in turn and embed examples gathered across clips in batches
  of ``--batch-size`` through ``VGGishEmbedder`` at that precision (torch float64 frontend,
  channels_last). int8 is torch.ao static post-training quantisation (x86/oneDNN, VNNI),
  calibrated on the first 4 clips; measured for the record, not offered by featurize.
- driver: ``featurize.featurize`` itself (background decoding, shards written), fp32, batch 64.

The configurations run interleaved (round 1: A B C ..., round 2: A B C ...) ``--repeats`` times and
the medians are printed, so a machine loaded by other jobs hurts them alike. Also printed: FLOPs
per 0.96-s example (FlopCounterMode and by hand), the machine's measured peak per dtype (matmul
in fp32 and bf16, torch._int_mm in int8: 2048^3, or the largest n^3 under 0.25 s per product where
the CPU emulates the dtype; best of 5, before and after the runs), each mode's
fraction of the peak of its own dtype, and its error against fp32: the fraction of AudioSet uint8
bytes that change (random weights: per-dimension standardisation with fp32's mean/std as the
stand-in for the release's PCA; see audio/precision.py) and the largest change in steps.

    python benchmarks/bench_featurize.py                  # 16 clips, 3 rounds: ~5 min on 2 cores
    python benchmarks/bench_featurize.py --n-clips 32 --repeats 5 --modes per-clip fp32 bf16
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

DEFAULT_AUDIO = REPO / "data" / "01_raw" / "default" / "audio"
SHARED_SOUNDS = REPO / ".." / "shared" / "data" / "sounds"
SR = 16_000


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------


def clip_files(n: int, scratch: Path) -> list[Path]:
    """N real 10-s clips: the default dataset's, else mixtures of the shared sound events."""
    files = sorted(DEFAULT_AUDIO.glob("*.ogg"))
    if len(files) >= n:
        return files[:n]
    import numpy as np
    import soundfile as sf

    events = sorted(SHARED_SOUNDS.glob("*/*.flac"))
    if not events:
        sys.exit(f"no audio: neither {DEFAULT_AUDIO} nor {SHARED_SOUNDS} has files")
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        mix = np.zeros(10 * SR, dtype=np.float32)
        for _ in range(4):
            ev, _ = sf.read(events[rng.integers(len(events))], dtype="float32")
            at = int(rng.integers(0, 9 * SR))
            take = min(len(ev), len(mix) - at)
            mix[at : at + take] += 0.5 * ev[:take]
        path = scratch / f"mix{i:04d}.ogg"
        sf.write(path, mix, SR)
        out.append(path)
    return out


# ---------------------------------------------------------------------------------------------
# Children: one configuration each
# ---------------------------------------------------------------------------------------------


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def numpy_examples(wave):
    """The reference frontend in numpy float64 for one clip: [n, 96, 64], 0.96-s hop."""
    import numpy as np

    from zeroshot_audio.audio.vggish import mel_weight_matrix

    win, hop = 400, 160
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    n_frames = 1 + (len(wave) - win) // hop
    idx = np.arange(win)[None, :] + hop * np.arange(n_frames)[:, None]
    spec = np.abs(np.fft.rfft(wave.astype(np.float64)[idx] * window, 512))
    log_mel = np.log(spec @ mel_weight_matrix() + 0.01)
    n = 1 + (n_frames - 96) // 96
    return np.stack([log_mel[i * 96 : (i + 1) * 96] for i in range(n)])


def decode(path: str):
    import soundfile as sf

    wave, sr = sf.read(path, dtype="float32")
    assert sr == SR and wave.ndim == 1, path
    return wave[: 10 * SR]


def run_per_clip(files: list[str], seed: int) -> dict:
    import numpy as np
    import torch

    from zeroshot_audio.audio import vggish

    def clip_examples(path: str):  # the project's layout (one example per 1-s segment), so
        # the embeddings compare with the other rows'; the same 10 examples' cost as a 0.96-s hop
        return np.concatenate([numpy_examples(w) for w in example_windows(decode(path))])

    net = vggish.random_init_(vggish.VGGish(), seed).eval()
    outputs = []
    with torch.no_grad():
        net(torch.from_numpy(clip_examples(files[0])).float().unsqueeze(1))
        started = time.perf_counter()
        for f in files:
            x = torch.from_numpy(clip_examples(f)).float().unsqueeze(1)
            outputs.append(net(x))
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "embeddings": torch.cat(outputs).numpy()}


def example_windows(wave):
    """The 0.96-s example at the start of every whole second of the clip."""
    import numpy as np

    n = len(wave) // SR
    return np.stack([wave[i * SR : i * SR + 15_600] for i in range(n)])


def int8_network(network, calibration):
    """torch.ao FX static post-training quantisation, x86 backend (oneDNN/fbgemm, VNNI): int8
    convolutions and linears with per-channel weights, calibrated on ``calibration``."""
    import copy
    import warnings

    import torch
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = "x86"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notice
        prepared = prepare_fx(
            copy.deepcopy(network).eval(), get_default_qconfig_mapping("x86"), (calibration[:2],)
        )
        with torch.inference_mode():
            for i in range(0, len(calibration), 32):
                prepared(calibration[i : i + 32])
        return convert_fx(prepared)


def frontend_check(files: list[str], seed: int) -> str:
    """The float64 frontend's share of the fp32 embedder's time, and what a float32 frontend
    would change in the AudioSet bytes (on the first 4 clips)."""
    import numpy as np
    import torch

    from zeroshot_audio.audio import precision, vggish

    embedder = vggish.build_embedder(
        vggish.LoadedWeights(None, None, "random", "unused", f"random:{seed}"), seed
    )
    x = torch.from_numpy(np.concatenate([example_windows(decode(f)) for f in files[:4]]))
    fe = embedder.frontend
    with torch.inference_mode():
        embedder(x[:2])
        t = time.perf_counter()
        log_mel = fe(x)
        t_frontend = time.perf_counter() - t
        t = time.perf_counter()
        reference = embedder(x)
        t_total = time.perf_counter() - t
        frames = x.unfold(-1, 400, 160) * fe.window.float()  # the same formulas in float32
        mel32 = torch.fft.rfft(frames, n=512).abs() @ fe.mel_weights.float()
        log_mel32 = torch.log(mel32 + 0.01).unsqueeze(1)
        net_in = log_mel32.contiguous(memory_format=torch.channels_last)
        diff = precision.byte_difference(reference, embedder.network(net_in))
    return (
        f"frontend (float64): {t_frontend / t_total:.1%} of the fp32 embedder's time; a float32 "
        f"frontend: max log-mel error {(log_mel32 - log_mel).abs().max():.1e}, "
        f"{diff.fraction_different:.3%} of bytes changed, max {diff.max_steps} step(s)"
    )


def run_mode(files: list[str], seed: int, mode: str, batch_size: int) -> dict:
    import numpy as np
    import torch

    from zeroshot_audio.audio import vggish

    weights = vggish.LoadedWeights(None, None, "random", "unused", f"random:{seed}")
    embedder = vggish.build_embedder(weights, seed, precision="fp32" if mode == "int8" else mode)
    if mode == "int8":
        calib = np.concatenate([example_windows(decode(f)) for f in files[:4]])
        with torch.inference_mode():
            x = embedder.frontend(torch.from_numpy(calib))
        embedder.network = int8_network(embedder.network, x)
    with torch.inference_mode():
        embedder(torch.from_numpy(example_windows(decode(files[0]))))  # warm-up
        outputs, batch = [], []
        started = time.perf_counter()
        for f in files:
            batch.append(example_windows(decode(f)))
            if sum(len(b) for b in batch) >= batch_size:
                outputs.append(embedder(torch.from_numpy(np.concatenate(batch))))
                batch = []
        if batch:
            outputs.append(embedder(torch.from_numpy(np.concatenate(batch))))
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "embeddings": torch.cat(outputs).numpy()}


def run_driver(files: list[str], seed: int, batch_size: int) -> dict:
    import dataclasses

    import pandas as pd

    from zeroshot_audio.audio import featurize as fz

    def config(work: str) -> fz.FeaturizeConfig:
        params = {
            "audio_root": str(Path(files[0]).parent),
            "filename_pattern": "{ytid}" + Path(files[0]).suffix,
            "weights": {"allow_random": True, "download": False, "cache_dir": work},
            "batch_size": batch_size,
            "shard_size": len(files),
            "work_dir": work,
        }
        if "precision" in {f.name for f in dataclasses.fields(fz.FeaturizeConfig)}:
            params["precision"] = "fp32"
        return fz.FeaturizeConfig.from_params(params, seed=seed, device="cpu")

    clips = pd.DataFrame({"ytid": [Path(f).stem for f in files], "start_s": 0.0, "end_s": 10.0})
    with tempfile.TemporaryDirectory() as warm, tempfile.TemporaryDirectory() as work:
        fz.featurize(clips.iloc[:1], config(warm), progress=False)  # model built, oneDNN warm
        started = time.perf_counter()
        result = fz.featurize(clips, config(work), progress=False)
        seconds = time.perf_counter() - started
    assert result.report["n_failed"] == 0, result.report["failures"][:3]
    return {"seconds": seconds, "embeddings": None}


def child_main(spec: dict) -> None:
    import logging

    import numpy as np

    logging.disable(logging.WARNING)  # the random-weights warning, once per child
    kind, files, seed = spec["kind"], spec["files"], spec["seed"]
    if kind == "per-clip":
        out = run_per_clip(files, seed)
    elif kind == "driver":
        out = run_driver(files, seed, 64)
    else:
        out = run_mode(files, seed, kind, spec["batch_size"])
    embeddings = out.pop("embeddings")
    if embeddings is not None and spec.get("save"):
        np.save(spec["save"], embeddings)
    print("RESULT " + json.dumps({**out, "peak_rss_mb": _peak_rss_mb()}), flush=True)


def run_child(spec: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(
        f"child {spec['kind']} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    )


# ---------------------------------------------------------------------------------------------
# FLOPs and the machine
# ---------------------------------------------------------------------------------------------


def count_flops() -> tuple[float, float]:
    """GFLOP of one example: (torch FlopCounterMode, by hand from the layer shapes)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from zeroshot_audio.audio import vggish

    with torch.device("meta"):
        net = vggish.VGGish()
        x = torch.empty(1, 1, 96, 64)
    counter = FlopCounterMode(display=False)
    with counter:
        net(x)
    counted = counter.get_total_flops() / 1e9

    by_hand, h, w, c = 0, 96, 64, 1
    for item in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
        if item == "M":
            h, w = h // 2, w // 2
        else:
            by_hand += 2 * h * w * item * c * 9  # multiply-adds of a 3x3 conv
            c = item
    for fan_in, fan_out in ((512 * 6 * 4, 4096), (4096, 4096), (4096, 128)):
        by_hand += 2 * fan_in * fan_out
    return counted, by_hand / 1e9


def peak_gflops(dtype: str, max_n: int = 2048, reps: int = 5, call_budget_s: float = 0.25) -> float:
    """Best-of-``reps`` GEMM throughput (GFLOP/s, or GOP/s for int8) at torch's thread count.

    On the largest n x n product (n doubling from 256 up to ``max_n``) that takes under
    ``call_budget_s``: where this CPU only emulates a dtype (int8 without VNNI, bf16 without
    AVX512-BF16) one 2048^3 product takes most of a minute, and that slow figure is the peak.
    """
    n = 256
    while True:
        mm = _gemm(dtype, n)
        mm()  # warm-up
        started = time.perf_counter()
        mm()
        best = time.perf_counter() - started
        if n >= max_n or best > call_budget_s:
            break
        n *= 2
    for _ in range(reps - 1):
        started = time.perf_counter()
        mm()
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best / 1e9


def _gemm(dtype: str, n: int):
    import torch

    if dtype == "int8":
        a = torch.randint(-128, 128, (n, n), dtype=torch.int8)
        b = torch.randint(-128, 128, (n, n), dtype=torch.int8)
        return lambda: torch._int_mm(a, b)
    kind = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    a, b = torch.randn(n, n, dtype=kind), torch.randn(n, n, dtype=kind)
    return lambda: a @ b


# ---------------------------------------------------------------------------------------------

MODE_DTYPE = {"per-clip": "fp32", "driver": "fp32", "fp32": "fp32", "bf16": "bf16", "int8": "int8"}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n-clips", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=64, help="examples per forward")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    parser.add_argument(
        "--modes", nargs="+", default=["per-clip", "fp32", "bf16", "int8", "driver"]
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(json.loads(args.child))
        return

    import logging
    import statistics

    import numpy as np
    import torch

    from zeroshot_audio.audio import precision

    if "per-clip" not in args.modes or "fp32" not in args.modes:
        sys.exit("--modes must include per-clip (the baseline) and fp32 (the error reference)")
    with tempfile.TemporaryDirectory() as scratch:
        files = [str(f) for f in clip_files(args.n_clips, Path(scratch))]
        source = (
            "default dataset" if str(DEFAULT_AUDIO) in files[0] else "mixtures of ../shared sounds"
        )
        print(
            f"{len(files)} real 10-s clips ({source}); torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
            f"CUDA: {torch.cuda.is_available()}, load average before: {os.getloadavg()[0]:.1f}"
        )
        auto = precision.resolve_precision("auto", "cpu")
        print(f"precision auto on this CPU -> {auto} (bf16 native: {precision.native_bf16('cpu')})")
        counted, by_hand = count_flops()
        print(
            f"VGGish FLOPs per 0.96-s example: {counted:.3f} GFLOP (FlopCounterMode), "
            f"{by_hand:.3f} GFLOP (by hand)"
        )
        logging.disable(logging.WARNING)  # the random-weights warning
        print(frontend_check(files, args.seed), flush=True)
        dtypes = sorted({MODE_DTYPE[m] for m in args.modes})
        peaks = {d: peak_gflops(d) for d in dtypes}

        seconds: dict[str, list[float]] = {m: [] for m in args.modes}
        rss: dict[str, float] = {}
        for r in range(args.repeats):
            for mode in args.modes:
                save = str(Path(scratch) / f"{mode}.npy") if r == 0 else None
                spec = {"kind": mode, "files": files, "seed": args.seed, "save": save}
                out = run_child({**spec, "batch_size": args.batch_size})
                seconds[mode].append(out["seconds"])
                rss[mode] = max(rss.get(mode, 0.0), out["peak_rss_mb"])
                print(f"  round {r + 1}: {mode} {out['seconds']:.1f} s", flush=True)
        peaks = {d: max(p, peak_gflops(d)) for d, p in peaks.items()}
        load_after = os.getloadavg()[0]

        reference = np.load(Path(scratch) / "fp32.npy")
        errors = {}
        for mode in args.modes:
            path = Path(scratch) / f"{mode}.npy"
            if mode != "fp32" and path.exists():
                errors[mode] = precision.byte_difference(reference, np.load(path))

    print(
        "\npeak GEMM (n^3 up to 2048^3, best of 5, before/after): "
        + ", ".join(f"{d} {p:.0f} G{'OP' if d == 'int8' else 'FLOP'}/s" for d, p in peaks.items())
        + f"; load average after: {load_after:.1f}"
    )
    base_rate = len(files) / statistics.median(seconds["per-clip"])
    print(
        f"{'mode':10s} {'clips/s':>8s} {'vs per-clip':>11s} {'GFLOP/s':>8s} {'of peak':>8s} "
        f"{'bytes differ':>12s} {'max step':>8s} {'bound':>6s} {'RSS':>7s}  runs (s)"
    )
    for mode in args.modes:
        rate = len(files) / statistics.median(seconds[mode])
        gflops = rate * 10 * counted
        err = errors.get(mode)
        err_cols = (
            f"{err.fraction_different:12.3%} {err.max_steps:8d} {'ok' if err.within_bound else 'FAIL':>6s}"
            if err
            else f"{'(ref)' if mode == 'fp32' else '-':>12s} {'':8s} {'':6s}"
        )
        print(
            f"{mode:10s} {rate:8.2f} {rate / base_rate:10.2f}x {gflops:8.1f} "
            f"{gflops / peaks[MODE_DTYPE[mode]]:8.0%} {err_cols} {rss[mode]:5.0f}MB  "
            + " ".join(f"{s:.1f}" for s in seconds[mode])
        )
    auto_rate = len(files) / statistics.median(seconds[auto]) if auto in seconds else None
    if auto_rate:
        print(f"\nauto ({auto}): {auto_rate / base_rate:.2f}x the per-clip path")
    print(
        "Medians of interleaved runs. Times cover decoding, frontend and network after one "
        "warm-up clip (model built). Errors: first round's embeddings vs fp32's. The CPU may be "
        "shared with other processes (see the load averages): compare rows of one run."
    )


if __name__ == "__main__":
    main()
