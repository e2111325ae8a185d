"""Guarded input streams: decompressed-size and line-length limits, and the text encoding, enforced
while bytes are read, before any parser sees them.

A 1 MB ``.gz`` can expand to 1 GB, and a line without a newline makes a line splitter buffer all of
it. Every reader of ``curate.io`` pulls its bytes through :class:`GuardedStream`, which counts the
decompressed bytes and the length of the current line as they pass and raises at the first byte
past a limit, so no limit can be exceeded by more than one read block. The same pass checks UTF-8
(or transcodes from ``encoding``), which turns a latin-1 file into an error naming its line instead
of invalid strings reaching Arrow and polars.
"""

from __future__ import annotations

import codecs
import gzip
import io
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Annotated

from pydantic import AfterValidator

from curate.errors import InputError

READ_BYTES = 1 << 20  # what one read pulls from the decompressor: the most a limit can be overshot by


class LimitExceeded(InputError):
    """Input larger than a configured limit: HTTP 413; the details name the limit and its value."""

    code = "payload_too_large"


@dataclass(frozen=True)
class ReadLimits:
    """``None`` = unlimited. The server sets both (``CURATE_MAX_UPLOAD_EXPANDED_BYTES``,
    ``CURATE_MAX_RECORD_BYTES``); a local ``curate ingest`` sets them only when asked."""

    max_expanded_bytes: int | None = None  # bytes after decompression (the whole file)
    max_record_bytes: int | None = None  # bytes of one line (JSONL, CSV) or one text (Parquet)


def check_encoding(name: str) -> str:
    """The codec's canonical name; a clear error for one Python does not know."""
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):  # ValueError: an embedded NUL
        raise InputError(f"unknown encoding '{name}'", field="encoding") from None
    if not getattr(info, "_is_text_encoding", True):  # base64, zlib, rot13: codecs, but not of text
        raise InputError(f"'{name}' is not a text encoding", field="encoding")
    return info.name


def _valid_encoding(name: str) -> str:
    try:
        return check_encoding(name)
    except InputError as exc:
        raise ValueError(exc.message) from None


Encoding = Annotated[str, AfterValidator(_valid_encoding)]  # a pydantic field type: the canonical codec name


def too_long(path: Path | str, line: int | None, limit: int, what: str = "line") -> LimitExceeded:
    return LimitExceeded(
        f"{what} is longer than the limit of {limit} bytes (max_record_bytes: CURATE_MAX_RECORD_BYTES on the "
        "server, --max-record-bytes for curate ingest)",
        file=str(path),
        line=line,
        details={"limit": "max_record_bytes", "limit_bytes": limit},
    )


def expanded_too_large(path: Path | str, limit: int) -> LimitExceeded:
    return LimitExceeded(
        f"decompressed input exceeds the limit of {limit} bytes (max_expanded_bytes: "
        "CURATE_MAX_UPLOAD_EXPANDED_BYTES on the server, --max-expanded-bytes for curate ingest)",
        file=str(path),
        details={"limit": "max_expanded_bytes", "limit_bytes": limit},
    )


