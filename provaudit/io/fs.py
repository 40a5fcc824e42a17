"""Paths and storage URIs: inputs and ``--out`` on any fsspec filesystem (``file://``, ``memory://``,
``s3://`` with s3fs, ``gs://`` with gcsfs, ...), plain paths unchanged.

:func:`location` turns what the user gave into a ``pathlib.Path`` (a plain path) or a :class:`URIPath`
(a URI), which has the few ``Path`` methods the readers use (``name``, ``exists``, ``is_dir``,
``stat().st_size``, ``/``, ``open``), so a reader works on both and its errors name the URI *as given*
(``str()`` of a ``URIPath`` is the original text). :func:`parquet_file` opens Parquet through a pyarrow
filesystem (``pyarrow.fs.PyFileSystem(FSSpecHandler(fs))``), so row groups are read by range requests.

Outputs: :func:`publish` puts a scan's finished outputs under a URI ``out`` in an order that is safe on
object stores, which have no atomic rename: the old ``summary.json`` is removed first, the data files
are written next, and ``summary.json`` is written last, as the completion marker (``docs/scale-out.md``).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from provaudit.errors import InputError, UsageError

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")


def is_uri(path: Any) -> bool:
    """Whether ``path`` is a ``protocol://...`` URI (a Path or a plain path never is)."""
    return isinstance(path, (str, URIPath)) and bool(_SCHEME.match(str(path)))


def resolve(uri: str, *, what: str = "input") -> tuple[Any, str]:
    """The fsspec filesystem of ``uri`` and the path within it; an unknown protocol or a missing driver
    (``s3://`` without s3fs) is a one-line error naming the URI (exit 2)."""
    import fsspec.core

    try:
        return fsspec.core.url_to_fs(uri)
    except (ValueError, ImportError) as exc:
        protocol = _SCHEME.match(uri).group(1)  # type: ignore[union-attr]
        msg = str(exc).strip().split("\n")[0]
        if what == "input":
            raise InputError(f"cannot open {protocol}:// URIs ({msg})", file=uri) from None
        raise UsageError(f"{what} {uri}: cannot open {protocol}:// URIs ({msg})") from None


class _Stat:
    def __init__(self, size: int) -> None:
        self.st_size = size


class URIPath:
    """A file or folder at a URI, with the ``pathlib.Path`` methods the readers use."""

    def __init__(self, uri: str, fs: Any = None, path: str | None = None) -> None:
        self.uri = uri[:-1] if uri.endswith("/") and not uri.endswith("://") else uri
        if fs is None:
            fs, path = resolve(self.uri)
        self.fs, self.path = fs, path if path is not None else self.uri

    def __str__(self) -> str:
        return self.uri

    def __repr__(self) -> str:
        return f"URIPath({self.uri!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, URIPath) and other.uri == self.uri

    def __hash__(self) -> int:
        return hash(self.uri)

    def __reduce__(self):  # pickled (to Ray workers) as the URI: each process resolves its own filesystem
        return (URIPath, (self.uri,))

    def __truediv__(self, name: str) -> URIPath:
        return URIPath(f"{self.uri}/{name}", self.fs, f"{self.path.rstrip('/')}/{name}")

    @property
    def name(self) -> str:
        return self.uri.rstrip("/").rsplit("/", 1)[-1]

    def exists(self) -> bool:
        return bool(self.fs.exists(self.path))

    def is_dir(self) -> bool:
        return bool(self.fs.isdir(self.path))

    def is_file(self) -> bool:
        return bool(self.fs.isfile(self.path))

    def stat(self) -> _Stat:
        return _Stat(int(self.fs.size(self.path)))

    def resolve(self) -> URIPath:
        return self

    def open(self, mode: str = "rb"):
        return self.fs.open(self.path, mode)

    def glob(self, pattern: str) -> list[URIPath]:
        """Entries of this folder matching ``pattern`` (one level), sorted by name."""
        found = sorted(self.fs.glob(f"{self.path.rstrip('/')}/{pattern}"))
        return [self / str(f).rstrip("/").rsplit("/", 1)[-1] for f in found]

    def arrow(self) -> tuple[Any, str]:
        """A pyarrow filesystem over this one, and the path in it."""
        from pyarrow.fs import FSSpecHandler, PyFileSystem

        return PyFileSystem(FSSpecHandler(self.fs)), self.path

    def makedirs(self) -> None:
        self.fs.makedirs(self.path, exist_ok=True)

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """``Path.mkdir``-like (object stores have no folders: nothing to create there)."""
        self.makedirs()

    def remove(self) -> None:
        """Remove this file or folder (recursively) if it exists."""
        if self.fs.exists(self.path):
            self.fs.rm(self.path, recursive=True)


