"""Loader helpers for the published test vectors vendored under ``tests/vectors``.

The data files are byte-exact copies (or, for the RFC appendices, exact
transcriptions) of published material; see each folder's SOURCES.md.
"""

from __future__ import annotations

import base64
import json
from functools import cache
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).resolve().parent.parent / "vectors"


@cache
def load(relpath: str) -> Any:
    """Parse one vendored JSON vector file (cached: the files never change)."""
    return json.loads((VECTORS / relpath).read_text(encoding="utf-8"))


def b64u(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_decode(text: str) -> bytes:
    """Decode unpadded base64url (test-side, lenient: only for trusted vector data)."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def json_b64u(obj: Any) -> str:
    """Compact JSON of ``obj``, base64url-encoded."""
    return b64u(json.dumps(obj, separators=(",", ":")).encode("utf-8"))
