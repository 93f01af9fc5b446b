"""wcode-magic: chat with language models inside notebooks, see their thinking and their token probabilities.

``import wcode_magic as wm`` is cheap: every public name is imported on first use (httpx, pandas and
ipywidgets cost a third of a second together; design.md), so ``%load_ext wcode_magic`` stays fast.
"""

from __future__ import annotations

import logging
from importlib import import_module
from typing import TYPE_CHECKING, Any

from .core import hooks

# Retries, Retry-After waits, drains, routing and history failures are logged under "wcode_magic" (never the key):
# silent until the user turns logging on (logging.basicConfig(level=logging.INFO)), as a library should be.
logging.getLogger("wcode_magic").addHandler(logging.NullHandler())

__version__ = "0.1.0"

# public name -> module that defines it. Layer packages (core, analysis, notebook, local) hold the modules, so a
# module's name can no longer shadow an export (``wm.panel`` is the function, whatever was imported before).
_EXPORTS: dict[str, str] = {
    "chat": "core.client",
    "achat": "core.client",
    "configure": "core.settings",
    "SESSION": "core.settings",
    "Settings": "core.settings",
    "models": "core.catalog",
    "Response": "core.response",
    "Usage": "core.response",
    "Event": "core.stream",
    "PARAMS": "core.params",
    "WcodeError": "core.errors",
    "WcodeWarning": "core.errors",
    "ConfigurationError": "core.errors",
    "AuthenticationError": "core.errors",
    "InsufficientCreditError": "core.errors",
    "RateLimitError": "core.errors",
    "InvalidParameterError": "core.errors",
    "NotFoundError": "core.errors",
    "ServerError": "core.errors",
    "StreamError": "core.errors",
    "StoppedError": "core.errors",
    "ReplayMissError": "core.errors",
    "SchemaError": "core.errors",
    "BudgetError": "core.errors",
    "APIConnectionError": "core.errors",
    "use_local": "core.session",
    "use_wcode": "core.session",
    "auto": "core.session",
    "last": "core.session",
    "history": "analysis.history",
    "record": "analysis.recorder",
    "replay": "analysis.recorder",
    "frame": "analysis.frames",
    "label_probs": "analysis.frames",
    "field_probs": "analysis.fieldprobs",
    "compare": "analysis.sweeps",
    "batch": "analysis.sweeps",
    "acompare": "analysis.sweeps",
    "abatch": "analysis.sweeps",
    "plot_confidence": "analysis.plots",
    "panel": "notebook.panel",
    "Branches": "analysis.branches",
    "PrefillError": "core.prefill",
    "step": "notebook.step",
}
_SUBMODULES = ("local",)

__all__ = ["__version__", "load_ipython_extension", *sorted([*_EXPORTS, *_SUBMODULES])]

if TYPE_CHECKING:  # the same names, for type checkers and editors (tests/test_exports.py keeps the two in step)
    from . import local
    from .analysis.branches import Branches
    from .analysis.fieldprobs import field_probs
    from .analysis.frames import frame, label_probs
    from .analysis.history import history
    from .analysis.plots import plot_confidence
    from .analysis.recorder import record, replay
    from .analysis.sweeps import abatch, acompare, batch, compare
    from .core.catalog import models
    from .core.client import achat, chat
    from .core.errors import (
        APIConnectionError,
        AuthenticationError,
        BudgetError,
        ConfigurationError,
        InsufficientCreditError,
        InvalidParameterError,
        NotFoundError,
        RateLimitError,
        ReplayMissError,
        SchemaError,
        ServerError,
        StoppedError,
        StreamError,
        WcodeError,
        WcodeWarning,
    )
    from .core.params import PARAMS
    from .core.prefill import PrefillError
    from .core.response import Response, Usage
    from .core.session import auto, last, use_local, use_wcode
    from .core.settings import SESSION, Settings, configure
    from .core.stream import Event
    from .notebook.panel import panel
    from .notebook.step import step


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return import_module(f".{name}", __name__)
    module = _EXPORTS.get(name)
    if module is None:
        import difflib

        close = difflib.get_close_matches(name, __all__, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else " (dir(wcode_magic) lists the public names)"
        raise AttributeError(f"module 'wcode_magic' has no attribute {name!r}{hint}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


# -- the composition root: what the layers above the spine add to every call, wired here and nowhere else ------
def _remember(response: Response) -> None:
    """``wm.last()``."""
    from .core import session

    session.remember(response)


def _count_and_log(response: Response) -> None:
    """The session's usage totals (``%wcode usage``) and the history database (``wm.history()``)."""
    from .analysis import history, usage

    usage.add(response)
    history.record(response)


def _record(response: Response) -> None:
    """``wm.record``: the exchange appended to the recording that is on, if any."""
    from .analysis import recorder

    recorder.note(response)


def _serve(request: dict[str, Any], cache: bool | None) -> Any:
    """Before a request is sent: the recording being replayed (``wm.replay``), then, with ``cache``, the history."""
    from .analysis import recorder

    served = recorder.serve(request)
    if served is None and cache:
        from .analysis import history

        served = history.cached(request)
    return served


def _tokens(response: Response) -> Any:
    from .analysis.frames import tokens

    return tokens(response)


def _alternatives(response: Response) -> Any:
    from .analysis.frames import alternatives

    return alternatives(response)


def _show_tokens(response: Response, **kw: Any) -> Any:
    from .analysis.render import show_tokens

    return show_tokens(response, **kw)


def _turns(response: Response) -> Any:
    from .analysis.turns import turns

    return turns(response)


def _tool_steps(response: Response) -> str:
    from .notebook.toolview import steps_markdown

    return steps_markdown(response)


def _tool_loop(*args: Any, **kw: Any) -> Any:
    from .core.toolloop import chat

    return chat(*args, **kw)


def _atool_loop(*args: Any, **kw: Any) -> Any:
    from .core.toolloop import achat

    return achat(*args, **kw)


def _branch(response: Response, *args: Any, **kw: Any) -> Any:
    from .analysis.branches import branch

    return branch(response, *args, **kw)


hooks.after_call(_remember)
hooks.after_call(_count_and_log)
hooks.after_call(_record)
hooks.serve_from(_serve)


def _field_probs(response: Response) -> Any:
    from .analysis.fieldprobs import field_probs

    return field_probs(response)


hooks.provide(
    tokens=_tokens,
    alternatives=_alternatives,
    show_tokens=_show_tokens,
    field_probs=_field_probs,
    turns=_turns,
    branch=_branch,
)
hooks.provide(tool_loop=_tool_loop, atool_loop=_atool_loop, tool_steps=_tool_steps)


def _spent() -> float:
    """The cost check's ``spent``: what the session's usage totals recorded (served answers cost nothing)."""
    from .analysis import usage

    return usage.spent()


def _may_spend(question: str) -> bool | None:
    """The cost check's yes/no, asked in the running notebook cell or IPython prompt; None where nobody can answer."""
    from .notebook.spend import ask

    return ask(question)


hooks.provide(spent=_spent)
hooks.ask_before_spending(_may_spend)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext wcode_magic``: register ``%%chat`` and ``%wcode``."""
    from .notebook.magics import load

    load(ipython)
