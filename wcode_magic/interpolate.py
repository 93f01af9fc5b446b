"""Fill ``{name}`` and ``{name.attr}`` in a prompt from the user's namespace, once, and leave other braces alone.

Prompts are full of braces that are not placeholders: pasted code with dict literals and f-strings, JSON
examples. ``str.format`` fails on those (jupyter-ai's ``{}`` problem), so only a brace pair holding a dotted name
that exists in the namespace is replaced; anything else stays exactly as written. ``{{x}}`` gives a literal
``{x}``. The text is scanned in one pass, so a substituted value that itself contains braces is never expanded
again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_NAME = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_TOKEN = re.compile(
    r"\{\{(?P<literal>[^{}]*)\}\}"  # {{...}}: literal braces around the inside
    rf"|\{{(?P<name>{_NAME})(?:!(?P<conv>[rsa]))?(?::(?P<spec>[^{{}}]*))?\}}"  # {name.attr!r:spec}
)
_CONVERSIONS = {"r": repr, "s": str, "a": ascii}
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


def interpolate(text: str, namespace: Mapping[str, Any]) -> str:
    """``text`` with known ``{name}``/``{name.attr}`` fields filled and ``{{...}}`` unescaped; the rest unchanged."""

    def replace(m: re.Match[str]) -> str:
        literal = m.group("literal")
        if literal is not None:
            return "{" + literal + "}"
        value = lookup(m.group("name"), namespace)
        if value is _MISSING:
            return m.group(0)
        try:
            if m.group("conv"):
                value = _CONVERSIONS[m.group("conv")](value)
            return format(value, m.group("spec") or "")
        except Exception:  # e.g. a format spec that does not fit the value: leave the field as written
            return m.group(0)

    return _TOKEN.sub(replace, text)
