"""Where VGGish's weights come from, and how they are loaded without ever running code.

Lookup: a configured path, else the cache folder, else (only when allowed) a download; no file
and no download means a clear error that says where to put it, or, only with ``allow_random``,
a seeded random network with a loud warning (the run is tagged ``vggish_weights=random``).

Every file goes through ``torch.load(weights_only=True)``: tensors and plain numpy arrays (the
PCA parameters) pass an explicit allowlist, anything else in the pickle is refused, whatever
the file's hash.
"""

from __future__ import annotations

import hashlib
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from zeroshot_audio.audio.vggish_params import (
    EMBEDDING_SIZE,
    OFFICIAL_PCA_URL,
    OFFICIAL_WEIGHTS_URL,
)

logger = logging.getLogger(__name__)


class WeightsUnavailableError(RuntimeError):
    """The official VGGish weights are needed and not at hand."""


@dataclass(frozen=True)
class WeightsSpec:
    """Where the network (and PCA) weights come from.

    Lookup: ``path`` if set, else ``cache_dir/<basename of url>``; if absent and ``download``,
    fetch ``url`` into the cache. ``sha256`` may be a prefix (the port's file names carry one).
    The hash only identifies the file: loading is always ``weights_only`` (see
    :func:`load_weights_file`), so a file that matches it cannot run code either.
    """

    path: str | None = None
    url: str | None = OFFICIAL_WEIGHTS_URL
    sha256: str | None = "10086976"
    pca_path: str | None = None
    pca_url: str | None = OFFICIAL_PCA_URL
    pca_sha256: str | None = "970ea276"
    cache_dir: str = "data/06_models/vggish"
    download: bool = True
    download_timeout_s: float = 30.0
    allow_random: bool = False

    def network_file(self) -> Path | None:
        return _local_file(self.path, self.url, self.cache_dir)

    def pca_file(self) -> Path | None:
        return _local_file(self.pca_path, self.pca_url, self.cache_dir)


def _local_file(path: str | None, url: str | None, cache_dir: str) -> Path | None:
    if path:
        return Path(path)
    if url:
        return Path(cache_dir) / url.rsplit("/", 1)[-1]
    return None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _how_to_get(target: Path, url: str | None) -> str:
    if url:
        return (
            f"download it on a machine with internet access, e.g. `curl -L -o {target} {url}`, "
            f"and copy it to {target} (or set the weights path parameter to where it is)"
        )
    return f"put the file at {target} or set its path parameter"


def ensure_file(
    target: Path | None, url: str | None, sha256: str | None, spec: WeightsSpec, what: str
) -> Path:
    """Return a verified local copy of a weights file, downloading it if allowed.

    Raises :class:`WeightsUnavailableError` naming the file and how to obtain it.
    """
    if target is None:
        raise WeightsUnavailableError(f"VGGish {what}: neither a path nor a URL is configured")
    if not target.is_file() and url and spec.download:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        try:
            logger.info("Downloading VGGish %s from %s", what, url)
            with (
                urllib.request.urlopen(url, timeout=spec.download_timeout_s) as response,
                open(tmp, "wb") as out,
            ):
                while block := response.read(1 << 20):
                    out.write(block)
            tmp.replace(target)
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            tmp.unlink(missing_ok=True)
            logger.info("Could not download %s: %s", url, err)
    if not target.is_file():
        raise WeightsUnavailableError(
            f"VGGish {what} file {target} is missing and could not be fetched "
            f"(offline?). To use the official weights, {_how_to_get(target, url)}."
        )
    if sha256:
        actual = file_sha256(target)
        if not actual.startswith(sha256.lower()):
            raise WeightsUnavailableError(
                f"VGGish {what} file {target} has sha256 {actual}, expected {sha256}...: "
                f"a corrupt or different file; delete it and {_how_to_get(target, url)}."
            )
    return target


def _numpy_array_globals() -> list:
    """The only globals a pickled numpy array needs: ``ndarray``, ``dtype`` and the
    ``_reconstruct`` helper under its numpy 1.x (``numpy.core``) and 2.x (``numpy._core``) names,
    and the numeric dtype classes whose state a dtype restores. None of them can run code: ``_reconstruct`` makes an empty array of an allowed type and
    ``ndarray.__setstate__`` fills it with raw bytes."""
    from numpy._core.multiarray import _reconstruct

    numeric_dtypes = {type(np.dtype(code)) for code in "?bBhHiIlLqQefdg"}  # numpy 2 classes
    return [
        np.ndarray,
        np.dtype,
        *sorted(numeric_dtypes, key=lambda t: t.__name__),
        (_reconstruct, "numpy.core.multiarray._reconstruct"),
        (_reconstruct, "numpy._core.multiarray._reconstruct"),
    ]


