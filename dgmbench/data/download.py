"""Fetching, verifying and caching the canonical data files.

Two places a file can come from:

* ``DGMBENCH_DATA_DIR`` set: an OFFLINE directory laid out as
  ``<DGMBENCH_DATA_DIR>/<dataset>/<canonical file name>``. Files are read from there and
  verified, never downloaded.
* otherwise a cache directory (``DGMBENCH_CACHE_DIR``, default ``~/.cache/dgmbench/data``):
  the file is downloaded from its canonical URL once, to a temporary file in the same
  directory, verified, and only then renamed into place, so an interrupted download never
  leaves a half file under the final name. A cached file whose checksum is wrong is
  deleted and fetched again.

Every file is checked against the published checksum (sha256 unless a dataset only has a
published md5). Hashing ~100 MB costs about a second on a busy CPU, so a verified hash is
remembered in the cache directory keyed by (path, size, mtime); a file edited in place
changes its mtime and is hashed again.

Parsed arrays (e.g. the 78 MB text ``.amat`` file as a uint8 array) are cached as ``.npz``
under ``<cache>/parsed/``, keyed by the source file's checksum, so a second load is fast.
The remembered (path, size, mtime) hash cannot see a file edited in place with its mtime
restored, so whenever a parsed entry is (re)built the source's content is hashed afresh
and must equal the published checksum; the entry stores that hash and a load accepts the
entry only if it matches the verified checksum. An unreadable entry (truncated, not a zip,
missing arrays) is rebuilt from the verified source.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import urllib.request
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

DATA_DIR_ENV = "DGMBENCH_DATA_DIR"
CACHE_DIR_ENV = "DGMBENCH_CACHE_DIR"
DEFAULT_CACHE_DIR = Path("~/.cache/dgmbench/data")
HASH_CHUNK = 1 << 22


class DataFileError(RuntimeError):
    """A data file is missing, corrupt or unreadable; the message says what to do."""


class MissingDataError(DataFileError, FileNotFoundError):
    """A data file expected in the offline data directory is not there."""


class ChecksumError(DataFileError):
    """A data file's checksum differs from the published one."""


@dataclass(frozen=True)
class RemoteFile:
    """A canonical public file: where it lives and the checksum it must have."""

    filename: str
    url: str
    sha256: str | None = None
    md5: str | None = None  # only where no sha256 is published
    size: int | None = None  # bytes, for documentation and progress bars

    def __post_init__(self):
        if not (self.sha256 or self.md5):
            raise ValueError(f"{self.filename}: a checksum (sha256 or md5) is required")

    @property
    def algorithm(self) -> str:
        return "sha256" if self.sha256 else "md5"

    @property
    def checksum(self) -> str:
        return self.sha256 or self.md5  # type: ignore[return-value]


def data_dir() -> Path | None:
    """The offline data directory, or None when files are downloaded into the cache."""
    value = os.environ.get(DATA_DIR_ENV)
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR).expanduser()


# --- checksums ---------------------------------------------------------------------------


