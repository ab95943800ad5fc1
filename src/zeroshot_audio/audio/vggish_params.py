"""Every VGGish constant, once (as torchvggish's ``vggish_params.py``).

The values are those of the published TF reference (``vggish_params.py`` and ``mel_features.py``);
the frontend, the network, the segment layout and the AudioSet quantisation all import them
from here. The embedding width and the quantisation range belong to the segment-table contract
(the lowest layer) and are re-exported here so audio code has one place to look.
"""

from __future__ import annotations

from zeroshot_audio.contracts.segment_table import (
    EMBEDDING_SIZE,
    QUANTIZE_MAX,
    QUANTIZE_MIN,
    QUANTIZE_STEP,
)

__all__ = [
    "EMBEDDING_SIZE",
    "EXAMPLE_FRAMES",
    "EXAMPLE_SAMPLES",
    "FFT_LENGTH",
    "LOG_OFFSET",
    "MEL_MAX_HZ",
    "MEL_MIN_HZ",
    "NUM_MEL_BINS",
    "OFFICIAL_PCA_URL",
    "OFFICIAL_WEIGHTS_URL",
    "QUANTIZE_MAX",
    "QUANTIZE_MIN",
    "QUANTIZE_STEP",
    "SAMPLE_RATE",
    "STFT_HOP_SAMPLES",
    "STFT_WINDOW_SAMPLES",
]

SAMPLE_RATE = 16_000
STFT_WINDOW_SAMPLES = 400  # 25 ms
STFT_HOP_SAMPLES = 160  # 10 ms
FFT_LENGTH = 512  # next power of two >= 400
NUM_MEL_BINS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 96  # 0.96 s
EXAMPLE_SAMPLES = (EXAMPLE_FRAMES - 1) * STFT_HOP_SAMPLES + STFT_WINDOW_SAMPLES  # 15600

# Released weights of the public PyTorch port: file names carry a sha256 prefix (torch.hub style).
OFFICIAL_WEIGHTS_URL = (
    "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth"
)
OFFICIAL_PCA_URL = (
    "https://github.com/harritaylor/torchvggish/releases/download/v0.1/"
    "vggish_pca_params-970ea276.pth"
)
