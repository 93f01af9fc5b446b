"""Session settings shared by wm.chat, the magics and the panel, and where the API key comes from.

One ``Settings`` object per kernel (``SESSION``): the magics' ``%wcode set`` and the panel's sliders write the
same ``params`` dict, and listeners keep the other front-end in step. The key is held as a ``Secret`` whose
repr never shows it, and is sent only where it belongs (see ``key_for``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from . import catalog, params
from .errors import ConfigurationError, InvalidParameterError
from .keys import Secret, stored_key

WCODE_BASE_URL = "https://wcode.net/api/gpt/v1"  # seeds/*: "base_url 替换为 https://wcode.net/api/gpt/v1"
WCODE_HOST = "wcode.net"
KEY_URL = "https://wcode.net/get-apikey"  # seeds/*: where a key is obtained


def check_base_url(value: Any, name: str = "base_url") -> str:
    """An http(s) URL with a host, without its trailing slash; else InvalidParameterError naming ``name``.

    ``name`` says where the value came from (``base_url``, ``WCODE_BASE_URL``), so the message points there.
    """
    text = value.strip() if isinstance(value, str) else None
    ok = bool(text) and not any(c.isspace() for c in text)  # type: ignore[union-attr]
    if ok:
        ok = _parses(text)  # type: ignore[arg-type]
    if not ok:
        raise InvalidParameterError(
            f"{name}={value!r} is not allowed: {name} takes an http:// or https:// URL (its port, if any, from 1 "
            f"to 65535) such as {WCODE_BASE_URL!r} or 'http://127.0.0.1:8000/v1'.",
            param=name,
            value=value,
        )
    return text.rstrip("/")  # type: ignore[union-attr]


def _parses(text: str) -> bool:
    """Whether ``text`` is an http(s) URL with a host that both urllib and httpx read, and whose host name can be
    looked up: an unclosed ``[``, an empty label (``a..b``), a bad ``xn--`` label or a control character raise
    ValueError, UnicodeError or httpx.InvalidURL only when a request is made otherwise."""
    import httpx

    try:
        parts = urlsplit(text)
        if parts.port == 0:  # raises on a port that is no number or above 65535; 0 is no port to connect to
            return False
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            return False
        host = httpx.URL(text).host
        if not host.startswith("[") and ":" not in host:  # not an IPv6 address: DNS needs every label
            host.encode("idna")
    except (ValueError, UnicodeError, httpx.InvalidURL):
        return False
    return True


def check_seconds(value: Any, name: str, *, none_ok: bool = False, zero_ok: bool = False) -> float | None:
    """A finite positive number of seconds (or zero, or None, when allowed); else InvalidParameterError."""
    if value is None and none_ok:
        return None
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not number or value < 0 or (value == 0 and not zero_ok):
        what = "a number of seconds >= 0" if zero_ok else "a positive number of seconds"
        raise InvalidParameterError(
            f"{name}={value!r} is not allowed: {name} takes {what}{', or None' if none_ok else ''}.",
            param=name,
            value=value,
        )
    return float(value)


def _check_text(value: Any, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise InvalidParameterError(
            f"{name}={value!r} is not allowed: {name} takes a string, or None.", param=name, value=value
        )
    return value


def _check_key(value: Any, name: str) -> Any:
    # never the value in the message: it is a key
    if value is not None and not isinstance(value, Secret) and not (isinstance(value, str) and value.strip()):
        raise InvalidParameterError(
            f"{name} is not allowed as given ({type(value).__name__}): {name} takes the key as a non-empty "
            "string, or None.",
            param=name,
        )
    return Secret(value, name) if isinstance(value, str) else value


def _check_retries(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidParameterError(
            f"{name}={value!r} is not allowed: {name} takes an integer >= 0.", param=name, value=value
        )
    return value


def _check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidParameterError(
            f"{name}={value!r} is not allowed: {name} takes true or false.", param=name, value=value
        )
    return value


# configure()'s own settings and their checks (request parameters are checked by params).
_SETTING_CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "model": _check_text,
    "base_url": lambda v, n: None if v is None else check_base_url(v, n),
    "api_key": _check_key,
    "system": _check_text,
    "gap_timeout": lambda v, n: check_seconds(v, n),
    "connect_timeout": lambda v, n: check_seconds(v, n),
    "max_retries": _check_retries,
    "retry_cap_s": lambda v, n: check_seconds(v, n, zero_ok=True),
    "history": _check_bool,
}
SETTINGS = tuple(_SETTING_CHECKS)


def is_wcode(base_url: str) -> bool:
    host = (urlsplit(base_url).hostname or "").lower()
    return host == WCODE_HOST or host.endswith("." + WCODE_HOST)


@dataclass
class Settings:
    """What a call uses when it does not say otherwise. ``params`` are validated session defaults."""

    model: str | None = None
    base_url: str | None = None
    api_key: Secret | None = None
    system: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    gap_timeout: float = 60.0
    connect_timeout: float = 10.0
    max_retries: int = 3
    retry_cap_s: float = 60.0
    history: bool = True
    # the server ``api_key`` was configured with (its base_url then; None: the default server); it goes only there
    api_key_server: str | None = None
    _listeners: list[Callable[[str, Any], None]] = field(default_factory=list, repr=False)

    def subscribe(self, listener: Callable[[str, Any], None]) -> Callable[[], None]:
        """Call ``listener(name, value)`` on every change; returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _notify(self, name: str, value: Any) -> None:
        for listener in list(self._listeners):
            listener(name, value)

    def set_param(self, name: str, value: Any) -> None:
        """Validate and store a session default; None removes it."""
        p = params.get(name)
        if value is None:
            self.params.pop(p.name, None)
        else:
            self.params[p.name] = p.check(value)
        self._notify(p.name, self.params.get(p.name))

    def update(self, **kw: Any) -> None:
        """Set fields or parameters by name, validating each; listeners hear of every change."""
        if "api_key" in kw:  # the key belongs to the server configured with it, in this call or before
            server = kw.get("base_url", self.base_url)
            self.api_key_server = None if kw["api_key"] is None or not server else server.rstrip("/")
        for name, value in kw.items():
            if name in ("model", "base_url", "system"):
                setattr(self, name, value)
                self._notify(name, value)
            elif name == "api_key":
                self.api_key = None if value is None else (value if isinstance(value, Secret) else Secret(value))
                self._notify(name, None)
            elif name in ("gap_timeout", "connect_timeout", "max_retries", "retry_cap_s", "history"):
                setattr(self, name, value)
                self._notify(name, value)
            else:
                self.set_param(name, value)

    # -- resolution ----------------------------------------------------------------------------------------
    def resolve_model(self, model: str | None) -> str:
        chosen = model or self.model or os.environ.get("WCODE_MODEL") or catalog.DEFAULT_MODEL
        return catalog.resolve(chosen)

    def resolve_base_url(self, base_url: str | None, model_id: str) -> str:
        """Explicit > ``route`` > configured > a local model's own server > WCODE_BASE_URL > wcode.net.

        Whichever is used is checked to be an http(s) URL, and a bad one is named with where it came from.
        wm.chat/achat/compare/batch, ``%%chat`` and the panel all pick their server here.
        """
        if base_url is not None and base_url != "":
            return check_base_url(base_url)
        if self.base_url:
            return self.route(model_id) or check_base_url(self.base_url)
        entry = catalog.lookup(model_id)
        if entry is not None and entry.local:
            from .. import local

            return local.start()
        env = os.environ.get("WCODE_BASE_URL")
        return check_base_url(env, "WCODE_BASE_URL") if env else WCODE_BASE_URL

    def route(self, model_id: str) -> str | None:
        """The server for one call when the session's own cannot serve its model; None means the session's.

        Two servers are built in and each serves only its own models: the bundled local server the ``local/*``
        ones, wcode.net the catalog's other models. So:

        - a ``local/*`` model goes to the bundled server while the session points at a server that is not on this
          machine (a loopback one may be ``wcode-magic serve`` in another process, which serves them too);
        - a wcode catalog model goes to wcode.net (or ``WCODE_BASE_URL``) while the session points at this
          process's bundled local server, which would answer 404: ``wm.chat(model="r1")`` or ``%%chat -m r1``
          after ``wm.use_local()``, ``%wcode use local`` or a key-less ``wm.auto()``.

        Any other server the user configured gets every model as asked (it may serve ids the catalog does not
        know), and without a configured server ``resolve_base_url`` picks by model anyway. A configured base_url
        that is no usable URL raises InvalidParameterError naming it.
        """
        if not self.base_url:
            return None
        configured = check_base_url(self.base_url)
        entry = catalog.lookup(model_id)
        if entry is None:
            return None
        from .. import local

        if entry.local and urlsplit(configured).hostname not in ("127.0.0.1", "localhost", "::1"):
            return local.start()
        running = local.base_url()
        if not entry.local and running is not None and configured == running.rstrip("/"):
            env = os.environ.get("WCODE_BASE_URL")
            return check_base_url(env, "WCODE_BASE_URL") if env else WCODE_BASE_URL
        return None

    def key_for(self, base_url: str, api_key: str | Secret | None) -> Secret | None:
        """The key to send to ``base_url``.

        An explicit key goes wherever the caller sends it. A key given to ``configure`` goes only to the server
        it was configured with (``api_key_server``): switching the session to another server (``use_wcode``,
        ``use_local``, ``auto``, a second ``configure(base_url=...)``) leaves it behind, and switching back picks
        it up again. A key configured while no base_url was set belongs to the first server then given to
        ``configure`` (the two-step setup: key, then URL); until then it goes wherever the session sends requests
        while it has no base_url, and to the default server (``WCODE_BASE_URL`` or wcode.net). The stored key
        (environment or key file) goes only to the wcode host, so pointing the session at some other server
        never leaks it.
        """
        if api_key is not None:
            return api_key if isinstance(api_key, Secret) else _check_key(api_key, "api_key")
        if self.api_key is not None and self._owns_key(base_url.rstrip("/")):
            return self.api_key
        if is_wcode(base_url):
            return stored_key()
        return None

    def key_home(self) -> str:
        """The server the configured key is for (see ``key_for``): the one it was configured with, else the
        default server."""
        if self.api_key_server is not None:
            return self.api_key_server
        env = os.environ.get("WCODE_BASE_URL", "").strip().rstrip("/")
        return env or WCODE_BASE_URL

    def _owns_key(self, base_url: str) -> bool:
        """Whether the configured key belongs to ``base_url`` (see ``key_for``)."""
        if self.api_key_server is None and not self.base_url:
            return True
        return base_url == self.key_home()


SESSION = Settings()


def configure(**kw: Any) -> Settings:
    """Set session defaults: ``model``, ``base_url``, ``api_key``, ``system``, timeouts, retries, ``history``,
    or any request parameter (``temperature=0.2``). Every value is validated before any is applied (a bad one
    raises InvalidParameterError naming it and what it takes); returns the session."""
    bad = [k for k in kw if k.startswith("_")]
    if bad:
        raise ConfigurationError(f"Unknown setting {bad[0]!r}.")
    checked: dict[str, Any] = {}
    for name, value in kw.items():
        check = _SETTING_CHECKS.get(name)
        if check is not None:
            checked[name] = check(value, name)
        elif value is not None:
            checked[name] = params.get(name, also=SETTINGS).check(value)
        else:
            params.get(name, also=SETTINGS)
            checked[name] = None
    key_waits = SESSION.api_key is not None and SESSION.api_key_server is None and "api_key" not in checked
    if key_waits and checked.get("base_url"):  # configure(api_key=K), then configure(base_url=X): K is for X
        SESSION.api_key_server = checked["base_url"].rstrip("/")
    SESSION.update(**checked)
    return SESSION
