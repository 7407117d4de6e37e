"""A response head checked and encoded once (RFC 9112 §4, RFC 9110 §5): forward-auth's reused
answers carry one for its protocol (:mod:`jotkit.edge._protocol`). No dependencies: the app
stays usable under any ASGI server, which ignores the extension key."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus

__all__ = ["PREPARED_HEAD", "PreparedHead", "prepare_head"]

#: The ``http.response.start`` key holding a :class:`PreparedHead` (an extension key: other
#: servers ignore it).
PREPARED_HEAD = "jotkit.prepared_head"

# RFC 9110 §5.1: field-name = token (lower case, as HTTP/2 and uvicorn send it);
# §5.5: a field value of visible ASCII, space and tab (stricter than obs-text allows)
_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")
_VALUE = re.compile(rb"[\t\x20-\x7e]*")
_FRAMING = frozenset({b"connection", b"transfer-encoding"})


@dataclass(frozen=True, slots=True)
class PreparedHead:
    """A response's status line and header block, checked and encoded once
    (:func:`prepare_head`); ``content_length`` is its ``Content-Length`` (RFC 9110 §8.6)."""

    status_line: bytes
    block: bytes
    content_length: int


def prepare_head(status: int, headers: Sequence[tuple[bytes, bytes]]) -> PreparedHead:
    """Check and encode a response head once (RFC 9112 §4, RFC 9110 §5).

    ``headers`` must hold one ``content-length`` and no ``connection`` or
    ``transfer-encoding`` (the protocol decides those); names are lower-cased. A name that
    is not a token or a value with a control character raises ``ValueError``.
    """
    phrase = HTTPStatus(status).phrase.encode("ascii")
    lines: list[bytes] = []
    length: int | None = None
    for raw_name, value in headers:
        name = raw_name.lower()
        if not _NAME.fullmatch(name) or not _VALUE.fullmatch(value):
            raise ValueError(f"invalid response header {raw_name!r}")
        if name in _FRAMING:
            raise ValueError(f"{raw_name!r} is decided by the protocol, not a prepared head")
        if name == b"content-length":
            if length is not None or not value.isdigit():
                raise ValueError("one numeric content-length is required")
            length = int(value)
        lines.append(name + b": " + value + b"\r\n")
    if length is None:
        raise ValueError("a prepared head needs a content-length")
    return PreparedHead(b"HTTP/1.1 %d %s\r\n" % (status, phrase), b"".join(lines), length)
