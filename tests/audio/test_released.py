"""``audio.released``: AudioSet's released embeddings as a segment table, with their spec."""

from __future__ import annotations

import pandas as pd

from tests.audio.test_tfrecord_reader import release  # noqa: F401  (fixture)
from zeroshot_audio.audio.embed import released_spec
from zeroshot_audio.audio.released import from_released_embeddings
from zeroshot_audio.contracts.segment_table import embedder_spec


def test_pipeline_helper_orders_by_clip_list_and_reports_missing(release) -> None:  # noqa: F811
    path, _ = release
    clips = pd.DataFrame(
        {
            "ytid": ["-1nilez17Dg", "notreleased", "--aE2O5G5WE"],
            "start_s": [30.0, 0.0, 12.345],
            "end_s": 0.0,
        }
    )
    table, report = from_released_embeddings(clips, [path], n_segments=10)
    assert table.column("ytid").to_pylist() == ["-1nilez17Dg", "--aE2O5G5WE"]
    assert report["failures_by_reason"] == {"not_released": 1}
    assert report["n_featurized"] == 2 and report["vggish_weights"] == "official"
    assert embedder_spec(table.schema) == released_spec(10)
    assert report["embedder"]["source"] == "released"


def test_two_clip_rows_of_one_millisecond_both_get_the_clip(release) -> None:  # noqa: F811
    """Rows matched to the same (ytid, millisecond) share the one released clip (the only case
    where the table is reordered after reading)."""
    path, _ = release
    clips = pd.DataFrame(
        {"ytid": ["-0RWZT-miFs", "-1nilez17Dg", "-0RWZT-miFs"], "start_s": [420.0, 30.0, 420.0001]}
    )
    table, report = from_released_embeddings(clips, [path], n_segments=10)
    assert table.column("ytid").to_pylist() == ["-0RWZT-miFs", "-1nilez17Dg", "-0RWZT-miFs"]
    assert report["n_failed"] == 0 and report["n_featurized"] == 3
