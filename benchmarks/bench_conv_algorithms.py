"""Can a FLOP-saving convolution lift fp32 VGGish past 3x the per-clip path within the error bound?

Context (docs/scaling.md, Precision): on a quiet 2-core AVX-512 CPU the project's fp32 path already
runs VGGish at ~90 % of the machine's fp32 GEMM peak, and bf16/int8 break the byte bound. What is
left is doing fewer multiplications at full precision: Winograd F(m x m, 3 x 3) (Lavin & Gray
2016), which cuDNN uses on GPUs but PyTorch's CPU path (oneDNN, direct convolution) does not offer.

For each 3x3 convolution of VGGish (batch of ``--batch`` 0.96-s examples, channels_last fp32) this
prints the time of PyTorch's own convolution and of Winograd F(2x2,3x3) and F(4x4,3x3) written
with PyTorch ops (input transform as one GEMM on 4x4 / 6x6 tiles, 16 / 36 batched GEMMs, output
transform), with each one's mean relative error against a float64 convolution, and the sum over
the layers when each layer takes its fastest algorithm. A measurement, not a kernel: the
transforms here are separate memory-bound passes that a fused C++ kernel would hide.

    python benchmarks/bench_conv_algorithms.py [--batch 64] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

# (in channels, out channels, height, width) of VGGish's 3x3 convolutions after the first
# (1 -> 64 at 96 x 64, 0.4 % of the FLOPs): features.3, .6, .8, .11, .13.
LAYERS = [(64, 128, 48, 32), (128, 256, 24, 16), (256, 256, 24, 16), (256, 512, 12, 8),
          (512, 512, 12, 8)]  # fmt: skip

# Lavin & Gray's transforms: output tile m, input tile m + 2.
WINOGRAD = {
    2: (
        [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
        [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]],
        [[1, 1, 1, 0], [0, 1, -1, -1]],
    ),
    4: (
        [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
         [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
        [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
         [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
        [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
    ),
}  # fmt: skip


class WinogradConv:
    """3x3, stride 1, padding 1 convolution of an NHWC tensor by Winograd F(m x m, 3 x 3)."""

    def __init__(self, weight: torch.Tensor, m: int):
        bt, g, at = (torch.tensor(x, dtype=torch.float64) for x in WINOGRAD[m])
        self.m, self.a = m, m + 2
        u = torch.einsum("ik,ockl,jl->ijco", g, weight.double(), g)  # G w G^T: [a, a, C, K]
        self.u = u.reshape(self.a * self.a, weight.shape[1], weight.shape[0]).float().contiguous()
        self.input_transform = torch.kron(bt, bt).float()  # vec(B^T d B) = (B^T x B^T) vec(d)
        self.output_transform = torch.kron(at, at).float()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n, h, w, c = x.shape
        m, a = self.m, self.a
        tiles_h, tiles_w = -(-h // m), -(-w // m)
        padded = F.pad(x, (0, 0, 1, tiles_w * m + 1 - w, 1, tiles_h * m + 1 - h))
        tiles = padded.unfold(1, a, m).unfold(2, a, m)  # [n, th, tw, c, a, a]
        p = n * tiles_h * tiles_w
        v = (self.input_transform @ tiles.reshape(p * c, a * a).T).view(a * a, p, c)
        product = torch.bmm(v, self.u)  # [a*a, p, k]
        k = product.shape[-1]
        out = (self.output_transform @ product.view(a * a, p * k)).view(
            m, m, n, tiles_h, tiles_w, k
        )
        out = out.permute(2, 3, 0, 4, 1, 5).reshape(n, tiles_h * m, tiles_w * m, k)
        return out[:, :h, :w]


def best_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}")
    print(f"{'layer':<22}{'direct':>16}{'F(2x2,3x3)':>22}{'F(4x4,3x3)':>22}")
    totals = {"direct": 0.0, "F2": 0.0, "F4": 0.0, "best": 0.0}
    for c_in, c_out, h, w in LAYERS:
        x = torch.randn(args.batch, c_in, h, w).relu().contiguous(memory_format=torch.channels_last)
        weight = torch.randn(c_out, c_in, 3, 3) * (2.0 / (9 * c_in)) ** 0.5
        weight_cl = weight.contiguous(memory_format=torch.channels_last)
        nhwc = x.permute(0, 2, 3, 1)  # a view: channels_last memory is NHWC
        exact = F.conv2d(x.double(), weight.double(), padding=1).permute(0, 2, 3, 1)
        candidates = {"direct": lambda: F.conv2d(x, weight_cl, padding=1).permute(0, 2, 3, 1)}
        for m in (2, 4):
            candidates[f"F{m}"] = lambda conv=WinogradConv(weight, m): conv(nhwc)
        cells, times = [], {}
        for name, fn in candidates.items():
            times[name] = best_time(fn, args.repeats)
            error = float((fn().double() - exact).abs().mean() / exact.abs().mean())
            totals[name] += times[name]
            cells.append(f"{1e3 * times[name]:8.1f} ms {error:.1e}")
        totals["best"] += min(times.values())
        print(f"{c_in:>4} -> {c_out:<4} {h:>3}x{w:<3}  " + "  ".join(f"{c:>20}" for c in cells))
    print(
        f"sum over layers: direct {1e3 * totals['direct']:.0f} ms, F(2x2) {1e3 * totals['F2']:.0f} ms, "
        f"F(4x4) {1e3 * totals['F4']:.0f} ms, fastest per layer {1e3 * totals['best']:.0f} ms "
        f"({totals['direct'] / totals['best']:.2f}x the direct convolutions)"
    )


if __name__ == "__main__":
    main()
