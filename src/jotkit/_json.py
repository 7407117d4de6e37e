"""Strict JSON for untrusted token parts (RFC 7519 §7.2, RFC 8259, RFC 7515 §5.2).

Input must be UTF-8 (no BOM, no UTF-16/32 sniffing); duplicate member names,
``NaN``/``Infinity`` and numbers too large to represent are rejected, and
nesting depth errors become clean rejections.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

__all__ = ["dumps", "loads_object"]


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise ValueError(f"duplicate member name {name!r}")
            seen.add(name)
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]} is out of range")
    return value


_DECODER = json.JSONDecoder(
    object_pairs_hook=_no_duplicates, parse_constant=_no_constant, parse_float=_finite_float
)
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False, ensure_ascii=True)
_decode = _DECODER.decode
#: The same decoder without the duplicate-member hook: C builds the dicts directly. Used
#: only where :func:`_no_duplicates_proved` shows from the text that no object can have
#: repeated a name; the hooked decoder parses everything else.
_PLAIN = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite_float)
# The C scanners: no whitespace handling, so only a fast path (see loads_object).
_scan: Callable[[str, int], tuple[Any, int]] = _PLAIN.scan_once  # type: ignore[attr-defined]


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _check_scalars(value: Any) -> None:
    """Refuse lone UTF-16 surrogates, which I-JSON forbids (RFC 7493 §2.1)."""
    if type(value) is str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("a string holds a lone UTF-16 surrogate") from None
    elif type(value) is dict:
        for name, item in value.items():
            _check_scalars(name)
            _check_scalars(item)
    elif type(value) is list:
        for item in value:
            _check_scalars(item)


def loads_object(data: bytes) -> dict[str, Any]:
    """Parse strict UTF-8 JSON whose top level must be an object; duplicate member names,
    ``NaN``/``Infinity``, lone surrogates and out-of-range numbers are refused (RFC 8259,
    RFC 7493, RFC 7515 §5.2).

    Raises ``ValueError`` with a short reason on anything else.
    """
    try:
        text = data.decode("utf-8")
        try:  # the C scanner first (no whitespace handling), the full decoder for the rest
            obj, end = _scan(text, 0)
        except StopIteration:  # leading whitespace or invalid: the decoder explains
            obj, end = None, -1
        # The plain scan is kept only with a proof from the text that no object repeats a
        # member name (RFC 7515 §5.2, RFC 8725 §3.3), a few C-level scans:
        # * no backslash: every '"' delimits a string, and string contents are raw (so
        #   there is no escaped lone surrogate either);
        # * no tab, CR or LF (strict JSON has none raw inside strings) and no '"' followed
        #   by a space: each member name is directly followed by its ':';
        # * then '":' occurs once per member written, in any object, plus once per string
        #   that starts with ':'; equal to len(obj), the top object's distinct names, it
        #   leaves no room for a repeated name nor for a member of a nested object.
        if (
            end == len(text)
            and type(obj) is dict
            and "\\" not in text
            and text.count('":') == len(obj)
            and "\t" not in text
            and "\n" not in text
            and "\r" not in text
            and '" ' not in text
        ):
            return obj
        obj = _decode(text)  # the hooked decoder: duplicates, whitespace, escapes, the rest
    except UnicodeDecodeError as exc:
        raise ValueError("not UTF-8") from exc
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc
    except ValueError as exc:  # JSONDecodeError, duplicates, constants, int digit limit
        raise ValueError(f"invalid JSON: {exc}") from exc
    if type(obj) is not dict:
        raise ValueError("JSON value is not an object")
    if "\\" in text and _SURROGATE_ESCAPE.search(text):  # escapes are the only way in
        try:
            _check_scalars(obj)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None
    return obj


def dumps(obj: Any) -> bytes:
    """Serialize compactly; non-finite numbers are refused (``ValueError``)."""
    return _ENCODER.encode(obj).encode("ascii")
