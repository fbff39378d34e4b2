"""Locate, download and verify the real dataset files.

A dataset file is looked up, in order, in the user's data directory (the ``data_dir``
argument, else ``$MOLDDL_DATA_DIR``), then in the user cache directory
(:func:`default_cache_dir`), and finally downloaded from its public source into that cache.
Every file, wherever it was found, is checked against a pinned sha256 of its *decompressed*
content, so ``tox21.csv.gz`` and ``tox21.csv`` verify against the same digest.

Downloaded files live in molddl's ``data`` cache, ``molddl.io.user_cache("data")``: with
``$MOLDDL_CACHE_DIR`` set that is ``$MOLDDL_CACHE_DIR/data``, beside the ``features`` and
``numba`` caches, else ``<the user's cache>/molddl/data``. Earlier versions downloaded into
``$MOLDDL_CACHE_DIR`` itself; a verified file there is still read (never written), so nothing
is downloaded again.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from molddl.io import atomic_path, user_cache

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "MOLDDL_DATA_DIR"
CACHE_DIR_ENV = "MOLDDL_CACHE_DIR"

_CHUNK_SIZE = 1 << 20
_GITHUB_RAW = "https://raw.githubusercontent.com"

# (resolved path, size, mtime_ns) -> sha256 of the decompressed content, so that a file is
# hashed at most once per process unless it changes.
_VERIFIED: dict[tuple[str, int, int], str] = {}


@dataclass(frozen=True, slots=True)
class DataFile:
    """One pinned dataset file.

    Attributes
    ----------
    key
        Registry key, e.g. ``"tox21"``.
    filename
        Name of the file in a data directory, e.g. ``"tox21.csv.gz"``. The same name without
        ``.gz`` (a plain CSV) is accepted too.
    url
        Public source of the *uncompressed* CSV.
    sha256
        Hex sha256 of the decompressed CSV content.
    """

    key: str
    filename: str
    url: str
    sha256: str

    @property
    def plain_name(self) -> str:
        """Name of the uncompressed file (``filename`` without a trailing ``.gz``)."""
        return self.filename.removesuffix(".gz")

    @property
    def candidate_names(self) -> tuple[str, ...]:
        """File names looked for in a directory, in order of preference."""
        if self.plain_name == self.filename:
            return (self.filename,)
        return (self.filename, self.plain_name)


def _github_raw(repo: str, commit: str, path: str) -> str:
    """Return the raw.githubusercontent.com URL of ``path`` in ``repo`` at ``commit``."""
    return f"{_GITHUB_RAW}/{repo}/{commit}/{quote(path)}"


REGISTRY: dict[str, DataFile] = {
    entry.key: entry
    for entry in (
        DataFile(
            key="tox21",
            filename="tox21.csv.gz",
            url=_github_raw(
                "chemprop/chemprop", "b83635bcddaddcdb91d453128edec9f2be0d25cf", "data/tox21.csv"
            ),
            sha256="b58cc1f683e78e3c7a1bf7116e9aac0119804018d100f7b8cdb0857941c31aca",
        ),
        DataFile(
            key="higgs",
            filename="higgs_sas_sample.csv.gz",
            url=_github_raw(
                "sassoftware/sas-viya-workbench-examples",
                "f180274bbf5d5cfc3598cfa2696780a4c228ab4d",
                "data/higgs.csv",
            ),
            sha256="21f8b95e4aaed9e631a76d69c724bb0ca94456bc1ac01e18fd81b968dd3c9724",
        ),
        DataFile(
            key="higgs_h2o_train",
            filename="higgs_h2o_train_10k.csv.gz",
            url=_github_raw(
                "monto8790/autoML",
                "72d8c44463b92bc523cc4db312d5df2d90b70e00",
                "data/higgs_train_10k.csv",
            ),
            sha256="e4d417aa1b452e94e24466670eef8cbcbec1ea626cd2825b361cf05c22465d11",
        ),
        DataFile(
            key="higgs_h2o_test",
            filename="higgs_h2o_test_5k.csv.gz",
            url=_github_raw(
                "monto8790/autoML",
                "72d8c44463b92bc523cc4db312d5df2d90b70e00",
                "data/higgs_test_5k.csv",
            ),
            sha256="275b438d37ac245b2ed42be67771c0fba660d8432d230fb92ea9b5dd8fa61a3e",
        ),
        DataFile(
            key="mof",
            filename="mof_synmof_rac.csv.gz",
            url=_github_raw(
                "aimat-lab/MOF_Synthesis_Prediction",
                "de504e9ab2c71b7469b746513c24de871a343ab2",
                "code/RAC_features/temperature/big.csv",
            ),
            sha256="3f7ec3ce8fa9ea74d6134a2c054741f93ba4aa8f6b33d92792099ebdef1b0baa",
        ),
        DataFile(
            key="mof_conditions",
            filename="mof_synmof_a_conditions.csv.gz",
            url=_github_raw(
                "Tsotsalas-Group/MOF_Literature_Extraction",
                "b5bd5071f4b48dbaddc8c7a830a8c8417f5b5832",
                "Literature Extraction/Databases/SynMOF_A.csv",
            ),
            sha256="77264ccda7602e5bb480bde17235a0bb96f2e765d3a868329d064df31d181c08",
        ),
    )
}


class DataUnavailableError(FileNotFoundError):
    """A dataset file was found nowhere and could not be downloaded."""


class ChecksumError(ValueError):
    """A dataset file (local or downloaded) does not match its pinned sha256."""


def default_cache_dir() -> Path:
    """Return the directory where downloaded dataset files are kept.

    Returns
    -------
    Path
        ``molddl.io.user_cache("data")``: ``$MOLDDL_CACHE_DIR/data`` if that variable is set
        (and non-empty), else ``platformdirs.user_cache_dir("molddl") / "data"``. The
        directory may not exist yet.
    """
    return user_cache("data")


def _old_cache_dir() -> Path | None:
    """``$MOLDDL_CACHE_DIR`` itself, where earlier versions downloaded (``None`` if unset)."""
    env = os.environ.get(CACHE_DIR_ENV)
    return Path(env).expanduser() if env else None


def content_sha256(path: Path) -> str:
    """Hash a file's content, decompressing it first if it is gzip-compressed.

    Parameters
    ----------
    path
        File to hash. A name ending in ``.gz`` is read through :mod:`gzip`.

    Returns
    -------
    str
        Hex sha256 of the decompressed bytes (``*.gz``) or of the raw bytes (otherwise).

    Raises
    ------
    OSError
        If the file cannot be read, or a ``.gz`` file is not valid gzip.
    EOFError
        If a ``.gz`` file is truncated.
    """
    path = Path(path)
    digest = hashlib.sha256()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        while chunk := fh.read(_CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def _actual_sha256(path: Path) -> str:
    """Return the content sha256 of ``path``, hashing only if not already known this process.

    An unreadable or corrupt file yields a descriptive placeholder instead of a digest, so
    that the caller reports it as a checksum mismatch.
    """
    stat = path.stat()
    memo_key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    known = _VERIFIED.get(memo_key)
    if known is not None:
        return known
    try:
        actual = content_sha256(path)
    except (OSError, EOFError, zlib.error) as exc:
        return f"<unreadable: {exc}>"
    _VERIFIED[memo_key] = actual
    return actual


def _check_local(path: Path, expected: str) -> None:
    """Raise :class:`ChecksumError` unless the content of ``path`` hashes to ``expected``."""
    actual = _actual_sha256(path)
    if actual != expected:
        raise ChecksumError(
            f"checksum mismatch for {path}: expected sha256 {expected}, got {actual}. "
            "The file is corrupt or not the pinned version; replace or delete it."
        )
    logger.debug("Verified %s", path)


def _find(directory: Path, file: DataFile) -> Path | None:
    """Return the first of ``file.candidate_names`` that exists in ``directory``."""
    for name in file.candidate_names:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def _user_data_dir(data_dir: str | Path | None, file: DataFile) -> Path | None:
    """Resolve the user's data directory from the argument or the environment.

    Raises
    ------
    DataUnavailableError
        If a directory was given (either way) but does not exist.
    """
    if data_dir is not None and str(data_dir) != "":
        source, raw = "data_dir argument", str(data_dir)
    elif os.environ.get(DATA_DIR_ENV):
        source, raw = f"${DATA_DIR_ENV}", os.environ[DATA_DIR_ENV]
    else:
        return None
    directory = Path(raw).expanduser()
    if not directory.is_dir():
        raise DataUnavailableError(
            f"data directory {directory} (from the {source}) does not exist or is not a "
            f"directory; it was to be searched for {file.filename}. Point --data-dir / "
            f"{DATA_DIR_ENV} at the directory that holds the dataset files."
        )
    return directory


def _download(url: str, file: DataFile, cache_dir: Path, timeout: float) -> Path:
    """Download ``url`` into ``cache_dir`` atomically and verify it against ``file.sha256``.

    The body is streamed to a temporary file in ``cache_dir`` (:func:`molddl.io.atomic_path`)
    while being hashed; only a verified download is renamed to ``cache_dir / file.plain_name``.
    The temporary file is removed on every failure.

    Raises
    ------
    ChecksumError
        If the downloaded content does not match the pinned sha256.
    OSError, http.client.HTTPException
        On network failure (passed on for the caller to report).
    """
    target = cache_dir / file.plain_name
    request = urllib.request.Request(url, headers={"User-Agent": "molddl"})
    with atomic_path(target) as tmp:
        digest = hashlib.sha256()
        with open(tmp, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as resp:
            while chunk := resp.read(_CHUNK_SIZE):
                digest.update(chunk)
                out.write(chunk)
        actual = digest.hexdigest()
        if actual != file.sha256:
            raise ChecksumError(
                f"checksum mismatch for download of {file.filename} from {url}: "
                f"expected sha256 {file.sha256}, got {actual}. Nothing was saved."
            )
    stat = target.stat()
    _VERIFIED[(str(target.resolve()), stat.st_size, stat.st_mtime_ns)] = actual
    return target


def _failure_reason(exc: BaseException) -> str:
    """Describe a download failure in a few words for an error message."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    reason = getattr(exc, "reason", None) or exc
    return (
        f"{type(reason).__name__}: {reason}" if isinstance(reason, BaseException) else str(reason)
    )


