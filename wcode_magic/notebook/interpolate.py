"""Fill ``{name}`` and ``{name.attr}`` in a prompt from the user's namespace, once, and leave other braces alone.

Prompts are full of braces that are not placeholders: pasted code with dict literals and f-strings, JSON
examples. ``str.format`` fails on those (jupyter-ai's ``{}`` problem), so the rules are ``str.format``'s where it
would succeed, and "leave it as written" where it would fail:

- ``{{`` gives ``{`` and ``}}`` gives ``}``, as in ``str.format`` (``{{x}}`` -> ``{x}``, ``{{{x}}}`` -> ``{42}``).
  This includes template syntax such as Jinja's ``{{ var }}`` (sent as ``{ var }``): ``--no-interpolate`` sends
  such a prompt exactly as written.
- ``{name}``, ``{name.attr}``, with ``!r``/``!s``/``!a`` and a format spec, is filled when the name exists in the
  namespace; otherwise (and when the spec does not fit the value) it stays as written.
- Any other brace pair (``{}``, a dict literal, JSON, a code block) stays as written, nested braces and all: a
  ``}}`` that closes two nested objects is not an escape. Known ``{name}`` fields inside it are still filled
  (``{"value": {x}}`` -> ``{"value": 42}``), but not a doubled ``{{name}}`` there, which is template text in an
  example (``{"greeting": "Hi {{name}}"}`` stays as written). A brace that never closes stays as written.

The text is scanned in one pass, so a substituted value that itself contains braces is never expanded again.

A placeholder whose value holds an API key the session knows (``{os.environ}``, a config object) is refused,
naming the placeholder: the prompt goes to the server and into the history, and a key must reach neither.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..core.errors import InvalidParameterError
from ..core.keys import Secret

_NAME = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_FIELD = re.compile(rf"\{{(?P<name>{_NAME})(?:!(?P<conv>[rsa]))?(?::(?P<spec>[^{{}}]*))?\}}")  # {name.attr!r:spec}
_PLAIN = re.compile(r"[^{}]+")
_CONVERSIONS: dict[str, Callable[[object], str]] = {"r": repr, "s": str, "a": ascii}
_MISSING = object()


def lookup(dotted: str, namespace: Mapping[str, Any]) -> Any:
    """The value of ``a.b.c`` in ``namespace`` (attributes after the first name), or ``_MISSING``."""
    first, *attrs = dotted.split(".")
    if first not in namespace:
        return _MISSING
    value = namespace[first]
    for attr in attrs:
        try:
            value = getattr(value, attr)
        except Exception:  # a property that raises is "not a placeholder", not a crash
            return _MISSING
    return value


def _fill(m: re.Match[str], namespace: Mapping[str, Any], secrets: Sequence[Secret]) -> str:
    """One ``{name...}`` field filled, or as written when the name is unknown or the spec does not fit;
    InvalidParameterError when the filled text would hold one of ``secrets``."""
    value = lookup(m.group("name"), namespace)
    if value is _MISSING:
        return m.group(0)
    try:
        if m.group("conv"):
            value = _CONVERSIONS[m.group("conv")](value)
        filled = format(value, m.group("spec") or "")
    except Exception:  # e.g. a format spec that does not fit the value: leave the field as written
        return m.group(0)
    if any(secret.scrub(filled) != filled for secret in secrets):
        raise InvalidParameterError(
            f"The placeholder {m.group(0)} was not filled: its value holds your API key, which would be sent to "
            "the server and kept in the history. Nothing was sent. Put only the values you mean in the prompt, "
            "or send it as written with --no-interpolate.",
            param="prompt",
            value=m.group(0),
        )
    return filled


def _block_end(text: str, start: int) -> int | None:
    """The index after the ``}`` that closes the ``{`` at ``start`` (braces nest; no escapes inside), or None."""
    depth = 0
    for i in range(start, len(text)):
        c = text[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


def interpolate(text: str, namespace: Mapping[str, Any], secrets: Sequence[Secret] = ()) -> str:
    """``text`` with known ``{name}``/``{name.attr}`` fields filled, ``{{``/``}}`` unescaped; the rest unchanged.

    InvalidParameterError, naming the placeholder, when a value would bring one of ``secrets`` into the text."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        plain = _PLAIN.match(text, i)
        if plain:
            out.append(plain.group(0))
            i = plain.end()
            continue
        if text.startswith(("{{", "}}"), i):  # str.format's escapes
            out.append(text[i])
            i += 2
            continue
        if text[i] == "}":  # a lone closing brace: as written
            out.append("}")
            i += 1
            continue
        field = _FIELD.match(text, i)
        if field:
            out.append(_fill(field, namespace, secrets))
            i = field.end()
            continue
        end = _block_end(text, i)
        if end is None:  # never closed: as written
            out.append("{")
            i += 1
            continue
        # a dict literal, JSON or code block: its braces are structure, only known fields inside are filled
        out.append(_fill_block(text[i:end], namespace, secrets))
        i = end
    return "".join(out)


def _fill_block(block: str, namespace: Mapping[str, Any], secrets: Sequence[Secret]) -> str:
    """Known ``{name}`` fields in a brace block filled; a doubled ``{{name}}`` (template syntax) is not a field."""

    def fill(m: re.Match[str]) -> str:
        start, end = m.start(), m.end()
        if start > 0 and block[start - 1] == "{" and end < len(block) and block[end] == "}":
            return m.group(0)
        return _fill(m, namespace, secrets)

    return _FIELD.sub(fill, block)