def _why(err: Exception) -> str:
    """The line of torch's long weights_only message that says what was refused."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if "WeightsUnpickler error" in line:
            rest = line.split("WeightsUnpickler error:", 1)[-1].strip()
            rest = rest or (lines[i + 1] if i + 1 < len(lines) else line)
            return rest.split(" Please use", 1)[0]  # not torch's advice to allowlist it
    return lines[0] if lines else repr(err)


def load_weights_file(path: Path) -> dict:
    """``torch.load(weights_only=True)`` with numpy arrays allowed: never the full unpickler.

    The released network file is a state_dict of tensors; the released PCA file is a dict of
    numpy arrays. Anything else (a pickled class, a function call) is refused before it runs,
    whatever the file's hash: a hash says which file this is, not that unpickling it is safe.
    """
    try:
        with torch.serialization.safe_globals(_numpy_array_globals()):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle.UnpicklingError, RuntimeError for foreign or corrupt files
        raise WeightsUnavailableError(
            f"refused to load {path}: it is not a plain file of tensors or numpy arrays "
            f"(weights are only ever loaded with torch.load(weights_only=True)): {_why(err)}"
        ) from err
    if not isinstance(data, dict):
        raise WeightsUnavailableError(f"{path}: expected a dict of arrays, got {type(data)}")
    for key, value in data.items():
        if isinstance(value, np.ndarray) and value.dtype.kind not in "fiub":
            raise WeightsUnavailableError(f"{path}: array {key!r} has dtype {value.dtype}")
    return data


@dataclass
class LoadedWeights:
    """The weights to build an embedder from, with where they came from."""

    network_state: dict[str, torch.Tensor] | None
    pca: tuple[torch.Tensor, torch.Tensor] | None
    source: str  # network weights: "official" or "random"
    pca_source: str  # "official", "identity" (random fallback) or "unused"
    fingerprint: str  # identifies the weights (file hashes, or "random:<seed>")


def _degrade(spec: WeightsSpec, err: WeightsUnavailableError, what: str) -> None:
    if not spec.allow_random:
        raise err
    logger.warning(
        "!!! VGGish runs with %s: embeddings are NOT those of the published model and results "
        "are NOT comparable with the paper. Cause: %s",
        what,
        err,
    )


def resolve_weights(spec: WeightsSpec, seed: int, need_pca: bool) -> LoadedWeights:
    """Load the official weights; only if ``spec.allow_random``, fall back to a seeded random
    network (and an identity PCA) with a loud warning."""
    try:
        net_file = ensure_file(spec.network_file(), spec.url, spec.sha256, spec, "network weights")
        state = load_weights_file(net_file)
        source, fingerprint = "official", file_sha256(net_file)
    except WeightsUnavailableError as err:
        _degrade(spec, err, f"RANDOM network weights (seed {seed})")
        state, source, fingerprint = None, "random", f"random:he-normal:{seed}"
    pca, pca_source = None, "unused"
    if need_pca:
        try:
            pca_file = ensure_file(
                spec.pca_file(), spec.pca_url, spec.pca_sha256, spec, "PCA params"
            )
            params = load_weights_file(pca_file)
            pca = (
                torch.as_tensor(np.asarray(params["pca_eigen_vectors"]), dtype=torch.float32),
                torch.as_tensor(np.asarray(params["pca_means"]), dtype=torch.float32).reshape(
                    -1, 1
                ),
            )
            pca_source = "official"
            fingerprint += ":" + file_sha256(pca_file)
        except WeightsUnavailableError as err:
            _degrade(spec, err, "an IDENTITY PCA instead of the released one")
            pca = (torch.eye(EMBEDDING_SIZE), torch.zeros(EMBEDDING_SIZE, 1))
            pca_source = "identity"
            fingerprint += ":identity-pca"
    return LoadedWeights(state, pca, source, pca_source, fingerprint)