class GuardedStream(io.RawIOBase):
    """Decompressed (and, if needed, transcoded) bytes of a file, in UTF-8, under :class:`ReadLimits`.

    ``fraction`` is the share of the file on disk consumed so far (for progress and ETA).
    """

    def __init__(self, path: Path, compression: str | None, limits: ReadLimits, encoding: str = "utf-8") -> None:
        super().__init__()
        self.path, self.limits = path, limits
        self._disk = open(path, "rb")  # noqa: SIM115 — closed in close()
        self._size = max(path.stat().st_size, 1)
        self._raw = self._decompressor(compression)
        codec = check_encoding(encoding)
        self._decoder = None if codec == "utf-8" else codecs.getincrementaldecoder(codec)("strict")
        self._pending = b""  # bytes of an incomplete UTF-8 character at the end of the last read
        self._out = b""  # transcoded bytes not yet handed out
        self.expanded = 0  # decompressed bytes read
        self.lines = 0  # newlines handed out
        self._line_bytes = 0  # bytes of the current (unfinished) line
        self._eof = False

    def _decompressor(self, compression: str | None) -> IO[bytes]:
        if compression == "gzip":
            return gzip.GzipFile(fileobj=self._disk, mode="rb")
        if compression == "zstd":
            import zstandard

            return zstandard.ZstdDecompressor().stream_reader(self._disk, closefd=False)
        return self._disk

    @property
    def fraction(self) -> float:
        try:
            return min(self._disk.tell() / self._size, 1.0)
        except (OSError, ValueError):
            return 1.0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        """Exactly ``size`` bytes unless the file ends first: Arrow's CSV reader takes each read as a block."""
        if size is None or size < 0:
            size = READ_BYTES
        parts, have = [], 0
        while have < size:
            if not self._out:
                if self._eof:
                    break
                self._out = self._next_block()
                continue
            part, self._out = self._out[: size - have], self._out[size - have :]
            parts.append(part)
            have += len(part)
        return b"".join(parts)

    def _next_block(self) -> bytes:
        raw = self._raw.read(READ_BYTES)
        if not raw:
            self._eof = True
        self.expanded += len(raw)
        limit = self.limits.max_expanded_bytes
        if limit is not None and self.expanded > limit:
            raise expanded_too_large(self.path, limit)
        data = self._decode(raw)
        self._check_lines(data)
        self.lines += data.count(b"\n")
        return data

    def _decode(self, raw: bytes) -> bytes:
        """UTF-8 out: checked as is (ASCII costs one ``isascii``), or transcoded from ``encoding``."""
        try:
            if self._decoder is not None:
                return self._decoder.decode(raw, final=self._eof).encode("utf-8")
            data = self._pending + raw
            if data.isascii():
                self._pending = b""
                return data
            _, used = codecs.utf_8_decode(data, "strict", self._eof)
            self._pending = data[used:]
            return data[:used]
        except UnicodeDecodeError as exc:
            before = exc.object[: exc.start]
            if self._decoder is None:
                column = exc.start - (before.rfind(b"\n") + 1) + 1
                what = f"not valid UTF-8 (byte 0x{exc.object[exc.start]:02x} at column {column})"
            else:
                before = before.decode(exc.encoding, "replace").encode("utf-8")
                what = f"not valid {exc.encoding}"
            raise InputError(
                f"{what}; pass --encoding with the file's encoding (e.g. latin-1, cp1252)",
                file=str(self.path),
                line=self.lines + before.count(b"\n") + 1,
            ) from None

    def _check_lines(self, data: bytes) -> None:
        """Raise when a line passes ``max_record_bytes``; one ``rfind`` hop per ``limit`` bytes."""
        limit = self.limits.max_record_bytes
        if limit is None:
            return
        first = data.find(b"\n")
        if first < 0:
            self._line_bytes += len(data)
            if self._line_bytes > limit:
                raise too_long(self.path, self.lines + 1, limit)
            return
        if self._line_bytes + first > limit:
            raise too_long(self.path, self.lines + 1, limit)
        pos, last = first + 1, data.rfind(b"\n")
        while last - pos > limit:  # some line between pos and last may be too long: hop newline to newline
            cut = data.rfind(b"\n", pos, pos + limit + 1)
            if cut < 0:
                raise too_long(self.path, self.lines + data.count(b"\n", 0, pos) + 1, limit)
            pos = cut + 1
        self._line_bytes = len(data) - last - 1
        if self._line_bytes > limit:
            raise too_long(self.path, self.lines + data.count(b"\n") + 1, limit)

    def close(self) -> None:
        if not self.closed:
            try:
                if self._raw is not self._disk:
                    self._raw.close()
            finally:
                self._disk.close()
        super().close()
