"""What a request can carry: JSON a server can parse, and headers HTTP can transmit.

httpx finds out only while it encodes the request, and then says so in its own words: ``ValueError: Out of range
float values are not JSON compliant`` for a NaN deep inside ``tools``, ``UnicodeEncodeError`` for a lone surrogate
in a prompt, ``RecursionError`` for a self-referencing dict, ``LocalProtocolError`` (reported as an unreachable
server) for a newline in a header. These checks run before anything is sent and name the parameter and the place
inside it (``extra_body["a"][0]``), so the user can find the value to fix. Pure functions, no I/O.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from .errors import InvalidParameterError

# Deeper JSON than this is refused. serde_json (behind many Rust gateways and routers) stops at 128 levels, and the
# request body wraps a value in a few levels of its own (messages[0]["content"]); 100 leaves that room while no
# real tool schema or message list comes near it. It also keeps the walk well inside Python's recursion limit.
MAX_DEPTH = 100
# Integers outside a signed 64-bit range do not survive the servers' JSON parsers (llama.cpp, Go, JavaScript).
INT_MIN, INT_MAX = -(2**63), 2**63 - 1

JSON_VALUES = "JSON values (dict, list, str, int, float, bool or None)"
_SCALARS = (str, int, float, bool, type(None))


def check_json(value: Any, name: str) -> None:
    """Raise InvalidParameterError naming ``name`` and the path inside it if ``value`` cannot be sent as JSON.

    Refused: NaN and infinities (JSON has neither), lone surrogates in strings or keys (UTF-8 cannot encode them),
    integers beyond 64 bits, objects JSON has no form for (sets, bytes, numpy scalars other than float64), dict
    keys that are not str/int/float/bool/None, containers that contain themselves, and nesting deeper than
    MAX_DEPTH. Tuples pass: json sends them as arrays.
    """
    _walk(value, name, [], set())


def _walk(value: Any, name: str, path: list[str], open_: set[int]) -> None:
    if isinstance(value, str):
        _check_text(value, name, path)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise _error(name, path, value, "integers sent to a server must fit in 64 bits (-2**63 to 2**63-1)")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise _error(name, path, value, "JSON has no NaN or Infinity: give a finite number, or None")
    elif isinstance(value, (Mapping, list, tuple)):
        if id(value) in open_:
            raise _error(name, path, None, "it contains itself, so it has no JSON form", show=False)
        if len(path) >= MAX_DEPTH:
            raise _error(name, [*path[:3], "..."], None, f"JSON nested deeper than {MAX_DEPTH} levels", show=False)
        open_.add(id(value))
        items = value.items() if isinstance(value, Mapping) else enumerate(value)
        for key, item in items:
            if isinstance(value, Mapping):
                _check_key(key, name, path)
            _walk(item, name, [*path, _step(key)], open_)
        open_.discard(id(value))
    else:
        raise _error(name, path, value, f"a request carries only {JSON_VALUES}, not {type(value).__name__}")


def _check_key(key: Any, name: str, path: list[str]) -> None:
    if not isinstance(key, _SCALARS):
        raise _error(name, path, key, f"JSON object keys are strings (or numbers), not {type(key).__name__}")
    if isinstance(key, str):
        _check_text(key, name, [*path, _step(key)])
    elif isinstance(key, float) and not math.isfinite(key):
        raise _error(name, path, key, "JSON has no NaN or Infinity, not even as a key")


def _check_text(text: str, name: str, path: list[str]) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        char = text[e.start]
        raise _error(
            name,
            path,
            None,
            f"it holds a lone surrogate {char!r} at character {e.start}, which UTF-8 cannot encode (half of an "
            "emoji cut off, or bytes decoded with errors='surrogateescape'): remove it or decode the text again",
            show=False,
        ) from None


def _step(key: Any) -> str:
    """One step of a path as Python would index it: ``["a"]``, ``[0]``."""
    return f"[{json.dumps(key)}]" if isinstance(key, str) else f"[{key!r}]"


def _where(name: str, path: list[str]) -> str:
    return name + "".join(path)


def _error(name: str, path: list[str], value: Any, why: str, *, show: bool = True) -> InvalidParameterError:
    """The error for one bad place; ``show=False`` leaves the value out (too long, or unprintable as it is)."""
    where = _where(name, path)
    shown = f"={_short(value)}" if show else ""
    return InvalidParameterError(f"{where}{shown} is not allowed: {why}.", param=name, value=value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- headers ----------------------------------------------------------------------------------------------------
# RFC 9110 token characters: what a header name may consist of.
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def check_headers(headers: Any) -> dict[str, str]:
    """The extra headers as a dict, or InvalidParameterError naming the header and the character HTTP cannot carry.

    Values are never repeated in a message (a header may hold a key); only the offending character and where.
    Values must be ASCII without control characters: httpx encodes header values as ASCII, and CR, LF or NUL
    would split or end the header.
    """
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise InvalidParameterError(
            f"headers is not allowed as a {type(headers).__name__}: headers takes a dict of header names to "
            "string values, such as {'X-Title': 'my notebook'}.",
            param="headers",
        )
    out: dict[str, str] = {}
    for key, value in headers.items():
        if not isinstance(key, str) or not key or any(c not in _TOKEN for c in key):
            raise InvalidParameterError(
                f"headers key {_short(key)} is not allowed: a header name is a non-empty string of letters, "
                "digits and !#$%&'*+-.^_`|~ (no spaces or colons), such as 'X-Title'.",
                param="headers",
            )
        if not isinstance(value, str):
            raise InvalidParameterError(
                f"headers[{key!r}] is not allowed as a {type(value).__name__}: header values are strings.",
                param="headers",
            )
        bad = next((i for i, c in enumerate(value) if not (" " <= c <= "~" or c == "\t")), None)
        if bad is not None:
            raise InvalidParameterError(
                f"headers[{key!r}] is not allowed: it holds {value[bad]!r} at character {bad}, and HTTP header "
                "values carry printable ASCII only (no line breaks or control characters; percent-encode other "
                "text).",
                param="headers",
            )
        out[key] = value
    return out
