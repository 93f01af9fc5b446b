"""The API key: a ``Secret`` that never prints itself, and the key file that keeps it between sessions.

Where a key may be sent is the settings' business (``Settings.key_for``); this module only holds, cleans, stores
and reads it.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import secrets
import stat
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigurationError, InvalidParameterError, WcodeWarning


def clean_key(value: str, name: str = "api_key") -> str:
    """The key without surrounding whitespace (a key read from a file ends in a newline); a key with whitespace,
    control or non-ASCII characters inside cannot go in an HTTP header, so it is refused, never shown."""
    text = value.strip()
    bad = next((c for c in text if not (33 <= ord(c) <= 126)), None)
    if not text or bad is not None:
        why = "is empty" if not text else f"contains {_char_name(bad)}"  # type: ignore[arg-type]
        raise InvalidParameterError(
            f"{name} is not allowed as given: it {why}. A key is one word of printable ASCII characters; "
            "check that it was copied whole, without a line break or a stray character.",
            param=name,
        )
    return text


def _char_name(c: str) -> str:
    if c.isspace():
        return "whitespace (a space or line break)"
    if ord(c) < 32 or ord(c) == 127:
        return f"a control character (U+{ord(c):04X})"
    return f"a non-ASCII character (U+{ord(c):04X})"


class Secret:
    """A string that never prints itself: safe in reprs, logs, tracebacks and saved notebooks.

    Surrounding whitespace is dropped and a key that could not go in a header is refused (``clean_key``).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str, name: str = "api_key") -> None:
        self._value = clean_key(value, name)

    def reveal(self) -> str:
        return self._value

    def masked(self) -> str:
        v = self._value
        return f"{v[:3]}…{v[-2:]}" if len(v) > 12 else "****"

    def scrub(self, text: str) -> str:
        """``text`` with this key replaced by its mask: for messages built from an exception's or a server's
        words, which may echo the key. A message quoting a cut-off excerpt (``raw[:200]``) can end inside the
        key, so its longest start found in the text (8 characters or more) is masked too. Keys shorter than 8
        characters ('EMPTY', 'x') are placeholders for servers that check none, and replacing them would garble
        the message."""
        v = self._value
        if len(v) < 8 or v[:8] not in text:  # the common case, one search: every echo masked below holds v[:8]
            return text
        text = text.replace(v, self.masked())
        for n in range(len(v) - 1, 7, -1):  # an echo cut off inside the key
            if v[:n] in text:
                return text.replace(v[:n], self.masked())
        return text

    def __repr__(self) -> str:
        return f"Secret({self.masked()!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


# Where a key may go, in one sentence: ``Settings.key_for`` follows it, the errors quote it, README states it.
KEY_RULE = (
    "A key goes only to the server it was given for, and only over https unless that server is on this machine: "
    "a key passed to a call goes to that call's server, a key given to configure goes to the base_url configured "
    "with it (given without one, to the next base_url configured, and until then to the default server, "
    "WCODE_BASE_URL or wcode.net), and the stored key (WCODE_API_KEY or %wcode key) goes only to wcode.net."
)


def is_loopback(base_url: str) -> bool:
    """Whether ``base_url`` names this machine (``localhost``, 127.0.0.0/8, ``::1``): traffic to it never
    crosses a network, so plain http cannot expose what it carries."""
    host = (urlsplit(base_url).hostname or "").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):  # RFC 6761: always this machine
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def check_key_transport(base_url: str) -> None:
    """Refuse, before anything is sent, to send a key to ``base_url`` over plain http off this machine: any proxy
    or router on the way could read the Authorization header (one logged it)."""
    if urlsplit(base_url).scheme.lower() == "https" or is_loopback(base_url):
        return
    raise InvalidParameterError(
        f"base_url={base_url!r} is not allowed with an API key: it is plain http to another machine, so the key "
        "would cross the network unencrypted, readable by any proxy on the way. Use its https:// address, or a "
        f"server on this machine (127.0.0.1, ::1, localhost). {KEY_RULE}",
        param="base_url",
        value=base_url,
    )