def location(path: str | os.PathLike[str] | URIPath) -> Path | URIPath:
    """``path`` as a ``Path``, or a :class:`URIPath` when it is a URI."""
    if isinstance(path, URIPath):
        return path
    if is_uri(path):
        return URIPath(str(path))
    return Path(path)


def open_binary(path: Path | URIPath):
    """A binary file object reading ``path``, decompressed when the name ends in ``.gz``."""
    import gzip

    if isinstance(path, Path):
        return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")
    raw = path.open("rb")
    if not path.name.endswith(".gz"):
        return raw
    fh = gzip.GzipFile(fileobj=raw, mode="rb")
    fh.myfileobj = raw  # closed with the gzip stream, as gzip.open does for the file it opens
    return fh


def parquet_file(path: str | os.PathLike[str] | URIPath):
    """``pyarrow.parquet.ParquetFile`` of a path or URI (a URI through a pyarrow filesystem, so a reader
    of some row groups fetches those byte ranges only)."""
    import pyarrow.parquet as pq

    loc = location(path)
    if isinstance(loc, Path):
        return pq.ParquetFile(loc)
    arrow_fs, p = loc.arrow()
    return pq.ParquetFile(arrow_fs.open_input_file(p))


def open_output(dest: str | os.PathLike[str]):
    """A binary output stream to ``dest`` (a local path, or a URI through a pyarrow filesystem)."""
    loc = location(dest)
    if isinstance(loc, Path):
        return open(loc, "wb")
    arrow_fs, p = loc.arrow()
    return arrow_fs.open_output_stream(p)


def output_location(out: str | os.PathLike[str]) -> Path | URIPath:
    """``--out`` as a location; a URI whose protocol has no driver is a usage error naming it."""
    if is_uri(out):
        fs, p = resolve(str(out), what="--out")
        return URIPath(str(out), fs, p)
    return Path(out)


OUTPUT_ORDER = ("records.parquet", "summary.md", "summary.json")  # summary.json last: the completion marker


def publish(staged: Path, out: URIPath, *, records: URIPath | None = None) -> None:
    """Put the finished outputs of a scan under ``out``: remove the old ``summary.json`` (so no reader
    takes the old marker for the new data), replace ``records.parquet`` (the local file or folder in
    ``staged``, or ``records``, a folder the Ray workers wrote on the same filesystem), then
    ``summary.md``, then ``summary.json``."""
    out.makedirs()
    (out / "summary.json").remove()
    for name in OUTPUT_ORDER:
        dst = out / name
        if name == "records.parquet":
            dst.remove()
            if records is not None:
                if records.exists():  # an object store has no empty folders: no parts, nothing to move
                    out.fs.mv(records.path, dst.path, recursive=True)
                continue
        src = staged / name
        if src.is_dir():
            out.fs.put(str(src), dst.path, recursive=True)
        else:
            out.fs.put_file(str(src), dst.path)


def read_parquet_frames(path: Path | URIPath) -> Any:
    """``records.parquet`` of a scan (a file, or a folder of parts in input order) as one polars frame."""
    import polars as pl

    if isinstance(path, Path):
        if path.is_dir():
            return pl.concat([pl.read_parquet(f) for f in sorted(path.glob("*.parquet"))], how="vertical")
        return pl.read_parquet(path)
    files = path.glob("*.parquet") if path.is_dir() else [path]

    def read(f: URIPath) -> pl.DataFrame:
        with f.open("rb") as fh:
            return pl.read_parquet(fh)

    return pl.concat([read(f) for f in files], how="vertical")


__all__ = ["URIPath", "is_uri", "location", "open_binary", "open_output", "output_location", "parquet_file",
           "publish", "read_parquet_frames", "resolve"]
