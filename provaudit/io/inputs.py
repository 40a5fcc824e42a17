"""Input arguments -> input files: glob patterns and folders of files expand to the data files they hold.

Both engines, ``scan``, ``register`` and the CLI take their inputs through :func:`expand_inputs`, so a
pattern or folder is exactly the list of its files given one by one (same dataset names, record ids
and summary):

* an argument that exists as given is taken literally (a file, or a ``datasets.save_to_disk`` folder),
  even if its name holds glob characters;
* a **glob pattern** (``*``, ``?``, ``[...]``; ``**`` matches folders recursively) expands to its
  matching data files; a matching folder expands as below (a file reached twice counts once);
* a **folder** that is not a ``save_to_disk`` folder expands to the data files under it, recursively
  (with ``--format datasets`` or ``hf_disk`` every folder, given or matched, is one input);
* the data files are those named ``*.jsonl``, ``*.ndjson``, ``*.json``, ``*.csv``, ``*.tsv``,
  ``*.parquet``, each also ``.gz``; names starting with ``.`` or ``_`` (``_SUCCESS``, ``_temporary/``,
  ``.cache/``) are skipped, files and folders alike, below the pattern's or folder's fixed part
  (the conventions of Spark, Hive and ``pyarrow.dataset``); a ``save_to_disk`` folder found inside
  stays one input;
* the files of one argument come sorted by path, component by component (``a/x`` before ``a-b/x``);
  arguments keep their order;
* a scan's own outputs are never inputs of a pattern or folder: ``scan`` excludes what it writes to
  ``--out`` (``records.parquet``, ``summary.json``, ``summary.md``) and the folders beside the catalog
  named after it (``catalog.duckdb.bands/``), so scanning ``data/`` again with ``--out data/scan``
  does not read the last scan's records.

A URI (``s3://bucket/x.jsonl``, :mod:`provaudit.io.fs`) is taken as given; a URI with glob characters
expands through its fsspec filesystem to the matching data files (same skip rules; a URI folder is not
walked).

``--name`` (``names``): one name per argument as typed, or one per expanded file. A name given to an
argument that expands to several files becomes the prefix of theirs: ``NAME/<path below the
pattern's or folder's fixed part, without the data suffixes>``, e.g. ``--name web 'shards/*.jsonl'``
gives ``web/part-0``, ``web/part-1``. Without names each file is named by its stem, as when listed.
"""
from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from provaudit.errors import InputError, UsageError
from provaudit.io.formats import is_save_to_disk
from provaudit.io.fs import is_uri, resolve

#: the names of data files a pattern or folder expands to (lower-cased; each may end in .gz as well)
DATA_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet")
GLOB_CHARS = frozenset("*?[")
#: formats that read a folder as one input (``--format datasets`` / ``hf_disk``): never expanded
FOLDER_FORMATS = ("hf_disk", "datasets")


@dataclass(frozen=True)
class InputPath:
    """One input file (or ``save_to_disk`` folder) and the dataset name given for it (None: its stem)."""

    path: str
    name: str | None = None


def is_data_file(name: str) -> bool:
    return name.lower().removesuffix(".gz").endswith(DATA_SUFFIXES)


def has_glob(arg: str) -> bool:
    return any(c in GLOB_CHARS for c in arg)


def _skipped(part: str) -> bool:
    return part.startswith((".", "_"))


def _sort_key(path: str) -> tuple[str, ...]:
    return Path(path).parts


class _Excluded:
    """Whether a path is one of some paths or lies in one of them (compared resolved)."""

    def __init__(self, folders: Sequence[str | Path]) -> None:
        self.folders = [Path(f).resolve() for f in folders]
        self.names = {f.name for f in self.folders}

    def __call__(self, path: str) -> bool:
        if not self.names.intersection(Path(path).parts):  # cheap: most paths resolve nothing
            return False
        p = Path(path).resolve()
        return any(p == f or f in p.parents for f in self.folders)


def _walk(folder: str, excluded: _Excluded) -> list[str]:
    """The data files and ``save_to_disk`` folders under ``folder`` (not itself one), sorted."""
    found: list[str] = []
    for root, dirs, files in os.walk(folder):
        keep = []
        for d in dirs:
            if _skipped(d) or excluded(os.path.join(root, d)):
                continue
            if is_save_to_disk(Path(root) / d):
                found.append(os.path.join(root, d))
            else:
                keep.append(d)
        dirs[:] = keep
        found.extend(os.path.join(root, f) for f in files if not _skipped(f) and is_data_file(f)
                     and not excluded(os.path.join(root, f)))
    return sorted(found, key=_sort_key)


def _fixed_part(pattern: str) -> str:
    """The leading components of ``pattern`` without glob characters ("" for a relative pattern
    whose first component has them)."""
    parts = Path(pattern).parts
    fixed: list[str] = []
    for p in parts[:-1]:
        if has_glob(p):
            break
        fixed.append(p)
    return str(Path(*fixed)) if fixed else ""


def _below(path: str, base: str) -> tuple[str, ...]:
    return Path(os.path.relpath(path, base or ".")).parts


