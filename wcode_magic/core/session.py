"""Choosing where the session talks to, and what it last heard.

``auto()`` is what the notebooks call first: with a key they use wcode.net, without one they start the bundled
local model, and either way they say which, so nobody mistakes the local n-gram model for a real LLM.
"""

from __future__ import annotations

from . import catalog
from .errors import ConfigurationError, InvalidParameterError
from .keys import key_source, stored_key
from .response import Response
from .settings import SESSION, WCODE_BASE_URL

_last: list[Response] = []


def remember(response: Response) -> None:
    """Client observer: keep the latest Response for ``last()``."""
    _last[:] = [response]


def last() -> Response | None:
    """The most recent Response of this session, complete, stopped or failed (None before the first call)."""
    return _last[0] if _last else None


def is_bundled_local(url: str | None) -> bool:
    """True when ``url`` is one of this process's bundled local servers (``wm.use_local()``, ``%wcode use
    local``): the n-gram one, or llama.cpp's for ``local/gemma-270m``."""
    from .. import local

    return url is not None and url.rstrip("/") in {u.rstrip("/") for u in local.base_urls()}


def use_local(model: str = catalog.DEFAULT_LOCAL_MODEL) -> str:
    """Point the session at a bundled local model (its server started on 127.0.0.1 if needed); returns its base
    URL. ``local/gemma-270m`` is a real small transformer (the optional extra; a base model, not a chat model);
    the others are the n-gram model. An unknown local id, or the transformer without its extra, is refused."""
    from .. import local

    model = catalog.resolve(model)
    entry = catalog.lookup(model)
    if entry is None or not entry.local:
        local_ids = ", ".join(m.id for m in catalog.MODELS if m.local)
        raise InvalidParameterError(
            f"{model!r} is not a bundled local model: use one of {local_ids}.", param="model", value=model
        )
    try:
        base_url = local.start_for(model)
    except RuntimeError as e:
        raise ConfigurationError(f"{e}.") from None
    SESSION.update(base_url=base_url, model=model)
    return base_url


def use_wcode(model: str | None = None) -> str:
    """Point the session at wcode.net (the stored key is used there only), with ``model`` or else the current
    model, unless that is a bundled local one, which wcode.net does not serve: then the default model."""
    if model is not None:
        chosen = catalog.resolve(model)
        entry = catalog.lookup(chosen)
        if entry is not None and entry.local:
            raise ConfigurationError(
                f"{chosen} is the bundled local model, not a wcode.net one: use_local({chosen!r}) for it, or "
                "name a wcode model (wm.models() lists them)."
            )
    else:
        chosen = SESSION.resolve_model(None)
        entry = catalog.lookup(chosen)
        if entry is not None and entry.local:
            chosen = catalog.DEFAULT_MODEL
    SESSION.update(base_url=WCODE_BASE_URL, model=chosen)
    return WCODE_BASE_URL


def auto() -> str:
    """wcode.net when a key is stored (``WCODE_API_KEY`` or ``%wcode key``), else the local model; says which.

    A stored key that cannot be sent (a space or control character inside) is reported, and the local model used:
    the notebook still runs top to bottom, and the first output says what to fix.
    """
    try:
        key = stored_key()
    except (InvalidParameterError, ConfigurationError) as e:
        use_local()
        return (
            f"The stored key cannot be used ({e.message}): using the bundled local model ({SESSION.model}) on "
            f"{SESSION.base_url} until it is fixed (%wcode key stores a new one)."
        )
    if key is not None:
        use_wcode()
        return f"Using wcode.net, model {SESSION.model} (key from {key_source()})."
    use_local()
    return (
        f"No WCODE_API_KEY set: using the bundled local model ({SESSION.model}, a small n-gram model on "
        f"{SESSION.base_url}). Its answers are word statistics, not an LLM's."
    )
