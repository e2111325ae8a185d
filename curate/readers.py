"""Streaming readers of JSONL, CSV (each also .gz / .zst) and Parquet.

Readers yield polars chunks with the source line (JSONL, CSV) or row (Parquet) of every record, so
validation can name the exact place of a bad record without ever holding the whole file. Their bytes
come through :class:`curate.streams.GuardedStream` (size and line limits, encoding).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from curate.errors import InputError
from curate.streams import GuardedStream, ReadLimits, check_encoding, expanded_too_large, too_long

try:
    from zstandard import ZstdError as _ZstdError
except ImportError:  # pragma: no cover — zstandard is a dependency
    _ZstdError = OSError

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
_WHITESPACE = np.array([9, 10, 13, 32], dtype=np.uint8)


@dataclass
class Chunk:
    frame: pl.DataFrame
    lines: np.ndarray  # int64, 1-based line (JSONL/CSV) or row (Parquet) of each record
    fraction: float = 0.0  # share of the file read so far (progress, ETA)


def detect_format(path: Path) -> tuple[str, str | None]:
    """(format, compression) from the file name; compression applies to JSONL and CSV."""
    name = path.name.lower()
    compression = None
    for ext, comp in ((".gz", "gzip"), (".zst", "zstd"), (".zstd", "zstd")):
        if name.endswith(ext):
            name, compression = name[: -len(ext)], comp
            break
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl", compression
    if name.endswith((".parquet", ".pq")) and compression is None:
        return "parquet", None
    if name.endswith(".csv"):
        return "csv", compression
    raise InputError("unsupported file type; expected .jsonl[.gz|.zst], .parquet or .csv[.gz|.zst]", file=str(path))


def read_chunks(
    path: str | Path,
    *,
    chunk_rows: int = 50_000,
    chunk_bytes: int = 16 << 20,
    text_field: str = "text",
    encoding: str = "utf-8",
    limits: ReadLimits | None = None,
) -> Iterator[Chunk]:
    """Stream any supported file as polars chunks of at most ``chunk_rows`` rows, read in blocks of
    ``chunk_bytes``; memory is bounded by one block (one record by ``limits.max_record_bytes``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", file=str(path))
    fmt, compression = detect_format(path)
    limits = limits or ReadLimits()
    check_encoding(encoding)
    if fmt == "jsonl":
        chunks = _read_jsonl(GuardedStream(path, compression, limits, encoding), chunk_bytes, text_field)
    elif fmt == "parquet":
        chunks = _read_parquet(path, chunk_rows, text_field, limits)
    else:
        chunks = _read_csv(path, compression, chunk_bytes, encoding, limits)
    for chunk in chunks:  # a block of short records holds 300k+ rows: validation's memory grows per row
        for start in range(0, chunk.frame.height, chunk_rows):
            end = start + chunk_rows
            yield Chunk(chunk.frame.slice(start, chunk_rows), chunk.lines[start:end], chunk.fraction)


# --- JSONL -------------------------------------------------------------------------------------


def _iter_line_blocks(stream: IO[bytes], block_bytes: int) -> Iterator[tuple[bytes, int]]:
    """Blocks of whole lines and the 1-based number of each block's first line.

    The carried partial line is bounded by the stream's ``max_record_bytes`` (GuardedStream raises
    before a longer line is complete), so a block is at most ``block_bytes`` + that limit.
    """
    carry, first_line = b"", 1
    while True:
        data = stream.read(block_bytes)
        if not data:
            if carry.strip():
                yield carry + b"\n", first_line
            return
        buf = carry + data
        cut = buf.rfind(b"\n")
        if cut < 0:
            carry = buf
            continue
        block, carry = buf[: cut + 1], buf[cut + 1 :]
        yield block, first_line
        first_line += block.count(b"\n")


def _nonblank_lines(block: bytes, first_line: int, n_records: int) -> np.ndarray:
    """Line numbers of the block's non-blank lines, which are the ones parsers turn into records.

    Blank lines are rare: when every line became a record, the answer is a plain range and the
    byte-level scan (the slowest step of reading) is skipped.
    """
    n_lines = block.count(b"\n")
    if n_records == n_lines:
        return np.arange(first_line, first_line + n_lines, dtype=np.int64)
    arr = np.frombuffer(block, dtype=np.uint8)
    newlines = np.flatnonzero(arr == 10)
    starts = np.concatenate(([0], newlines[:-1] + 1))
    visible = ~np.isin(arr, _WHITESPACE)
    per_line = np.add.reduceat(visible, starts, dtype=np.int64)
    return first_line + np.flatnonzero(per_line > 0).astype(np.int64)


def _locate_jsonl_error(path: Path, block: bytes, first_line: int, text_field: str) -> InputError | None:
    """Slow path, run only after a block failed to parse: find the first offending line."""
    for offset, raw in enumerate(block.split(b"\n")):
        if not raw.strip():
            continue
        line = first_line + offset
        try:
            obj = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return InputError(f"invalid JSON: {exc}", file=str(path), line=line)
        if not isinstance(obj, dict):
            return InputError(f"expected a JSON object, got {type(obj).__name__}", file=str(path), line=line)
        value = obj.get(text_field)
        if value is not None and not isinstance(value, str):
            return InputError(
                f"text must be a string, got {type(value).__name__}",
                file=str(path),
                line=line,
                field=text_field,
            )
    return None


def _read_jsonl(stream: GuardedStream, block_bytes: int, text_field: str) -> Iterator[Chunk]:
    path = stream.path
    schema = pa.schema([(text_field, pa.string())])
    parse = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer")
    with stream:
        try:
            for block, first_line in _iter_line_blocks(stream, block_bytes):
                if not block.strip():
                    continue
                read = pajson.ReadOptions(block_size=len(block) + 1)
                try:
                    frame = pl.from_arrow(pajson.read_json(io.BytesIO(block), read, parse))
                except pa.ArrowInvalid:
                    located = _locate_jsonl_error(path, block, first_line, text_field)
                    if located is not None:
                        raise located from None
                    # Only metadata columns disagree on type between records: polars is lenient there.
                    frame = pl.read_ndjson(io.BytesIO(block), infer_schema_length=None)
                lines = _nonblank_lines(block, first_line, frame.height)
                if frame.height != len(lines):
                    last = first_line + block.count(b"\n") - 1
                    raise InputError(
                        f"could not split lines {first_line}..{last} into one JSON object per line",
                        file=str(path),
                        line=first_line,
                    )
                yield Chunk(frame, lines, stream.fraction)
        except (OSError, EOFError, _ZstdError) as exc:  # truncated gzip/zstd, unreadable file
            raise InputError(f"cannot read file: {exc}", file=str(path)) from None


# --- Parquet -----------------------------------------------------------------------------------


def _read_parquet(path: Path, chunk_rows: int, text_field: str, limits: ReadLimits) -> Iterator[Chunk]:
    try:
        handle = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"not a readable Parquet file: {exc}", file=str(path)) from None
    meta = handle.metadata
    expanded = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if limits.max_expanded_bytes is not None and expanded > limits.max_expanded_bytes:
        raise expanded_too_large(path, limits.max_expanded_bytes)  # from the footer, before reading a page
    row, total = 1, max(meta.num_rows, 1)
    for batch in handle.iter_batches(batch_size=chunk_rows):
        if batch.num_rows == 0:
            continue
        if limits.max_record_bytes is not None and text_field in batch.schema.names:
            lengths = pc.binary_length(batch.column(text_field)).to_numpy(zero_copy_only=False)
            over = np.flatnonzero(np.nan_to_num(lengths.astype(float)) > limits.max_record_bytes)
            if len(over):
                raise too_long(path, row + int(over[0]), limits.max_record_bytes, "text")
        frame = pl.from_arrow(batch)
        yield Chunk(frame, np.arange(row, row + frame.height, dtype=np.int64), (row + frame.height - 1) / total)
        row += frame.height


