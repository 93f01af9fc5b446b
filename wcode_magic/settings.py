"""Session settings shared by wm.chat, the magics and the panel, and where the API key comes from.

One ``Settings`` object per kernel (``SESSION``): the magics' ``%wcode set`` and the panel's sliders write the
same ``params`` dict, and listeners keep the other front-end in step. The key is held as a ``Secret`` whose
repr never shows it, and is sent only where it belongs (see ``key_for``).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import catalog, params
from .errors import ConfigurationError

WCODE_BASE_URL = "https://wcode.net/api/gpt/v1"  # seeds/*: "base_url 替换为 https://wcode.net/api/gpt/v1"
WCODE_HOST = "wcode.net"
KEY_URL = "https://wcode.net/get-apikey"  # seeds/*: where a key is obtained


class Secret:
    """A string that never prints itself: safe in reprs, logs, tracebacks and saved notebooks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def masked(self) -> str:
        v = self._value
        return f"{v[:3]}…{v[-2:]}" if len(v) > 12 else "****"

    def __repr__(self) -> str:
        return f"Secret({self.masked()!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def config_dir() -> Path:
    """Where the key file lives: ``WCODE_CONFIG_DIR`` or the platform's user config dir."""
    override = os.environ.get("WCODE_CONFIG_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_config_dir("wcode-magic", appauthor=False))


def key_file() -> Path:
    return config_dir() / "key"


def save_key(key: str) -> Path:
    """Store the key for later sessions in a file only the user can read (mode 0600)."""
    path = key_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w") as f:
        f.write(key.strip())
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    return path


def clear_key() -> bool:
    """Remove the stored key; True if there was one."""
    path = key_file()
    if path.exists():
        path.unlink()
        return True
    return False


def stored_key() -> Secret | None:
    """The key from ``WCODE_API_KEY`` or, failing that, the key file."""
    env = os.environ.get("WCODE_API_KEY", "").strip()
    if env:
        return Secret(env)
    path = key_file()
    if path.exists():
        text = path.read_text().strip()
        if text:
            return Secret(text)
    return None


def key_source() -> str | None:
    """Where the stored key comes from, for ``%wcode config`` (never the key itself)."""
    if os.environ.get("WCODE_API_KEY", "").strip():
        return "WCODE_API_KEY"
    if key_file().exists():
        return str(key_file())
    return None


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
        """Explicit > configured > a local model's own server > WCODE_BASE_URL > wcode.net."""
        if base_url:
            return base_url.rstrip("/")
        if self.base_url:
            return self.base_url.rstrip("/")
        entry = catalog.lookup(model_id)
        if entry is not None and entry.local:
            from . import local

            return local.start()
        return (os.environ.get("WCODE_BASE_URL") or WCODE_BASE_URL).rstrip("/")

    def key_for(self, base_url: str, api_key: str | Secret | None) -> Secret | None:
        """The key to send to ``base_url``.

        An explicit key goes wherever the caller sends it. A key given to ``configure`` goes to the configured
        server. The stored key (environment or key file) goes only to the wcode host, so pointing the
        session at some other server never leaks it.
        """
        if api_key is not None:
            return api_key if isinstance(api_key, Secret) else Secret(api_key)
        if self.api_key is not None and (self.base_url is None or self.base_url.rstrip("/") == base_url):
            return self.api_key
        if is_wcode(base_url):
            return stored_key()
        return None


SESSION = Settings()


def configure(**kw: Any) -> Settings:
    """Set session defaults: ``model``, ``base_url``, ``api_key``, ``system``, timeouts, retries, ``history``,
    or any request parameter (``temperature=0.2``). Every value is validated; returns the session."""
    bad = [k for k in kw if k.startswith("_")]
    if bad:
        raise ConfigurationError(f"Unknown setting {bad[0]!r}.")
    SESSION.update(**kw)
    return SESSION
