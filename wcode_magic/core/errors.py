"""The exceptions and warnings wcode_magic raises.

One small hierarchy, so a notebook can catch ``WcodeError`` and show a short message, while each subclass says
what to do next. Exceptions raised after tokens arrived carry the partial Response in ``.partial`` so nothing the
user received is lost.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import sys
import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .response import Response


class WcodeWarning(UserWarning):
    """Something was accepted but will not act as the user may expect (an ignored parameter, no logprobs)."""


def warn_user(message: str) -> None:
    """A WcodeWarning at the user's line (``wm.chat(...)``, ``r.tokens()``, ``wm.compare(...)``): how many of our
    frames lie in between depends on the entry point, so a fixed ``stacklevel`` would point into the package.

    In a task of ours (a ``%%chat`` cell's call, a stream read, a batch's cells) no user frame is on the stack, only
    asyncio's: the warning then points at the line that started the task (``tasks_warn_here``), not at asyncio's
    ``events.py``."""
    level, frame = _caller(sys._getframe(0))
    origin = _ORIGIN.get()
    if origin is not None and frame is not None and frame.f_code.co_filename.startswith(_ASYNCIO_DIR):
        filename, lineno, module_globals = origin
        warnings.warn_explicit(
            message,
            WcodeWarning,
            filename,
            lineno,
            module=module_globals.get("__name__"),
            registry=module_globals.setdefault("__warningregistry__", {}),
            module_globals=None if filename.startswith("%") else module_globals,  # a label has no source line
        )
        return
    warnings.warn(message, WcodeWarning, stacklevel=level)


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # wcode_magic/, all layers
_ASYNCIO_DIR = os.path.dirname(os.path.abspath(asyncio.__file__)) + os.sep
# where a warning raised in one of our tasks points: the user's (filename, line, module globals) that started it
_ORIGIN: contextvars.ContextVar[tuple[str, int, dict[str, Any]] | None] = contextvars.ContextVar(
    "wcode_warning_origin", default=None
)


def _caller(frame: Any) -> tuple[int, Any]:
    """The ``stacklevel`` (as ``warn_user`` passes it) and frame of the first frame outside this package, given
    ``warn_user``'s own frame."""
    frame = frame.f_back  # warn_user is stacklevel 1, its caller 2
    level = 2
    while frame is not None and frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    return level, frame


def tasks_warn_here(label: str | None = None) -> contextvars.Token[Any]:
    """Before starting a task: its warnings (and its own tasks') point at the user's line calling us now, or with
    ``label`` (``"%%chat"``) at that instead: a magic's cell line as run is the transformed call, not what the user
    wrote. Undo with ``tasks_warn_reset(token)`` once the task is created (it keeps a copy of the context)."""
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    if frame.f_code.co_filename.startswith(_ASYNCIO_DIR):  # already inside a task: keep where it points
        return _ORIGIN.set(_ORIGIN.get())
    if label is not None:
        return _ORIGIN.set((label, 1, frame.f_globals))
    return _ORIGIN.set((frame.f_code.co_filename, frame.f_lineno, frame.f_globals))


def tasks_warn_reset(token: contextvars.Token[Any]) -> None:
    _ORIGIN.reset(token)


def error_line(error: WcodeError) -> str:
    """How a failure reads, in the magics and the panel alike: its kind, then what to do next."""
    return f"{type(error).__name__}: {error.message}"


def error_text(error: BaseException) -> str:
    """How any failure reads in a view (the panel, a compare column): ``error_line`` for one of ours; anything
    else is a bug in wcode-magic, and says so and what to do."""
    if isinstance(error, WcodeError):
        return error_line(error)
    return f"{type(error).__name__}: {error} (this is a bug in wcode-magic; please report it)"


