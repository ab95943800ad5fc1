"""Fixtures for the text tests: the real AudioSet class list and one loaded offline encoder."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.fixtures import AUDIOSET


def load_real_classes() -> pd.DataFrame:
    """The 527 labelled classes with their ontology descriptions, as `audioset_classes` has them."""
    index_csv, ontology_json = AUDIOSET / "class_labels_indices.csv", AUDIOSET / "ontology.json"
    classes = pd.read_csv(index_csv, dtype={"mid": str, "display_name": str})
    ontology = {node["id"]: node for node in json.loads(ontology_json.read_text())}
    classes["description"] = [ontology[m]["description"] for m in classes["mid"]]
    return classes[["mid", "index", "display_name", "description"]]


@pytest.fixture(scope="session")
def real_classes() -> pd.DataFrame:
    return load_real_classes()


@pytest.fixture(scope="session")
def minilm():
    """The bundled all-MiniLM-L6-v2, loaded once for the whole session (loading takes seconds)."""
    from zeroshot_audio.text import EncoderConfig, TextEncoder

    return TextEncoder(EncoderConfig(), device="cpu")
