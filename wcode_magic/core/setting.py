"""One session setting declared once: kind, bounds, default, help, and whether a cell may set it.

``Settings`` (core/settings.py) declares each of its fields with ``setting(...)``; the table ``SETTINGS`` is read off
those fields, and ``wm.configure``, ``wm.SESSION.update``, attribute assignment, ``%wcode set`` / ``unset``,
``%wcode help``, the panel's text boxes and the README reference all take their checks, parsers and words from it.
So a value gets one verdict whichever door it comes through (the reviewer found four copies that disagreed).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from . import catalog
from .errors import InvalidParameterError

Kind = Literal["text", "model", "url", "key", "seconds", "count", "bool", "cny"]

_BOOL_WORDS = {"true": True, "on": True, "yes": True, "1": True, "false": False, "off": False, "no": False, "0": False}


@dataclass(frozen=True)
class Setting:
    """How one session setting is checked, typed in a cell, and explained."""

    kind: Kind
    help: str
    min: float | None = None
    max: float | None = None
    none_ok: bool = False  # None is a value of its own (no limit, no override), not only "unset"
    cell: bool = True  # ``%wcode set NAME=VALUE`` may set it (never the key: it would be in the notebook)
    name: str = ""  # filled from the dataclass field
    default: Any = None  # likewise
    check_url: Callable[[Any, str], str] | None = field(default=None, compare=False, repr=False)

    @property
    def allowed(self) -> str:
        """The allowed values in words, for error messages, ``%wcode help`` and the README."""
        words = {
            "text": "a string",
            "model": "a model id or alias",
            "url": "an http:// or https:// URL",
            "key": "the key as a non-empty string",
            "bool": "true or false",
        }.get(self.kind)
        if words is None and self.kind == "cny":  # a cap of 0 would refuse every priced call: say "off" instead
            words = f"an amount in CNY above 0, up to {_num(self.max)}"
        elif words is None:
            unit = "a number of seconds" if self.kind == "seconds" else "an integer"
            words = f"{unit} from {_num(self.min)} to {_num(self.max)}"
        return words + (", or None" if self.none_ok or self.kind in ("text", "model", "url", "key") else "")

    def refuse(self, value: Any) -> InvalidParameterError:
        shown = f"={value!r}" if self.kind != "key" else f" ({type(value).__name__})"  # never the key itself
        return InvalidParameterError(
            f"{self.name}{shown} is not allowed: {self.name} takes {self.allowed}.", param=self.name, value=value
        )

    def check(self, value: Any, name: str | None = None) -> Any:
        """The value as stored, or InvalidParameterError naming the setting, the value and what it takes.

        Idempotent (a checked value passes again unchanged), so every door may check and nothing is let through
        by a door that forgot to."""
        spec = self if name is None else replace(self, name=name)
        if value is None:
            if self.kind in ("seconds", "count", "bool", "cny") and not self.none_ok:
                raise spec.refuse(value)
            return None
        if self.kind in ("text", "model"):
            if not isinstance(value, str) or (self.kind == "model" and not value.strip()):
                raise spec.refuse(value)
            return catalog.resolve(value) if self.kind == "model" else value
        if self.kind == "url":
            assert self.check_url is not None
            return self.check_url(value, spec.name)
        if self.kind == "key":
            from .keys import Secret

            if isinstance(value, Secret):
                return value
            if not isinstance(value, str) or not value.strip():
                raise spec.refuse(value)
            return Secret(value, spec.name)
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise spec.refuse(value)
            return value
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or (self.kind == "count" and isinstance(value, float) and not value.is_integer()):
            raise spec.refuse(value)
        if self.kind == "cny":
            if not math.isfinite(value) or not (0 < value <= self.max):
                raise spec.refuse(value)
            return float(value)
        if not math.isfinite(value) or not (self.min <= value <= self.max):
            raise spec.refuse(value)
        return float(value) if self.kind == "seconds" else int(value)

    def parse(self, text: str) -> Any:
        """What a user typed in a cell (``%wcode set NAME=VALUE``) as a checked value; an empty value is None for
        the settings that take None."""
        text = text.strip()
        if self.kind == "key":
            raise InvalidParameterError(
                "Set the key with `%wcode key` (asked without echo), never on a command line.", param=self.name
            )
        if self.kind in ("text", "model", "url"):
            return self.check(text) if text else None
        if self.none_ok and text.lower() in ("", "none", "off"):
            return None
        if self.kind == "bool":
            if text.lower() not in _BOOL_WORDS:
                raise self.refuse(text)
            return _BOOL_WORDS[text.lower()]
        if self.kind == "cny":
            text = text.removeprefix("¥").strip()  # "¥5" as the footers write it
        try:
            number = float(text)  # "2.0" is 2 for a count, as 2.0 is in Python
        except ValueError:
            raise self.refuse(text) from None
        return self.check(number)


def setting(default: Any, kind: Kind, help: str, **kw: Any) -> Any:
    """A ``Settings`` field declared with its check: ``gap_timeout: float = setting(60.0, "seconds", ...)``."""
    return field(default=default, metadata={"setting": Setting(kind, help, **kw)})


def _num(x: float | None) -> str:
    assert x is not None
    return str(int(x)) if float(x).is_integer() else str(x)