# --- CSV ---------------------------------------------------------------------------------------


def _read_csv(
    path: Path, compression: str | None, block_bytes: int, encoding: str, limits: ReadLimits
) -> Iterator[Chunk]:
    def opened() -> GuardedStream:
        return GuardedStream(path, compression, limits, encoding)

    with opened() as stream:
        try:
            header = next(_csv_rows(stream), None)
        except csv.Error as exc:
            raise InputError(f"malformed CSV header: {exc}", file=str(path), line=1) from None
    if not header:
        raise InputError("empty CSV file (no header line)", file=str(path))
    # A row may straddle one block boundary, never two: a block of max_record_bytes admits every row the
    # limit admits, and Arrow's reader refuses a longer one before buffering it.
    block = max(block_bytes, limits.max_record_bytes or 0)
    options = dict(
        read_options=pacsv.ReadOptions(block_size=block),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header}, strings_can_be_null=False
        ),
    )
    row = 1
    try:
        with opened() as stream, pacsv.open_csv(stream, **options) as reader:
            for batch in reader:
                if batch.num_rows == 0:
                    continue
                frame = pl.from_arrow(batch)
                # Data row r sits on line r + 1 when no value spans lines (the header is line 1).
                yield Chunk(frame, np.arange(row + 1, row + 1 + frame.height, dtype=np.int64), stream.fraction)
                row += frame.height
    except pa.ArrowInvalid as exc:
        message = str(exc).splitlines()[0]
        if "straddl" in message:  # one record longer than a read block
            if limits.max_record_bytes is not None:
                raise too_long(path, row + 1, limits.max_record_bytes, "a CSV record after this line") from None
            raise InputError(
                f"a CSV record after this line is longer than the {block}-byte read block; raise chunk_bytes",
                file=str(path),
                line=row + 1,
            ) from None
        line = _locate_csv_error(opened(), len(header))
        raise InputError(f"malformed CSV: {message}", file=str(path), line=line) from None
    except (OSError, EOFError, _ZstdError) as exc:
        raise InputError(f"cannot read file: {exc}", file=str(path)) from None


def _csv_rows(stream: GuardedStream) -> Iterator[list[str]]:
    """Python's csv over the guarded bytes (header, and the slow path that locates an error)."""
    return csv.reader(io.TextIOWrapper(io.BufferedReader(stream), encoding="utf-8", newline=""))


def _locate_csv_error(stream: GuardedStream, width: int) -> int | None:
    """Slow path after a parse error: the line where the first row of the wrong width starts."""
    with stream:
        reader = _csv_rows(stream)
        start = 1
        try:
            for fields in reader:
                if fields and len(fields) != width:
                    return start
                start = reader.line_num + 1
        except csv.Error:
            return start
    return None
