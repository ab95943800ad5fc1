import numpy as np
import pandas as pd
import pytest

from zeroshot_audio.text import build_label_texts, label_embedding_matrix

VIOLIN = "/m/07y_7"


def test_display_names_are_kept_whole(real_classes):
    texts = build_label_texts(real_classes)
    assert len(texts) == 527
    assert list(texts["mid"]) == list(real_classes["mid"])
    assert texts.set_index("mid").loc[VIOLIN, "text"] == "Violin, fiddle"


def test_name_and_description_joins_both(real_classes):
    texts = build_label_texts(real_classes, "name_and_description", mids=[VIOLIN])
    description = real_classes.set_index("mid").loc[VIOLIN, "description"]
    assert texts["text"].item() == f"Violin, fiddle. {description}"


def test_description_source_uses_the_ontology_text(real_classes):
    texts = build_label_texts(real_classes, "description")
    assert (texts["text"] == real_classes["description"].str.split().str.join(" ")).all()


def test_selected_mids_keep_their_requested_order(real_classes):
    mids = list(real_classes["mid"].iloc[[10, 3, 7]])
    assert list(build_label_texts(real_classes, mids=mids)["mid"]) == mids


def test_unknown_mid_is_named(real_classes):
    with pytest.raises(KeyError, match="/m/not_a_class"):
        build_label_texts(real_classes, mids=[VIOLIN, "/m/not_a_class"])


@pytest.mark.parametrize("bad", ["", "   ", None])
def test_empty_text_is_named(real_classes, bad):
    classes = real_classes.copy()
    classes.loc[classes["mid"] == VIOLIN, "display_name"] = bad
    with pytest.raises(ValueError, match=VIOLIN):
        build_label_texts(classes)


def test_empty_description_is_an_error_only_when_descriptions_are_used(real_classes):
    classes = real_classes.copy()
    classes.loc[classes["mid"] == VIOLIN, "description"] = ""
    assert len(build_label_texts(classes, "display_name")) == 527
    for source in ("description", "name_and_description"):
        with pytest.raises(ValueError, match=VIOLIN):
            build_label_texts(classes, source)


def test_duplicate_mids_and_bad_source_are_rejected(real_classes):
    with pytest.raises(ValueError, match="duplicate"):
        build_label_texts(pd.concat([real_classes, real_classes.iloc[:1]]))
    with pytest.raises(ValueError, match="text_source"):
        build_label_texts(real_classes, "name")
    with pytest.raises(KeyError, match="description"):
        build_label_texts(real_classes.drop(columns="description"), "description")


def test_embedding_matrix_follows_requested_order_and_rejects_unknown_mids():
    table = pd.DataFrame(
        {
            "mid": ["/m/a", "/m/b", "/m/c"],
            "text": ["a", "b", "c"],
            "embedding": [np.full(4, i, dtype=np.float32) for i in range(3)],
        }
    )
    matrix = label_embedding_matrix(table, ["/m/c", "/m/a"])
    assert matrix.dtype == np.float32 and matrix.shape == (2, 4)
    assert matrix[:, 0].tolist() == [2.0, 0.0]
    with pytest.raises(KeyError, match="/m/zzz"):
        label_embedding_matrix(table, ["/m/a", "/m/zzz"])