class WcodeError(Exception):
    """Base of every error wcode_magic raises on purpose: a message a user can act on, never a bug."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        partial: Response | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.partial = partial
        self.body = body


class ConfigurationError(WcodeError):
    """Missing or unusable settings (no key, a bad base URL)."""


class AuthenticationError(WcodeError):
    """401/403: the key is missing, wrong, or not allowed to use this model."""


class InsufficientCreditError(WcodeError):
    """402: the account is out of credit."""


class RateLimitError(WcodeError):
    """429 after every retry; ``retry_after`` is the wait the server asked for, in seconds, if it said."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class InvalidParameterError(WcodeError, ValueError):
    """A parameter's name, type or value is not allowed; raised before anything is sent when we can tell."""

    def __init__(self, message: str, *, param: str | None = None, value: Any = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.param = param
        self.value = value


class NotFoundError(WcodeError):
    """404: the model id (or the endpoint) does not exist on that server."""


class ServerError(WcodeError):
    """5xx after every retry, or another status we cannot map: the server's trouble, not the request's."""


class APIConnectionError(WcodeError):
    """The server could not be reached at all (refused, DNS, TLS) after every retry."""


class StreamError(WcodeError):
    """The stream broke after it started: an error event, a malformed event, a stall, or no ``[DONE]``.

    ``partial`` holds everything that arrived, marked incomplete.
    """


class StoppedError(WcodeError):
    """The user stopped the stream (Stop button or kernel interrupt); ``partial`` holds what arrived."""


class ReplayMissError(WcodeError):
    """A strict replay (``wm.replay(path, strict=True)``) was asked a request its recording does not hold.

    Nothing was sent. ``.nearest`` is the closest recorded request (or None for an empty recording) and
    ``.differences`` the fields that differ, as ``"temperature: recorded 0.7, asked 0.2"``.
    """

    def __init__(self, message: str, *, nearest: dict[str, Any] | None = None, differences: Any = ()) -> None:
        super().__init__(message)
        self.nearest = nearest
        self.differences = list(differences)


class BudgetError(WcodeError):
    """The cost check refused a call or sweep before anything was sent: its worst case could pass what is left of
    the session's budget (``wm.configure(budget=...)``) and nobody approved it, or the user declined."""


class SchemaError(WcodeError):
    """An answer that is not valid JSON or does not fit the schema asked for.

    The message names the first problems, each with its field path (``items[2].name``) and what is wrong;
    ``problems`` lists them all (``.path``, ``.problem``) and ``partial`` holds the Response, its text kept.
    """

    def __init__(self, message: str, *, problems: list[Any] | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.problems = list(problems or [])

    @property
    def path(self) -> str | None:
        """Where the first problem is (``(the answer)`` for the answer as a whole)."""
        return self.problems[0].path if self.problems else None


# -- a failure as data (a recording keeps how an exchange ended; a replay raises it again) ---------------------
_EXTRAS = ("retry_after", "param")  # the subclasses' own JSON-able attributes, kept beside message/status/body


def describe(error: WcodeError, mask: Any = None) -> dict[str, Any]:
    """``error`` as a JSON-able dict: its class name, status, message and body (``mask``ed: keys never leave),
    whether it carried a partial Response, and the extras a subclass has (``retry_after``, ``param``)."""
    masked = mask if mask is not None else (lambda value: value)
    out: dict[str, Any] = {
        "class": type(error).__name__,
        "status": error.status,
        "message": masked(error.message),
        "body": masked(error.body),
        "partial": error.partial is not None,
    }
    for name in _EXTRAS:
        value = getattr(error, name, None)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            out[name] = masked(value)
    return out


def _classes(cls: type[WcodeError]) -> dict[str, type[WcodeError]]:
    found = {cls.__name__: cls}
    for sub in cls.__subclasses__():
        found.update(_classes(sub))
    return found


def rebuild(record: dict[str, Any], partial: Response | None) -> WcodeError:
    """The exception ``describe`` described: the same class (WcodeError for a name not known here), message,
    status, body and extras, carrying ``partial`` when the original carried one."""
    cls = _classes(WcodeError).get(str(record.get("class")), WcodeError)
    error = cls(str(record.get("message", "")))
    status = record.get("status")
    error.status = status if isinstance(status, int) and not isinstance(status, bool) else None
    error.body = record.get("body")
    error.partial = partial if record.get("partial") else None
    for name in _EXTRAS:
        if name in record:
            setattr(error, name, record[name])
    return error
