"""Compression bombs and a process's memory, for tests/test_api_limits.py and benchmarks/api_upload.py."""

from __future__ import annotations

import gzip
from pathlib import Path

import zstandard

MIB = b"a" * (1 << 20)


def proc_bytes(pid: int, key: str = "VmRSS") -> int:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def reset_peak(pid: int) -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux ``clear_refs``); False where that is not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def one_line_gz(mib: int) -> bytes:
    """A JSONL whose second line is ``mib`` MiB long, as repeated gzip members (≈1000:1)."""
    return gzip.compress(b'{"text": "fine"}\n{"text": "') + gzip.compress(MIB, 9) * mib + gzip.compress(b'"}\n')


def many_lines_gz(mib: int) -> bytes:
    """``mib`` MiB of one short JSONL record repeated (≈330:1)."""
    line = b'{"text": "the same short record, again and again"}\n'
    return gzip.compress(line * ((1 << 20) // len(line)), 9) * mib


def one_line_csv_zst(mib: int) -> bytes:
    """A CSV whose second data row is one ``mib`` MiB value without a newline, as zstd."""
    out = zstandard.ZstdCompressor(level=3)
    return out.compress(b"id,text\na,fine\nb,") + b"".join(out.compress(MIB) for _ in range(mib))
