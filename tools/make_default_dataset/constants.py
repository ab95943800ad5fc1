"""The fixed facts of the default dataset: clip format, defaults of every knob, YTID alphabet."""

from __future__ import annotations

SAMPLE_RATE = 16_000
CLIP_SECONDS = 10
CLIP_SAMPLES = SAMPLE_RATE * CLIP_SECONDS
SAMPLES_PER_MS = SAMPLE_RATE // 1000

DEFAULT_SEED = 2024
DEFAULT_N_CLIPS = 1260
DEFAULT_EVENTS_PER_CLIP = (0.4, 0.4, 0.2)
DEFAULT_GAIN_DB_RANGE = (-12.0, 0.0)
DEFAULT_CLASS_BALANCE = 0.5
DEFAULT_PEAK_LIMIT_DBFS = -1.0
# The decoded Vorbis audio must stay below full scale too (codec overshoot, see
# ``_encode_within_limits``); 0.1 dB of margin covers decoders that round differently.
DECODED_PEAK_LIMIT_DBFS = -0.1
# soundfile maps compression_level to Vorbis quality 1 - level; 1.0 is Vorbis q0, the smallest.
DEFAULT_COMPRESSION_LEVEL = 1.0
# Latest start (s) of the pretend source video; start_s is a multiple of 10 below it.
MAX_VIDEO_START_S = 300

# A fixed creation date keeps segments.csv byte-reproducible (the real files carry the date the
# release was made, in this ``time.asctime`` style).
SEGMENTS_CREATED = "Sun Sep  1 00:00:00 2024"
YTID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
YTID_LENGTH = 11
