"""Where the layers above the spine plug into it, so the spine imports none of them.

Two kinds of plug, both filled by the package root (``wcode_magic/__init__.py``), the one composition root:

- ``after_call``: observers called with every Response when its call ends, complete or not (the history log,
  the usage totals, ``wm.last()``), as httpx's ``event_hooks`` are. An observer that raises is a warning (and a
  log record), never an error: book-keeping never costs an answer that has already arrived.
- ``serve_from``/``serve``: who answers a request without the network (a replayed recording, the cache), asked
  by the client before it sends anything; and ``keep_wire``: whether Responses keep their stream's events with
  their times (only while a recording is on: it costs memory).
- ``provide``/``provided``: what a ``Response`` method hands over to the analysis layer (``r.tokens()``,
  ``r.alternatives()``, ``r.show_tokens()``): the spine names the job, the root names who does it. The cost
  check (core/budget.py) asks for ``spent``, the session's recorded cost, which the usage totals keep.
- ``ask_before_spending``/``may_spend``: who answers the cost check's yes/no question. The notebook layer asks in
  the running cell; with nobody registered (a script, a background task) there is no answer, and the check
  refuses what it would have asked about.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import warn_user

if TYPE_CHECKING:
    from .response import Response
    from .served import Served

Observer = Callable[["Response"], None]

log = logging.getLogger("wcode_magic")
_observers: list[Observer] = []
_provided: dict[str, Callable[..., Any]] = {}
_server: list[Callable[[dict[str, Any], bool | None], Served | None]] = []
_wire: list[bool] = [False]
_asker: list[Callable[[str], bool | None]] = []


def after_call(fn: Observer) -> Observer:
    """Call ``fn(response)`` after every call ends; registering the same function twice keeps one."""
    if fn not in _observers:
        _observers.append(fn)
    return fn


def call_ended(response: Response) -> None:
    """The client's one notification: every observer, in the order they were registered."""
    for fn in list(_observers):
        try:
            fn(response)
        except Exception as e:  # an observer's bug must not turn a received answer into an error
            name = getattr(fn, "__qualname__", fn)
            log.warning("observer %s failed", name, exc_info=True)
            warn_user(f"Could not note this answer in {name} ({type(e).__name__}: {e}).")


def provide(**jobs: Callable[..., Any]) -> None:
    """Name who does each job a Response hands over (``provide(tokens=frames.tokens)``)."""
    _provided.update(jobs)


def provided(job: str) -> Callable[..., Any]:
    """The function registered for ``job``; a clear error when the package root did not register one."""
    try:
        return _provided[job]
    except KeyError:
        raise LookupError(f"nothing provides {job!r}: import wcode_magic (the package root wires it)") from None


def serve_from(fn: Callable[[dict[str, Any], bool | None], Served | None]) -> None:
    """Register who serves a request without the network: ``fn(request, cache)`` returns a ``Served`` answer, None
    to send the request, or raises (a strict replay's miss). One server; registering again replaces it."""
    _server[:] = [fn]


def serve(request: dict[str, Any], cache: bool | None) -> Served | None:
    """The registered server's answer for ``request`` (the body as sent, keys masked), or None."""
    return _server[0](request, cache) if _server else None


def keep_wire(on: bool) -> None:
    """Whether new Responses keep their stream's data fields and times (``Response.wire``), for a recording."""
    _wire[0] = on


def wire_kept() -> bool:
    return _wire[0]


def ask_before_spending(fn: Callable[[str], bool | None]) -> None:
    """Register who answers the cost check: ``fn(question)`` returns True (send), False (declined) or None (no
    one can answer here). One asker; registering again replaces it."""
    _asker[:] = [fn]


def may_spend(question: str) -> bool | None:
    """The registered asker's answer to ``question``; None when nobody is registered."""
    return _asker[0](question) if _asker else None