def _resolve_entry(key: str | DataFile) -> DataFile:
    """Return the :class:`DataFile` for a registry key (or the entry itself)."""
    if isinstance(key, DataFile):
        return key
    try:
        return REGISTRY[key]
    except KeyError:
        raise KeyError(f"unknown dataset {key!r}; known: {', '.join(sorted(REGISTRY))}") from None


def fetch(
    key: str | DataFile,
    data_dir: str | Path | None = None,
    *,
    download: bool = True,
    url: str | None = None,
    timeout: float = 30.0,
) -> Path:
    """Find a verified local copy of a dataset file, downloading it if needed.

    Lookup order: (1) ``data_dir``, else ``$MOLDDL_DATA_DIR``; (2) the cache directory
    (:func:`default_cache_dir`), then, if it holds no copy, a verified copy that an earlier
    version downloaded into ``$MOLDDL_CACHE_DIR`` itself (read only; a copy that fails its
    checksum there is ignored with a warning); (3) if ``download``, the public source, saved
    into the cache as the uncompressed CSV. In each directory ``file.filename`` is looked for
    first, then the same name without ``.gz``. A file in the user's data directory is never
    replaced; a corrupt file in the cache is replaced by a fresh download (with a warning).

    Parameters
    ----------
    key
        A :data:`REGISTRY` key such as ``"tox21"``, or a :class:`DataFile`.
    data_dir
        Directory holding the dataset files; defaults to ``$MOLDDL_DATA_DIR`` if set.
    download
        Whether to download the file when it is not found locally.
    url
        Download from this URL instead of ``file.url`` (the content must still match the
        pinned sha256).
    timeout
        Network timeout in seconds for the download.

    Returns
    -------
    Path
        Path of a file whose decompressed content matches the pinned sha256.

    Raises
    ------
    KeyError
        If ``key`` is not in :data:`REGISTRY`.
    DataUnavailableError
        If a given data directory does not exist, or the file is not found locally and
        cannot be downloaded (downloading disabled, or a network/HTTP failure).
    ChecksumError
        If a file in the data directory, a cached file (when not downloading), or the
        downloaded content does not match the pinned sha256.
    """
    file = _resolve_entry(key)
    searched: list[Path] = []

    user_dir = _user_data_dir(data_dir, file)
    if user_dir is not None:
        searched.append(user_dir)
        found = _find(user_dir, file)
        if found is not None:
            _check_local(found, file.sha256)
            return found

    cache_dir = default_cache_dir()
    searched.append(cache_dir)
    stale: Path | None = None
    found = _find(cache_dir, file)
    if found is not None:
        try:
            _check_local(found, file.sha256)
        except ChecksumError as exc:
            if not download:
                raise
            logger.warning("%s; downloading a fresh copy", exc)
            stale = found
        else:
            return found
    else:
        old = _old_cache_dir()
        found = None if old is None else _find(old, file)
        if found is not None:
            assert old is not None  # found comes from _find(old, ...)
            searched.append(old)
            try:
                _check_local(found, file.sha256)
            except ChecksumError as exc:
                logger.warning("%s; ignoring it (a file of the old cache folder)", exc)
            else:
                return found

    source_url = url or file.url
    where = ", ".join(str(d) for d in searched)
    hint = (
        f"Set {DATA_DIR_ENV} or pass --data-dir to a directory that holds {file.filename} "
        f"(or {file.plain_name})."
    )
    if not download:
        raise DataUnavailableError(
            f"{file.filename} not found in {where} and downloading is disabled; "
            f"its source is {source_url}. {hint}"
        )

    logger.info("Downloading %s from %s into %s", file.filename, source_url, cache_dir)
    try:
        target = _download(source_url, file, cache_dir, timeout)
    except (OSError, http.client.HTTPException) as exc:
        raise DataUnavailableError(
            f"{file.filename} not found in {where}, and downloading it from {source_url} "
            f"failed: {_failure_reason(exc)}. {hint}"
        ) from exc
    if stale is not None and stale != target:
        stale.unlink(missing_ok=True)
    logger.info("Saved %s", target)
    return target
