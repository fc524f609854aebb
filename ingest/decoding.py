"""Request bodies: Content-Encoding gzip, deflate (zlib-wrapped or raw) and br, with a cap on
the decompressed size, so a small compression bomb is refused before it costs memory."""

from __future__ import annotations

import zlib

import brotli


class BodyTooLarge(ValueError):
    pass


class BadEncoding(ValueError):
    pass


_GZIP_MAGIC = b"\x1f\x8b"
_MAX_GZIP_MEMBERS = 10_000  # `cat a.gz b.gz` makes a few; 20 MB of empty ones cost ~0.1 s
_MEMBER_SLICE = 64 * 1024  # input per call after the first member: see _inflate


def _inflate(data: bytes, wbits: int, limit: int) -> bytes:
    """The whole body: every member of a multi-member gzip body (RFC 1952), the decompressed
    size capped over all of them; bytes after the end that are not another member are an
    error, not silently dropped."""
    name = _name(wbits)
    view = memoryview(data)
    parts: list[bytes] = []
    size = members = start = 0
    while True:
        members += 1
        if members > _MAX_GZIP_MEMBERS:
            raise BadEncoding(f"the gzip body has more than {_MAX_GZIP_MEMBERS} members")
        inflater = zlib.decompressobj(wbits)
        pos = start
        pending: bytes | memoryview = b""
        while not inflater.eof:
            if not pending:
                if pos >= len(data):
                    raise BadEncoding(f"the {name} body is truncated")
                # The first member gets the whole body in one call (the usual, single-member
                # case); later ones get slices, since each member's end copies what follows
                # it (unused_data), which over many small members would be quadratic.
                pending = view[pos:pos + _MEMBER_SLICE] if members > 1 else data
                pos += len(pending)
            try:
                piece = inflater.decompress(pending, limit - size + 1)
            except zlib.error as exc:
                raise BadEncoding(f"the body is not valid {name} data: {exc}") from None
            size += len(piece)
            if size > limit:
                raise BodyTooLarge(f"the decompressed body exceeds {limit} bytes")
            parts.append(piece)
            pending = inflater.unconsumed_tail
        start = pos - len(inflater.unused_data)
        if start >= len(data):
            return parts[0] if len(parts) == 1 else b"".join(parts)
        if wbits <= 15 or data[start:start + 2] != _GZIP_MAGIC:
            trailing = f"the {name} body has {len(data) - start} bytes after the end of its data"
            raise BadEncoding(trailing + (" that are not another gzip member" if wbits > 15
                                          else ""))


def _name(wbits: int) -> str:
    return "gzip" if wbits > 15 else "deflate"


_BROTLI_SLICE = 64 * 1024  # output per call: a bomb is caught after at most this much more


def _brotli(data: bytes, limit: int) -> bytes:
    decompressor = brotli.Decompressor()
    out = bytearray()

    def take(piece: bytes) -> None:
        out.extend(piece)
        if len(out) > limit:
            raise BodyTooLarge(f"the decompressed body exceeds {limit} bytes")

    try:
        # Bounded output per call: one small slice of input can expand to gigabytes.
        for start in range(0, len(data), 16384):
            take(decompressor.process(data[start:start + 16384],
                                      output_buffer_limit=_BROTLI_SLICE))
            while not decompressor.can_accept_more_data():
                take(decompressor.process(b"", output_buffer_limit=_BROTLI_SLICE))
        while not decompressor.is_finished():  # output still held back by the bound
            piece = decompressor.process(b"", output_buffer_limit=_BROTLI_SLICE)
            if not piece:
                break
            take(piece)
    except brotli.error as exc:
        raise BadEncoding(f"the body is not valid brotli data: {exc}") from None
    if not decompressor.is_finished():
        raise BadEncoding("the brotli body is truncated")
    return bytes(out)


def decode_body(data: bytes, content_encoding: str | None, limit: int) -> bytes:
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        if len(data) > limit:
            raise BodyTooLarge(f"the body exceeds {limit} bytes")
        return data
    if encoding in ("gzip", "x-gzip"):
        return _inflate(data, 16 + zlib.MAX_WBITS, limit)
    if encoding == "deflate":
        # RFC says zlib-wrapped; some clients send raw deflate. The first byte tells which.
        zlib_wrapped = (
            len(data) >= 2 and (data[0] & 0x0F) == 8 and (data[0] << 8 | data[1]) % 31 == 0
        )
        return _inflate(data, zlib.MAX_WBITS if zlib_wrapped else -zlib.MAX_WBITS, limit)
    if encoding == "br":
        return _brotli(data, limit)
    raise BadEncoding(
        f"unsupported Content-Encoding {content_encoding!r}; use gzip, deflate, br or none"
    )