def scrub_all(value: Any, secrets: Iterable[Secret]) -> Any:
    """``value`` (text, or JSON made of dicts and lists) with every one of ``secrets`` masked wherever it appears
    (``Secret.scrub``); for what is stored or shown of a request or an answer."""
    if isinstance(value, str):
        for secret in secrets:
            value = secret.scrub(value)
        return value
    if isinstance(value, dict):
        return {k: scrub_all(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_all(v, secrets) for v in value]
    return value


def config_dir() -> Path:
    """Where the key file lives: ``WCODE_CONFIG_DIR`` or the platform's user config dir."""
    override = os.environ.get("WCODE_CONFIG_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_config_dir("wcode-magic", appauthor=False))


def key_file() -> Path:
    return config_dir() / "key"


def _not_safe(st: os.stat_result) -> str | None:
    """Why a file or directory with this status cannot be trusted with the key (as ssh's StrictModes judges), or
    None: another user who owns it or may write to it can read the key or swap in their own."""
    if st.st_uid != os.geteuid():
        return f"is owned by another user (uid {st.st_uid})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"is writable by other users (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def _trusted_dir(path: Path, *, create: bool) -> None:
    """Check (and when ``create``, make with mode 0700) the key file's directory; ConfigurationError if it is
    not the user's own or others may write to it. Its parents are the user's business, as for ssh's ~/.ssh."""
    if create and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # created meanwhile: checked below like any existing one
            os.mkdir(path, 0o700)  # the umask can only take bits away, so never more than 0700
    st = os.stat(path)
    why = "is not a directory" if not stat.S_ISDIR(st.st_mode) else _not_safe(st)
    if why is not None:
        raise ConfigurationError(
            f"The key's directory {path} {why}: another user could read the key or swap in theirs, so it is "
            f"not used. Make it yours alone (chmod 700 {path}) or point WCODE_CONFIG_DIR at a directory only you "
            "can write."
        )


def save_key(key: str) -> Path:
    """Store the key for later sessions in a file only the user can read (mode 0600).

    The directory is made 0700 and must be the user's own and not writable by others. The key goes to a new
    temporary file (``O_EXCL | O_NOFOLLOW``: a planted link is never followed) which is then renamed over
    ``key``: a rename replaces a link at that name instead of writing through it, and a reader never sees half a
    key.
    """
    key = clean_key(key, "the key")
    path = key_file()
    _trusted_dir(path.parent, create=True)
    tmp = path.with_name(f".key.{secrets.token_hex(8)}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags, stat.S_IRUSR | stat.S_IWUSR)
    try:
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), stat.S_IRUSR | stat.S_IWUSR)
            f.write(key)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def clear_key() -> bool:
    """Remove the stored key; True if there was one (a link at its place is removed, never followed)."""
    path = key_file()
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def _read_key_file(path: Path) -> str | None:
    """The key file's text, or None when there is none; ConfigurationError when it cannot be trusted.

    Opened with ``O_NOFOLLOW`` and judged by the open file's own status (no window between check and read). A
    file readable by others is used with a warning, as ssh does for a key with loose permissions.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno != errno.ELOOP:
            raise
        raise ConfigurationError(
            f"The key file {path} is a symbolic link: it is not followed, since it could point at another "
            "user's key. Remove it and store the key again with %wcode key."
        ) from None
    with os.fdopen(fd) as f:
        st = os.fstat(f.fileno())
        why = "is not a regular file" if not stat.S_ISREG(st.st_mode) else _not_safe(st)
        if why is not None:
            raise ConfigurationError(
                f"The key file {path} {why}: another user could read it or swap in their key, so it is not "
                "used. Remove it and store the key again with %wcode key."
            )
        _trusted_dir(path.parent, create=False)
        if st.st_mode & (stat.S_IRGRP | stat.S_IROTH):
            warnings.warn(
                f"The key file {path} is readable by other users (mode {stat.S_IMODE(st.st_mode):04o}); "
                f"make it private: chmod 600 {path}",
                WcodeWarning,
                stacklevel=3,
            )
        return f.read()


def stored_key() -> Secret | None:
    """The key from ``WCODE_API_KEY`` or, failing that, the key file (checked as ``_read_key_file`` says)."""
    env = os.environ.get("WCODE_API_KEY", "").strip()
    if env:
        return Secret(env, "WCODE_API_KEY")
    path = key_file()
    text = (_read_key_file(path) or "").strip()
    return Secret(text, f"the key in {path}") if text else None


def key_source() -> str | None:
    """Where the stored key comes from, for ``%wcode config`` (never the key itself)."""
    if os.environ.get("WCODE_API_KEY", "").strip():
        return "WCODE_API_KEY"
    if os.path.lexists(key_file()):
        return str(key_file())
    return None
