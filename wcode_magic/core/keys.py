"""The API key: a ``Secret`` that never prints itself, and the key file that keeps it between sessions.

Where a key may be sent is the settings' business (``Settings.key_for``); this module only holds, cleans, stores
and reads it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import InvalidParameterError


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
        if len(v) < 8:
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
    key = clean_key(key, "the key")
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
        return Secret(env, "WCODE_API_KEY")
    path = key_file()
    if path.exists():
        text = path.read_text().strip()
        if text:
            return Secret(text, f"the key in {path}")
    return None


def key_source() -> str | None:
    """Where the stored key comes from, for ``%wcode config`` (never the key itself)."""
    if os.environ.get("WCODE_API_KEY", "").strip():
        return "WCODE_API_KEY"
    if key_file().exists():
        return str(key_file())
    return None