def file_hash(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of `path`, remembered per (path, size, mtime) in the cache directory."""
    key, record = _remembered(path, algorithm)
    try:
        stored = json.loads(record.read_text())
        if stored.get("key") == key:
            return stored["digest"]
    except (OSError, ValueError):
        pass

    hexdigest = _hash(Path(path).resolve(), algorithm)
    try:
        _write_atomic(record, lambda f: f.write(json.dumps({"key": key, "digest": hexdigest}).encode()))
    except OSError:
        pass  # an unwritable cache only means hashing again next time
    return hexdigest


def _remembered(path: Path, algorithm: str) -> tuple[str, Path]:
    """The (path, size, mtime, algorithm) key of `path` and the record remembering its hash."""
    path = Path(path).resolve()
    stat = path.stat()
    key = f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0{algorithm}"
    return key, cache_dir() / "verified" / (hashlib.sha256(key.encode()).hexdigest() + ".json")


def forget_hash(path: Path, algorithm: str = "sha256") -> None:
    """Drop the remembered hash of `path`, so the next :func:`file_hash` reads it again."""
    try:
        _remembered(path, algorithm)[1].unlink(missing_ok=True)
    except OSError:
        pass


def content_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of the bytes of `path`, read now (never taken from the remembered hashes)."""
    return _hash(Path(path), algorithm)


def _hash(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path, remote: RemoteFile) -> None:
    """Raise ChecksumError unless `path` has the published checksum of `remote`."""
    actual = file_hash(path, remote.algorithm)
    if actual != remote.checksum:
        raise ChecksumError(
            f"corrupt data file {path}: its {remote.algorithm} is {actual}, but the canonical "
            f"{remote.filename} has {remote.checksum}. Delete it and copy it again from "
            f"{remote.url} (an interrupted or modified copy is the usual cause)."
        )


# --- fetching ----------------------------------------------------------------------------


def fetch(dataset: str, filename: str, url: str, sha256: str) -> Path:
    """Path to a verified copy of the canonical file `filename` of `dataset`."""
    return fetch_file(dataset, RemoteFile(filename, url, sha256=sha256))


def fetch_file(dataset: str, remote: RemoteFile) -> Path:
    """As :func:`fetch`, for a :class:`RemoteFile` (which may carry an md5 instead)."""
    offline = data_dir()
    if offline is not None:
        path = offline / dataset / remote.filename
        if not path.is_file():
            raise MissingDataError(
                f"data file not found: {path}. {DATA_DIR_ENV}={offline} is an offline data "
                f"directory (layout <dir>/{dataset}/{remote.filename}) and nothing is "
                f"downloaded into it: copy the canonical file from {remote.url} there, or "
                f"unset {DATA_DIR_ENV} to download into the cache ({cache_dir()})."
            )
        verify(path, remote)
        return path

    path = cache_dir() / dataset / remote.filename
    if path.is_file():
        try:
            verify(path, remote)
            return path
        except ChecksumError as error:
            warnings.warn(f"{error} Deleting it and downloading it again.", stacklevel=2)
            path.unlink()

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, partial_name = tempfile.mkstemp(dir=path.parent, prefix=f".{remote.filename}.", suffix=".part")
    os.close(fd)
    partial = Path(partial_name)
    try:
        download_url(remote.url, partial, remote.size)
        actual = _hash(partial, remote.algorithm)  # not remembered: the name is temporary
        if actual != remote.checksum:
            raise ChecksumError(
                f"downloaded {remote.url} but its {remote.algorithm} is {actual}, not the "
                f"published {remote.checksum}; the download was truncated or the server "
                f"changed the file. Try again, or place a verified copy at "
                f"<{DATA_DIR_ENV}>/{dataset}/{remote.filename} and set {DATA_DIR_ENV}."
            )
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def download_url(url: str, destination: Path, size: int | None = None) -> None:
    """Stream `url` into `destination` with a tqdm progress bar."""
    from tqdm.auto import tqdm

    request = urllib.request.Request(url, headers={"User-Agent": "dgmbench"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response, open(destination, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or size
            with tqdm(total=total, unit="B", unit_scale=True, desc=Path(url).name) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
    except OSError as error:  # URLError is an OSError
        raise DataFileError(
            f"could not download {url}: {error}. Without network access, copy the file into "
            f"an offline directory <dir>/<dataset>/{Path(url).name} and set {DATA_DIR_ENV}=<dir>."
        ) from error


# --- cached parsing ----------------------------------------------------------------------


SOURCE_HASH_KEY = "__source_checksum__"  # the entry's record of the hash it was built from
_UNREADABLE_ENTRY = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


def cached_arrays(
    source: Path,
    checksum: str,
    parse: Callable[[Path], dict[str, np.ndarray]],
    content_hash: Callable[[Path], str] | None = None,
) -> dict[str, np.ndarray]:
    """``parse(source)`` (named arrays), cached as an .npz keyed by the source's checksum.

    `checksum` is the verified (published) hash of `source`: its sha256 or md5 hex digest,
    or, for a source that is not one file, what ``content_hash(source)`` must return. Before
    an entry is built the content is hashed afresh (never from the remembered hashes) and
    a mismatch raises :class:`ChecksumError`; the entry stores the hash, and an entry that
    is unreadable or stores another hash is rebuilt.
    """
    cached = cache_dir() / "parsed" / f"{Path(source).name}.{checksum[:16]}.npz"
    if cached.is_file():
        try:
            with np.load(cached, allow_pickle=False) as stored:
                arrays = {key: stored[key] for key in stored.files}
            if str(arrays.pop(SOURCE_HASH_KEY)) == checksum:
                return arrays
        except _UNREADABLE_ENTRY:
            pass  # unreadable cache entry: rebuilt below from the verified source
        cached.unlink(missing_ok=True)

    actual = (content_hash or _content_hash_like(checksum))(Path(source))
    if actual != checksum:
        for algorithm in ("sha256", "md5"):
            if Path(source).is_file():
                forget_hash(Path(source), algorithm)
        raise ChecksumError(
            f"data file {source} changed after it was verified: its content hashes to {actual}, "
            f"not the verified {checksum} (a copy edited in place keeps its size and mtime). "
            f"Delete it and copy the canonical file again."
        )
    arrays = parse(Path(source))
    if SOURCE_HASH_KEY in arrays:
        raise ValueError(f"parsed arrays may not be named {SOURCE_HASH_KEY!r}")
    try:
        _write_atomic(cached, lambda f: np.savez(f, **arrays, **{SOURCE_HASH_KEY: np.array(checksum)}))
    except OSError as error:  # a read-only cache only costs speed
        warnings.warn(f"could not cache the parsed {source} in {cached.parent}: {error}", stacklevel=2)
    return arrays


def _content_hash_like(checksum: str) -> Callable[[Path], str]:
    """Hash a file with the algorithm whose hex digests have the length of `checksum`."""
    algorithm = {64: "sha256", 32: "md5"}.get(len(checksum))
    if algorithm is None:
        raise ValueError(
            f"checksum {checksum!r} is neither a sha256 nor an md5 hex digest; pass "
            f"content_hash= to say how the source's content is hashed"
        )
    return lambda path: _hash(path, algorithm)


def cached_array(
    source: Path,
    checksum: str,
    parse: Callable[[Path], np.ndarray],
    content_hash: Callable[[Path], str] | None = None,
) -> np.ndarray:
    """``parse(source)``, cached keyed by the source's checksum (see :func:`cached_arrays`)."""
    return cached_arrays(source, checksum, lambda path: {"array": parse(path)}, content_hash)["array"]


def _write_atomic(path: Path, write: Callable) -> None:
    """Write via a temporary file in the same directory, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(partial, path)
    finally:
        Path(partial).unlink(missing_ok=True)

