"""Generator of the bundled default dataset: AudioSet-style 10-s clips mixed from the sounds pack.

Why it exists: ``kedro run`` on the base env must work on a fresh clone, offline, and real AudioSet
audio cannot be redistributed. So the default run uses clips mixed from the freely licensed,
AudioSet-labelled sound events of ``../shared/data/sounds`` and committed to
``data/01_raw/default/``, with metadata in the exact formats of the AudioSet release, so that the
same ingestion code reads the default data and a real AudioSet copy.

Each clip is 10 s of 16 kHz mono audio holding 1 to 3 events at random onsets (some overlap, some
sit in separate seconds), each at a random gain in dB, summed and, when the sum would peak above
-1 dBFS, scaled down as a whole (the applied gain is recorded). Its weak labels are the union of
the events' mids (which include the ancestor classes the pack assigns); its strong labels give
each event's mids with the event's onset and offset in the clip.

Files written to ``--out`` (the contract of the default data):

- ``segments.csv``: AudioSet segments format (three ``#`` header lines with true counts, ``, ``
  separators, 3-decimal times, quoted comma-separated mids), rows sorted by YTID.
- ``audio/{ytid}.ogg``: 160000 samples, 16 kHz, mono, Ogg Vorbis.
- ``strong_labels.csv``: ``clip, mid, onset_s, offset_s``, one row per (event, mid of the event).
- ``mixtures.csv``: the recipe, ``clip, event_file, onset_s, gain_db, mix_gain_db, license``
  (SPDX id of the event);
  ``mix = 10**(mix_gain_db/20) * sum(10**(gain_db/20) * event shifted to onset_s)`` exactly.
- ``clip_licenses.csv``: ``clip, licenses``: the SPDX ids of the material in each clip.
- ``class_labels_indices.csv``, ``ontology.json``: the real files restricted to the classes
  present, original indices and every ontology field kept, in the original layout.
- ``README.md``: what, how, counts, licences and attributions (``LICENSES/`` holds the texts and
  is not written by this script).

Reproducibility: every random choice comes from one ``numpy.random.Generator`` seeded by
``--seed``. libsndfile gives each Ogg stream a random serial number; it is rewritten to a value
derived from the YTID (page CRCs recomputed), so the same seed, sounds pack and libvorbis give
byte-identical files.

Run (from the repository root)::

    python -m tools.make_default_dataset --sounds ../shared/data/sounds \\
        --audioset ../shared/data/audioset --out data/01_raw/default --seed 2024 --n-clips 1260

Only numpy and soundfile (plus tqdm for the progress bar); no Kedro, so it runs anywhere. A
maintainer tool: it lives outside the installed package and needs ``../shared`` (see README.md).
"""

from __future__ import annotations

from .constants import (
    CLIP_SAMPLES,
    CLIP_SECONDS,
    DECODED_PEAK_LIMIT_DBFS,
    DEFAULT_CLASS_BALANCE,
    DEFAULT_COMPRESSION_LEVEL,
    DEFAULT_EVENTS_PER_CLIP,
    DEFAULT_GAIN_DB_RANGE,
    DEFAULT_N_CLIPS,
    DEFAULT_PEAK_LIMIT_DBFS,
    DEFAULT_SEED,
    SAMPLE_RATE,
)
from .dataset import DatasetSummary, summarize, write_dataset
from .licences import licence_spdx, licences_compatible
from .metadata_files import (
    class_index_csv_text,
    clip_licenses_csv_text,
    mixtures_csv_text,
    ontology_json_text,
    segments_csv_text,
    strong_labels_csv_text,
)
from .pack import (
    ClipPlan,
    EventPlacement,
    SoundEvent,
    load_event_audio,
    read_class_index,
    read_manifest,
    read_ontology,
)
from .plan import plan_mixtures
from .readme import readme_text
from .render import (
    RenderedClip,
    encode_ogg_vorbis,
    render_clip,
    set_ogg_serial,
    snr_db,
    sum_events,
)

__all__ = [
    "CLIP_SAMPLES",
    "CLIP_SECONDS",
    "DECODED_PEAK_LIMIT_DBFS",
    "DEFAULT_CLASS_BALANCE",
    "DEFAULT_COMPRESSION_LEVEL",
    "DEFAULT_EVENTS_PER_CLIP",
    "DEFAULT_GAIN_DB_RANGE",
    "DEFAULT_N_CLIPS",
    "DEFAULT_PEAK_LIMIT_DBFS",
    "DEFAULT_SEED",
    "SAMPLE_RATE",
    "ClipPlan",
    "DatasetSummary",
    "EventPlacement",
    "RenderedClip",
    "SoundEvent",
    "class_index_csv_text",
    "clip_licenses_csv_text",
    "encode_ogg_vorbis",
    "licence_spdx",
    "licences_compatible",
    "load_event_audio",
    "mixtures_csv_text",
    "ontology_json_text",
    "plan_mixtures",
    "read_class_index",
    "read_manifest",
    "read_ontology",
    "readme_text",
    "render_clip",
    "segments_csv_text",
    "set_ogg_serial",
    "snr_db",
    "strong_labels_csv_text",
    "sum_events",
    "summarize",
    "write_dataset",
]
