"""Sentry envelopes: a JSON header line, then items, each a JSON header line and a payload.

An item header may give the payload's `length` in bytes (binary payloads such as attachments
need it); without one the payload runs to the next newline. Payloads are kept as the bytes the
SDK sent: they are validated later, and stored as sent, so unknown fields survive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson


class EnvelopeError(ValueError):
    """The body is not a well-formed envelope; the message says where and why."""


@dataclass(frozen=True)
class EnvelopeItem:
    headers: dict[str, Any]
    payload: bytes

    @property
    def type(self) -> str:
        return str(self.headers.get("type", ""))


@dataclass(frozen=True)
class Envelope:
    headers: dict[str, Any]
    items: list[EnvelopeItem] = field(default_factory=list)


def _json_object(line: bytes, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise EnvelopeError(f"{what} must be a JSON object")
    return value


def parse_envelope(body: bytes, max_items: int = 1000) -> Envelope:
    if not body.strip():
        raise EnvelopeError("the envelope is empty")
    end = body.find(b"\n")
    header_line = body if end < 0 else body[:end]
    headers = _json_object(header_line, "the envelope header")
    pos = len(body) if end < 0 else end + 1
    items: list[EnvelopeItem] = []
    while pos < len(body):
        if body[pos:pos + 1] == b"\n":  # blank lines between items are tolerated
            pos += 1
            continue
        number = len(items) + 1
        if number > max_items:
            raise EnvelopeError(f"the envelope has more than {max_items} items")
        end = body.find(b"\n", pos)
        item_headers = _json_object(
            body[pos:] if end < 0 else body[pos:end], f"the header of item {number}"
        )
        if "type" not in item_headers:
            raise EnvelopeError(f"item {number} has no type")
        pos = len(body) if end < 0 else end + 1
        length = item_headers.get("length")
        if length is not None:
            if not isinstance(length, int) or isinstance(length, bool) or length < 0:
                raise EnvelopeError(f"item {number} has an invalid length {length!r}")
            if pos + length > len(body):
                raise EnvelopeError(
                    f"item {number} is truncated: its header says {length} bytes, "
                    f"{len(body) - pos} follow"
                )
            payload = body[pos:pos + length]
            pos += length
            if body[pos:pos + 1] == b"\n":
                pos += 1
        else:
            end = body.find(b"\n", pos)
            payload = body[pos:] if end < 0 else body[pos:end]
            pos = len(body) if end < 0 else end + 1
        items.append(EnvelopeItem(item_headers, payload))
    return Envelope(headers, items)
