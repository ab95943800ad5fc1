"""Where files live: a local path or any fsspec URL, written so that no reader sees half a file.

Featurize's audio and its work folder may sit on any fsspec URL (``s3://``, ``gs://``,
``memory://``, ``file://``): Dask workers on other machines then read the same audio and write
their shards to the same place. Local paths (and ``file://`` URLs, which are local paths) keep the
POSIX guarantees: a write goes to a hidden temp sibling (``.<name>.tmp-<pid>-<random>``), is
fsynced and renamed onto its name, so a killed writer leaves no file or the complete one, and the
pid in the temp name tells a later run whether its writer is still alive. For any other URL the
bytes are buffered and uploaded in one put once complete (an object store's put is all-or-nothing).

Kedro-free: the featurize stage, the segment-table contract and the catalog's datasets use it.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import fsspec
from fsspec.core import url_to_fs

TMP_MARK = ".tmp-"

Location = str | Path


def local_path(location: Location) -> Path | None:
    """The local path behind ``location`` (a plain path or a ``file://`` URL), else None."""
    text = str(location)
    if "://" not in text:
        return Path(text)
    protocol, _, rest = text.partition("://")
    return Path(rest) if protocol == "file" else None


def join(base: Location, name: str) -> str:
    """``base/name`` for a local folder and a URL alike."""
    if "://" not in str(base):
        return str(Path(base) / name)
    return f"{str(base).rstrip('/')}/{name}"


def canonical(location: Location) -> str:
    """An absolute spelling of ``location`` (local paths resolved), for fingerprints."""
    local = local_path(location)
    return str(local.resolve()) if local is not None else str(location)


def _fs(location: Location) -> tuple[Any, str]:
    return url_to_fs(str(location))


def exists(location: Location) -> bool:
    local = local_path(location)
    if local is not None:
        return local.is_file()
    fs, path = _fs(location)
    return fs.isfile(path)


def stamp(location: Location) -> Any:
    """What changes when a file is replaced, None when it is missing: the content key of a
    featurize shard (a replaced audio file invalidates the shards that read it). Locally (size,
    mtime); remotely the filesystem's own key (``ukey``: the ETag on S3, a hash of the file's
    info elsewhere), one metadata request per file."""
    local = local_path(location)
    if local is not None:
        try:
            st = os.stat(local)
        except OSError:
            return None
        return (st.st_size, st.st_mtime_ns)
    fs, path = _fs(location)
    try:
        return fs.ukey(path)
    except (FileNotFoundError, OSError):
        return None


def size(location: Location) -> int:
    local = local_path(location)
    if local is not None:
        return local.stat().st_size
    fs, path = _fs(location)
    return int(fs.size(path))


def open_input(location: Location) -> IO[bytes]:
    """A binary file object to read (close it, or use it as a context manager)."""
    local = local_path(location)
    if local is not None:
        return open(local, "rb")
    return fsspec.open(str(location), "rb").open()


def read_text(location: Location) -> str:
    with open_input(location) as f:
        return f.read().decode("utf-8")


def makedirs(location: Location) -> None:
    local = local_path(location)
    if local is not None:
        local.mkdir(parents=True, exist_ok=True)
    else:
        fs, path = _fs(location)
        fs.makedirs(path, exist_ok=True)


# --------------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------------


def temp_sibling(final: Path) -> Path:
    """A hidden, unique name beside ``final``: pid and random, so two writers never collide."""
    return final.with_name(f".{final.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")


def writer_pid(temp: Path) -> int | None:
    """The pid in a temp file's name, or None for a name this module did not make."""
    tail = temp.name.rsplit(TMP_MARK, 1)[-1]
    pid = tail.split("-", 1)[0]
    return int(pid) if pid.isdigit() else None


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    if path.is_dir():
        for child in path.rglob("*"):
            if child.is_file():
                _fsync_path(child)
    _fsync_path(path)


def commit(tmp: Path, final: Path) -> None:
    """fsync ``tmp`` (a file or a folder) and rename it onto ``final``, then fsync the folder.

    A file replaces ``final`` atomically. A folder cannot replace a non-empty folder in one
    rename, so an existing ``final`` is first moved aside (only unversioned datasets overwrite).
    """
    _fsync_tree(tmp)
    if tmp.is_dir() and final.exists():
        aside = temp_sibling(final)
        os.replace(final, aside)
        os.replace(tmp, final)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(tmp, final)
    _fsync_path(final.parent)


def write_atomically(final: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(temp_path)``, then :func:`commit` it to ``final``; no temp is left behind
    unless the process dies (then it is a hidden file no load ever picks up)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(final)
    try:
        write(tmp)
        commit(tmp, final)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


@contextmanager
def open_output(location: Location) -> Iterator[IO[bytes]]:
    """A binary file object whose content appears at ``location`` only once the block ends
    without an error: a local temp sibling renamed into place, or an object store's upload."""
    local = local_path(location)
    if local is not None:
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_sibling(local)
        try:
            with open(tmp, "wb") as f:
                yield f
            commit(tmp, local)
        finally:
            tmp.unlink(missing_ok=True)
        return
    # Remote: buffered and uploaded in one put once the block succeeded (a shard is a few MB),
    # so an error or a killed writer uploads nothing.
    fs, path = _fs(location)
    buffer = io.BytesIO()
    yield buffer
    parent = path.rsplit("/", 1)[0]
    if parent and parent != path:
        fs.makedirs(parent, exist_ok=True)
    fs.pipe_file(path, buffer.getvalue())


def write_json(obj: Any, location: Location) -> None:
    with open_output(location) as f:
        f.write(json.dumps(obj, indent=1, sort_keys=True).encode("utf-8"))


def remove_stale_temp_files(folder: Location) -> int:
    """Delete temp files left by killed writers in a local folder; returns how many.

    Only files whose writer (the pid in the name) is dead are removed: a second run working in
    the same folder at the same time keeps its half-written files. A pid says nothing across
    machines, and object stores get no temp files, so a remote folder is left alone.
    """
    local = local_path(folder)
    if local is None or not local.is_dir():
        return 0
    stale = []
    for p in local.iterdir():
        if not (p.name.startswith(".") and TMP_MARK in p.name):
            continue
        pid = writer_pid(p)
        if pid is None or not _is_alive(pid):
            stale.append(p)
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
