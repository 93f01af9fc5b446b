"""Session settings shared by wm.chat, the magics and the panel, and where the API key comes from.

One ``Settings`` object per kernel (``SESSION``): the magics' ``%wcode set`` and the panel's sliders write the
same ``params`` dict, and listeners keep the other front-end in step. The key is held as a ``Secret`` whose
repr never shows it, and is sent only where it belongs (see ``key_for``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any
from urllib.parse import urlsplit

from . import catalog, params
from .errors import ConfigurationError, InvalidParameterError, WcodeError
from .keys import Secret, check_key_transport, is_loopback, stored_key
from .setting import Setting, setting

log = logging.getLogger("wcode_magic.settings")  # routing decisions, at info/debug

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


def is_wcode(base_url: str) -> bool:
    host = (urlsplit(base_url).hostname or "").lower()
    return host == WCODE_HOST or host.endswith("." + WCODE_HOST)


@dataclass
class Settings:
    """What a call uses when it does not say otherwise: one object per kernel (``SESSION``).

    Each setting is declared once, below, with its check (``setting``): assignment, ``update``, ``configure``,
    ``%wcode set`` and the panel all go through ``Setting.check``, so a value refused by one is refused by all, and
    a refused value changes nothing. ``params`` holds the validated request-parameter defaults (core/params.py).
    """

    model: str | None = setting(None, "model", "Model id or alias used when a call names none.")
    base_url: str | None = setting(
        None,
        "url",
        "Server of the OpenAI-compatible API (…/v1); None: by model (wcode.net or the local model).",
        check_url=check_base_url,
    )
    api_key: Secret | None = setting(
        None, "key", "Key for the server configured with it (never shown); set it with %wcode key.", cell=False
    )
    system: str | None = setting(None, "text", "System prompt added to every new conversation.")
    gap_timeout: float = setting(
        60.0, "seconds", "Longest wait for the next piece of a stream (or a plain answer's start).", min=0.1, max=3600
    )
    connect_timeout: float = setting(10.0, "seconds", "Longest wait to connect to the server.", min=0.1, max=300)
    max_retries: int = setting(
        3,
        "count",
        "Retries of a failed request before any token arrived (connection errors, 408, 429, 5xx).",
        min=0,
        max=10,
    )
    retry_cap_s: float = setting(
        60.0,
        "seconds",
        "Longest wait between retries, even when the server asks for more (0: retry at once).",
        min=0,
        max=3600,
    )
    history: bool = setting(True, "bool", "Keep every exchange in the history database (wm.history()).")
    cache: bool = setting(
        False,
        "bool",
        "Answer a request identical to one already completed from the history instead of sending it again.",
    )
    params: dict[str, Any] = field(default_factory=dict)
    deadline: float | None = setting(
        600.0,
        "seconds",
        "Longest a whole call may take, streamed or not (None: no limit); the gap timeout restarts with every byte, "
        "so keep-alives, a trickle or an endless stream would otherwise never end.",
        min=0.1,
        max=86400,
        none_ok=True,
    )
    budget: float | None = setting(
        None,
        "cny",
        "Session cap in CNY (None: no cap): a call or sweep whose worst case could pass what is left asks first in "
        "a notebook and is refused elsewhere, before anything is sent (%wcode budget shows cap, spent, left).",
        max=1_000_000,
        none_ok=True,
    )
    warn_prompt_tokens: int | None = setting(
        20_000,
        "count",
        "Warn (in a notebook: ask, on a priced model) before sending a prompt estimated above this many tokens, "
        "once per conversation (None: never).",
        min=1,
        max=10_000_000,
        none_ok=True,
    )
    # the server ``api_key`` was configured with (its base_url then; None: the default server); it goes only there
    api_key_server: str | None = None
    _listeners: list[Callable[[str, Any], None]] = field(default_factory=list, repr=False)

    def __setattr__(self, name: str, value: Any) -> None:
        """Every declared setting is checked however it is set, ``SESSION.gap_timeout = -1`` included."""
        spec = SETTINGS.get(name) if "SETTINGS" in globals() else None
        object.__setattr__(self, name, value if spec is None else spec.check(value))

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

    def check(self, **kw: Any) -> dict[str, Any]:
        """Each value as it would be stored, or the first InvalidParameterError; changes nothing.

        Names are settings (the table above) or request parameters; anything else is refused with the nearest
        name."""
        checked: dict[str, Any] = {}
        for name, value in kw.items():
            spec = SETTINGS.get(name)
            if spec is not None:
                checked[name] = spec.check(value)
            else:
                p = params.get(name, also=tuple(SETTINGS))
                checked[p.name] = None if value is None else p.check(value)
        return checked

    def update(self, **kw: Any) -> None:
        """Set settings or parameters by name: all are checked before any is applied (a refused value changes
        nothing); listeners hear of every change (the key as None: it is never passed around)."""
        checked = self.check(**kw)
        if "api_key" in checked:  # the key belongs to the server configured with it, in this call or before
            server = checked.get("base_url", self.base_url)
            self.api_key_server = None if checked["api_key"] is None or not server else server.rstrip("/")
        for name, value in checked.items():
            if name in SETTINGS:
                setattr(self, name, value)
                self._notify(name, None if name == "api_key" else value)
            else:
                self.set_param(name, value)

    def reset(self, name: str) -> None:
        """A setting back to its declared default, or a request parameter back to the server's."""
        if name in SETTINGS:
            self.update(**{name: SETTINGS[name].default})
        else:
            self.set_param(name, None)

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
        if self.goes_to_bundled(model_id):
            url = _start_local(model_id)
            log.debug("routing: %s goes to the bundled local server %s (no base_url configured)", model_id, url)
            return url
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
        if self.goes_to_bundled(model_id):
            url = _start_local(model_id)
            log.info(
                "routing: %s is a bundled local model; sent to %s, not the session's %s", model_id, url, configured
            )
            return url
        from .. import local

        if not entry.local and configured in {u.rstrip("/") for u in local.base_urls()}:
            env = os.environ.get("WCODE_BASE_URL")
            url = check_base_url(env, "WCODE_BASE_URL") if env else WCODE_BASE_URL
            log.info("routing: %s is a wcode model; sent to %s, not the bundled local server", model_id, url)
            return url
        return None

    def goes_to_bundled(self, model_id: str) -> bool:
        """Whether a call for ``model_id`` (no base_url of its own) goes to the model's bundled in-process server,
        started on first use, rather than to the configured server: a ``local/*`` model with no server
        configured, or with one that is not on this machine, or with another bundled server (each serves only its
        own models). A loopback server the user configured may be ``wcode-magic serve``, which serves them too."""
        entry = catalog.lookup(model_id)
        if entry is None or not entry.local:
            return False
        if not self.base_url:
            return True
        from .. import local

        configured = check_base_url(self.base_url)
        own = local.url_for(model_id)  # an in-process server serves only its own local models
        elsewhere = configured in {u.rstrip("/") for u in local.base_urls()} and (
            own is None or own.rstrip("/") != configured
        )
        return elsewhere or not is_loopback(configured)

    def destination(self, model_id: str) -> str | None:
        """Where a call for ``model_id`` would go now (``resolve_base_url``), without starting anything: None
        when that is a bundled local server not running yet (the call would start it)."""
        from .. import local

        if self.goes_to_bundled(model_id) and local.url_for(model_id) is None:
            return None
        return self.resolve_base_url(None, model_id)

    def key_for(self, base_url: str, api_key: str | Secret | None) -> Secret | None:
        """The key to send to ``base_url``, by ``keys.KEY_RULE``; InvalidParameterError naming ``base_url`` when
        that key would go over plain http to another machine.

        Switching the session to another server (``use_wcode``, ``use_local``, ``auto``, a second
        ``configure(base_url=...)``) leaves a configured key behind, and switching back picks it up again; a
        per-call ``base_url`` other than the key's own server never gets it.
        """
        if api_key is not None:
            key: Secret | None = SETTINGS["api_key"].check(api_key)
        elif self.api_key is not None and base_url.rstrip("/") == self.key_home():
            key = self.api_key
        else:
            key = stored_key() if is_wcode(base_url) else None
        if key is not None:
            check_key_transport(base_url)
        return key

    def known_keys(self) -> tuple[Secret, ...]:
        """Every key this session could send (configured, ``WCODE_API_KEY``, the key file): what a prompt's
        placeholders must not fill in and what is masked in a stored answer. A key file that cannot be used
        is left out here; the call that needs it says why."""
        try:
            stored = stored_key()
        except WcodeError:
            stored = None
        return tuple(k for k in (self.api_key, stored) if k is not None)

    def key_home(self) -> str:
        """The server the configured key is for (see ``KEY_RULE``): the one it was configured with, else the
        default server."""
        if self.api_key_server is not None:
            return self.api_key_server
        env = os.environ.get("WCODE_BASE_URL", "").strip().rstrip("/")
        return env or WCODE_BASE_URL


SETTINGS: dict[str, Setting] = {
    f.name: replace(f.metadata["setting"], name=f.name, default=f.default)
    for f in fields(Settings)
    if "setting" in f.metadata
}
SESSION = Settings()


def configure(**kw: Any) -> Settings:
    """Set session defaults: ``model``, ``base_url``, ``api_key``, ``system``, timeouts, retries, ``history``,
    or any request parameter (``temperature=0.2``). Every value is checked before any is applied (a bad one
    raises InvalidParameterError naming it, the value and what it takes); returns the session."""
    checked = SESSION.check(**kw)
    key_waits = SESSION.api_key is not None and SESSION.api_key_server is None and "api_key" not in checked
    if key_waits and checked.get("base_url"):  # configure(api_key=K), then configure(base_url=X): K is for X
        SESSION.api_key_server = checked["base_url"].rstrip("/")
    SESSION.update(**checked)
    return SESSION


def _start_local(model_id: str) -> str:
    """The in-process server of a local model, started if needed; the transformer without its optional extra is
    a ConfigurationError saying what to install."""
    from .. import local

    try:
        return local.start_for(model_id)
    except RuntimeError as e:
        raise ConfigurationError(f"{e}.") from None
