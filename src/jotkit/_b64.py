"""Canonical base64url without padding (RFC 7515 §2, RFC 4648 §5).

Decoding is strict: only the URL-safe alphabet, no padding, no whitespace,
and no stray bits in the final character (RFC 4648 §3.5), so that every byte
string has exactly one accepted encoding.
"""

from __future__ import annotations

import binascii
import re

__all__ = [
    "B64_SEGMENT",
    "b64decode",
    "b64encode",
    "b64encode_ascii",
    "decode_unpadded",
    "decode_urlsafe",
    "is_canonical",
]

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
#: Characters allowed as the last one of a segment whose length is 2 (mod 4):
#: the low four bits must be zero. For 3 (mod 4) the low two bits must be zero.
_LAST_OK_2 = frozenset(_ALPHABET[i] for i in range(0, 64, 16))
_LAST_OK_3 = frozenset(_ALPHABET[i] for i in range(0, 64, 4))
#: By length (mod 4); 1 (mod 4) is never valid (a2b refuses it, so its set does not matter).
_LAST_OK: tuple[frozenset[str], ...] = (frozenset(), frozenset(), _LAST_OK_2, _LAST_OK_3)
B64_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")
_PAD = ("", "", "==", "=")
_a2b = binascii.a2b_base64
_b2a = binascii.b2a_base64


def is_canonical(segment: str) -> bool:
    """True when ``segment`` is canonical unpadded base64url text."""
    if B64_SEGMENT.fullmatch(segment) is None:
        return False
    return _tail_ok(segment)


def _tail_ok(segment: str) -> bool:
    rem = len(segment) & 3
    if rem == 0:
        return True
    if rem == 2:
        return segment[-1] in _LAST_OK_2
    if rem == 3:
        return segment[-1] in _LAST_OK_3
    return False  # a length of 1 (mod 4) can never be valid


def b64decode(segment: str) -> bytes:
    """Decode canonical base64url text; raise ``ValueError`` on anything else."""
    if not is_canonical(segment):
        raise ValueError("not canonical base64url")
    return _decode_checked(segment)


def _decode_checked(segment: str) -> bytes:
    """Decode text already known to be canonical (the hot path)."""
    # The alphabet and the tail were checked, so the lenient C decoder is exact here.
    try:
        return binascii.a2b_base64(
            segment.replace("-", "+").replace("_", "/") + _PAD[len(segment) & 3]
        )
    except binascii.Error as exc:  # pragma: no cover - excluded by the checks above
        raise ValueError("not base64url") from exc


def decode_unpadded(segment: str) -> bytes:
    """Decode canonical base64url text in one C pass; raise ``ValueError`` on anything else.

    The ``+`` and ``/`` of the standard alphabet are refused here; the rest of the checks
    are :func:`decode_urlsafe`'s.
    """
    if "+" in segment or "/" in segment:
        raise ValueError("not canonical base64url")
    return decode_urlsafe(segment)


def decode_urlsafe(segment: str) -> bytes:
    """:func:`decode_unpadded` for text already known to hold no ``+`` nor ``/`` (the hot
    path of token verification, which checks the whole token for them once).

    The ``-_`` to ``+/`` mapping, then ``a2b_base64`` in strict mode, which refuses every
    character outside the alphabet (whitespace, non-ASCII, misplaced ``=``) and a length
    of 1 (mod 4). What strict mode does not see is checked here beforehand: a trailing
    ``=`` (padding is not allowed, RFC 7515 §2) and stray bits in the last character
    (RFC 4648 §3.5). A ``+`` or ``/`` in ``segment`` would be taken as ``-`` or ``_``.
    """
    rem = len(segment) & 3
    if rem:
        if segment[-1] not in _LAST_OK[rem]:
            raise ValueError("not canonical base64url")
    elif segment and segment[-1] == "=":
        raise ValueError("not canonical base64url")
    try:
        return _a2b(segment.replace("-", "+").replace("_", "/") + _PAD[rem], strict_mode=True)
    except ValueError:  # binascii.Error, or non-ASCII text
        raise ValueError("not canonical base64url") from None


def b64encode(data: bytes) -> str:
    """Encode bytes as unpadded base64url text."""
    return b64encode_ascii(data).decode("ascii")


def b64encode_ascii(data: bytes) -> bytes:
    """:func:`b64encode` as ASCII bytes: one C encode, then the URL-safe alphabet."""
    return _b2a(data).rstrip(b"=\n").replace(b"+", b"-").replace(b"/", b"_")
