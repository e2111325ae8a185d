"""Atomic writes, locks and leftover sweeping; the streaming readers live in ``curate.readers``
(re-exported here: ``from curate.io import read_chunks`` keeps working).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from curate.readers import JSONL_SUFFIXES, Chunk, detect_format, read_chunks

__all__ = [
    "JSONL_SUFFIXES",
    "LEFTOVER_PREFIXES",
    "Chunk",
    "atomic_path",
    "detect_format",
    "locked",
    "read_chunks",
    "sweep_leftovers",
    "write_json",
]


# --- Atomic writes -----------------------------------------------------------------------------


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def atomic_path(dest: str | Path, *, directory: bool = False, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temp path beside ``dest``; rename it into place only if the block succeeds.

    A crash, an error or Ctrl-C leaves at most a ``.tmp-*`` sibling, never a half artifact under
    the real name. With ``overwrite=False`` an existing ``dest`` wins (content-addressed artifacts).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".tmp-{dest.name}-{uuid.uuid4().hex[:10]}"
    if directory:
        tmp.mkdir()
    try:
        yield tmp
        if dest.exists():
            if not overwrite:
                _remove(tmp)
                return
            if directory:
                old = dest.parent / f".old-{dest.name}-{uuid.uuid4().hex[:10]}"
                os.replace(dest, old)
                os.replace(tmp, dest)
                _remove(old)
                return
        os.replace(tmp, dest)
    except BaseException:
        _remove(tmp)
        raise


@contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if missing) for a read-modify-write that
    other processes and threads also do: each opens its own descriptor, so flock serialises them."""
    import fcntl

    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


LEFTOVER_PREFIXES = (".tmp-", ".old-")  # what atomic_path leaves behind when its process is killed


def sweep_leftovers(root: str | Path, older_than_s: float = 24 * 3600) -> list[Path]:
    """Remove the ``.tmp-*`` / ``.old-*`` entries ``atomic_path`` leaves after a ``kill -9``.

    Only those untouched for ``older_than_s`` (newest mtime anywhere inside): a live writer keeps
    adding files to its temp folder, and a stage that computes for hours without writing is rare
    enough that a day's margin covers it. Returns what was removed.
    """
    import time

    cutoff = time.time() - older_than_s
    removed: list[Path] = []
    for parent, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            if not name.startswith(LEFTOVER_PREFIXES):
                continue
            path = Path(parent) / name
            try:
                newest = max(
                    [path.lstat().st_mtime]
                    + [(Path(p) / f).lstat().st_mtime for p, _d, fs in os.walk(path) for f in fs]
                )
            except OSError:  # gone meanwhile
                continue
            if newest < cutoff:
                _remove(path)
                removed.append(path)
        dirs[:] = [d for d in dirs if not d.startswith(LEFTOVER_PREFIXES)]
    return removed


def write_json(path: str | Path, obj: object) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
