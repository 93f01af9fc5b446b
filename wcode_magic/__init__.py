"""wcode-magic: chat with language models inside notebooks, see their thinking and their token probabilities.

``import wcode_magic as wm`` is cheap: every public name is imported on first use (httpx, pandas and
ipywidgets cost a third of a second together; design.md), so ``%load_ext wcode_magic`` stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it. No module of the package may be named like an export: importing
# ``wcode_magic.<name>`` sets the package attribute to the module, so ``wm.<name>`` would then be the module.
_EXPORTS: dict[str, str] = {
    "chat": "client",
    "achat": "client",
    "configure": "settings",
    "SESSION": "settings",
    "models": "catalog",
    "Response": "response",
    "Usage": "response",
    "PARAMS": "params",
    "WcodeError": "errors",
    "WcodeWarning": "errors",
    "AuthenticationError": "errors",
    "InsufficientCreditError": "errors",
    "RateLimitError": "errors",
    "InvalidParameterError": "errors",
    "NotFoundError": "errors",
    "ServerError": "errors",
    "StreamError": "errors",
    "StoppedError": "errors",
    "APIConnectionError": "errors",
    "use_local": "session",
    "use_wcode": "session",
    "auto": "session",
    "last": "session",
    "history": "history_store",
    "panel": "panel_widget",
    "frame": "frames",
    "compare": "sweeps",
    "batch": "sweeps",
    "acompare": "sweeps",
    "abatch": "sweeps",
    "label_probs": "frames",
    "plot_confidence": "plots",
}
_SUBMODULES = ("local",)

__all__ = sorted([*_EXPORTS, *_SUBMODULES])

if TYPE_CHECKING:
    from . import local
    from .catalog import models
    from .client import achat, chat
    from .errors import (
        APIConnectionError,
        AuthenticationError,
        InsufficientCreditError,
        InvalidParameterError,
        NotFoundError,
        RateLimitError,
        ServerError,
        StoppedError,
        StreamError,
        WcodeError,
        WcodeWarning,
    )
    from .params import PARAMS
    from .response import Response, Usage
    from .session import auto, last, use_local, use_wcode
    from .settings import SESSION, configure


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return import_module(f".{name}", __name__)
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'wcode_magic' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext wcode_magic``: register ``%%chat`` and ``%wcode``."""
    from .magics import load

    load(ipython)
