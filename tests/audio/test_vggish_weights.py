"""Where VGGish's weights come from: a clear error when absent, random weights only when allowed
and loudly, hash checks, and loading that never runs code from a file (``weights_only=True``)."""

from __future__ import annotations

import dataclasses
import logging
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from zeroshot_audio.audio import vggish, vggish_params


@pytest.fixture(scope="module")
def random_network() -> vggish.VGGish:
    return vggish.random_init_(vggish.VGGish(final_relu=False), seed=7).eval()


def _offline_spec(tmp_path, **kw) -> vggish.WeightsSpec:
    return vggish.WeightsSpec(cache_dir=str(tmp_path / "cache"), download=False, **kw)


def test_missing_official_weights_fail_with_one_clear_message(tmp_path) -> None:
    with pytest.raises(vggish.WeightsUnavailableError) as err:
        vggish.resolve_weights(_offline_spec(tmp_path, allow_random=False), seed=0, need_pca=False)
    message = str(err.value)
    assert "vggish-10086976.pth" in message
    assert vggish_params.OFFICIAL_WEIGHTS_URL in message
    assert str(tmp_path / "cache") in message


def test_random_weights_only_when_allowed_and_loudly(tmp_path, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        loaded = vggish.resolve_weights(
            _offline_spec(tmp_path, allow_random=True), seed=5, need_pca=True
        )
    assert loaded.source == "random" and loaded.network_state is None
    assert loaded.pca_source == "identity"
    assert "RANDOM" in caplog.text and "IDENTITY PCA" in caplog.text
    assert loaded.fingerprint.startswith("random:")


def test_official_weights_are_loaded_and_hash_checked(tmp_path, random_network) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    path = cache / "vggish-10086976.pth"
    torch.save(random_network.state_dict(), path)
    digest = vggish.file_sha256(path)
    # the PCA file of the release holds numpy arrays, not tensors
    pca_path = cache / "vggish_pca_params-970ea276.pth"
    torch.save({"pca_eigen_vectors": np.eye(128) * 2.0, "pca_means": np.full(128, 0.5)}, pca_path)
    spec = _offline_spec(tmp_path, sha256=digest[:8], pca_sha256=vggish.file_sha256(pca_path))
    loaded = vggish.resolve_weights(spec, seed=0, need_pca=True)
    assert loaded.source == "official" and loaded.pca_source == "official"
    net = vggish.build_network(loaded, seed=123, final_relu=False)
    torch.testing.assert_close(net.state_dict(), random_network.state_dict(), rtol=0, atol=0)
    assert loaded.pca[1].shape == (128, 1)

    wrong = _offline_spec(tmp_path, sha256="deadbeef", allow_random=False)
    with pytest.raises(vggish.WeightsUnavailableError, match="sha256"):
        vggish.resolve_weights(wrong, seed=0, need_pca=False)


class _RunsCode:
    """Unpickling this calls ``exec``: what a hostile ``.pth`` does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


@pytest.mark.parametrize("which", ["network", "pca"])
def test_a_pth_that_would_run_code_is_refused_even_when_its_hash_matches(
    tmp_path, random_network, which
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    marker = tmp_path / "marker"
    net = cache / "vggish-10086976.pth"
    pca = cache / "vggish_pca_params-970ea276.pth"
    torch.save(random_network.state_dict(), net)
    torch.save({"pca_eigen_vectors": np.eye(128), "pca_means": np.zeros(128)}, pca)
    hostile = {"pca_eigen_vectors": _RunsCode(marker), "pca_means": np.zeros(128)}
    if which == "network":
        hostile = {**random_network.state_dict(), "features.0.weight": _RunsCode(marker)}
    torch.save(hostile, net if which == "network" else pca)
    # the full digests are configured: the old loader trusted such a file with weights_only=False
    spec = _offline_spec(
        tmp_path, sha256=vggish.file_sha256(net), pca_sha256=vggish.file_sha256(pca)
    )
    with pytest.raises(vggish.WeightsUnavailableError, match=r"refused to load .*GLOBAL .*exec"):
        vggish.resolve_weights(spec, seed=0, need_pca=True)
    assert not marker.exists()
    # allowed to degrade: it still does not run the file, it falls back loudly instead
    loaded = vggish.resolve_weights(
        dataclasses.replace(spec, allow_random=True), seed=0, need_pca=True
    )
    assert not marker.exists()
    assert (loaded.source if which == "network" else loaded.pca_source) in ("random", "identity")


def _as_numpy1_pickle(path: Path) -> None:
    """Rewrite a torch.save file as numpy 1.x writes arrays (``numpy.core.multiarray``), which
    is how the released PCA file (2019) names ``_reconstruct``."""
    with zipfile.ZipFile(path) as src:
        items = [(info, src.read(info)) for info in src.infolist()]
    renamed = 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as dst:
        for info, data in items:
            if info.filename.endswith("data.pkl"):
                renamed = data.count(b"numpy._core.multiarray")
            dst.writestr(info, data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    assert renamed >= 1


@pytest.mark.parametrize("numpy_names", ["numpy2", "numpy1"])
def test_numpy_array_pca_files_load_without_the_full_unpickler(tmp_path, numpy_names) -> None:
    path = tmp_path / "pca.pth"
    eig = np.arange(128 * 128, dtype=np.float64).reshape(128, 128)
    means = np.linspace(-1, 1, 128).astype(np.float32)
    torch.save({"pca_eigen_vectors": eig, "pca_means": means}, path)
    if numpy_names == "numpy1":
        _as_numpy1_pickle(path)
    loaded = vggish.load_weights_file(path)
    np.testing.assert_array_equal(loaded["pca_eigen_vectors"], eig)
    np.testing.assert_array_equal(loaded["pca_means"], means)


def test_object_arrays_are_refused(tmp_path) -> None:
    path = tmp_path / "objects.pth"
    torch.save({"pca_means": np.array([1.0, None], dtype=object)}, path)
    with pytest.raises(vggish.WeightsUnavailableError, match="refused to load"):
        vggish.load_weights_file(path)