def _glob(pattern: str, fmt: str | None, excluded: _Excluded) -> list[str]:
    """The data files (and ``save_to_disk`` folders) ``pattern`` matches, folders expanded (unless ``fmt``
    reads a folder as one input), sorted."""
    base = _fixed_part(pattern)
    found: dict[str, None] = {}
    hf: dict[str, bool] = {}  # folder -> is a save_to_disk folder (a ** pattern meets each many times)
    for match in glob.glob(pattern, recursive=True):
        rel = _below(match, base)
        if any(_skipped(p) for p in rel) or excluded(match):
            continue
        # a match inside a save_to_disk folder (``data/**`` reaches its state.json) is that folder
        outer = next((a for a in _ancestors(match, base) if _hf_folder(a, hf)), None)
        if outer is not None:
            found[outer] = None
        elif os.path.isdir(match):
            if fmt in FOLDER_FORMATS or is_save_to_disk(Path(match)):
                found[os.path.normpath(match)] = None
            else:
                found.update(dict.fromkeys(_walk(match, excluded)))
        elif is_data_file(os.path.basename(match)):
            found[os.path.normpath(match)] = None
    return sorted(found, key=_sort_key)


def _expand_uri(uri: str) -> list[str]:
    """A URI as given, or the data files a URI pattern (``s3://bucket/shards/*.jsonl``) matches through its
    fsspec filesystem, sorted, names starting with ``.`` or ``_`` skipped. A URI folder is not walked."""
    if not has_glob(uri):
        return [uri]
    fs, pattern = resolve(uri)
    files = sorted(fs.unstrip_protocol(m) for m in fs.glob(pattern)
                   if not any(_skipped(part) for part in m.split("/")[len(_fixed_part(pattern).split("/")):])
                   and is_data_file(m.rsplit("/", 1)[-1]) and not fs.isdir(m))
    if not files:
        raise InputError("the pattern matches no data files (*.jsonl, *.ndjson, *.json, *.csv, *.tsv, "
                         "*.parquet, or .gz of these; names starting with . or _ are skipped)", file=uri)
    return files


def _hf_folder(folder: str, seen: dict[str, bool]) -> bool:
    if folder not in seen:
        seen[folder] = is_save_to_disk(Path(folder))
    return seen[folder]


def _ancestors(path: str, base: str) -> list[str]:
    """The folders between ``base`` (excluded) and ``path`` (excluded), outermost first."""
    rel = _below(path, base)
    return [os.path.normpath(os.path.join(base, *rel[:k])) for k in range(1, len(rel))]


def _stem_below(path: str, base: str) -> str:
    rel = Path(*_below(path, base)).as_posix()
    low = rel.lower().removesuffix(".gz")
    for suffix in DATA_SUFFIXES:
        if low.endswith(suffix):
            return rel[: len(low) - len(suffix)]
    return rel


def expand_one(arg: str | Path, fmt: str | None = None,
               exclude: Sequence[str | Path] = ()) -> tuple[list[str], str]:
    """The input files of one argument and the fixed part they are named below, none in (or one of) the
    paths ``exclude``; raises ``InputError`` for a pattern that matches no data file or a folder that holds none."""
    arg = str(arg)
    if is_uri(arg):
        return _expand_uri(arg), ""
    excluded = _Excluded(exclude)
    if os.path.exists(arg):
        if os.path.isdir(arg) and fmt not in FOLDER_FORMATS and not is_save_to_disk(Path(arg)):
            files = _walk(arg, excluded)
            if not files:
                raise InputError("the folder holds no data files (*.jsonl, *.ndjson, *.json, *.csv, *.tsv, "
                                 "*.parquet, or .gz of these; names starting with . or _ are skipped) and is "
                                 "not a datasets.save_to_disk folder", file=arg)
            return files, arg
        return [arg], os.path.dirname(arg)
    if has_glob(arg):
        files = _glob(arg, fmt, excluded)
        if not files:
            raise InputError("the pattern matches no data files (*.jsonl, *.ndjson, *.json, *.csv, *.tsv, "
                             "*.parquet, or .gz of these; names starting with . or _ are skipped)", file=arg)
        return files, _fixed_part(arg)
    raise InputError("no such file or directory", file=arg)


def expand_inputs(args: Sequence[str | Path], names: Sequence[str] | None = None, fmt: str | None = None,
                  exclude: Sequence[str | Path] = ()) -> list[InputPath]:
    """Every input file of ``args`` in order, each with its dataset name (module docstring for the rules);
    patterns and folders leave out the paths ``exclude`` and what lies in them."""
    if not args:
        raise UsageError("no input files")
    expanded = [expand_one(a, fmt, exclude) for a in args]
    total = sum(len(files) for files, _ in expanded)
    if not names:
        return [InputPath(f) for files, _ in expanded for f in files]
    if len(names) == total:
        flat = [f for files, _ in expanded for f in files]
        return [InputPath(f, n) for f, n in zip(flat, names)]
    if len(names) == len(args):
        out = []
        for name, (files, base) in zip(names, expanded):
            if len(files) == 1:
                out.append(InputPath(files[0], name))
            else:
                out.extend(InputPath(f, f"{name}/{_stem_below(f, base)}") for f in files)
        return out
    per = "" if total == len(args) else f" ({total} files)"
    raise UsageError(f"--name given {len(names)} times for {len(args)} inputs{per}: give one per input "
                     "argument or one per file")


__all__ = ["DATA_SUFFIXES", "InputPath", "expand_inputs", "expand_one", "is_data_file"]
