"""The ``%wcode`` subcommands: choose the model, set session defaults, manage the key, look at history and usage.

Everything writes the one ``SESSION`` (so the panel, which listens to it, follows) and validates with the
parameter declarations before changing anything. Heavy imports (pandas, the panel) happen only in the command
that needs them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import catalog, flags, params, session
from .conversations import CONVERSATIONS
from .errors import InvalidParameterError
from .run import CellError, _is_loopback
from .settings import SESSION, clear_key, key_file, key_source, save_key, stored_key

_SETTINGS_BOOL = ("history",)
_SETTINGS_FLOAT = ("gap_timeout", "connect_timeout", "retry_cap_s")
_SETTINGS_INT = ("max_retries",)
_SETTINGS_TEXT = ("model", "system", "base_url")


def models(args: list[str]) -> Any:
    """The catalog as a DataFrame (id, aliases, context, prices in CNY per 1,000 tokens, thinking)."""
    return catalog.models()


def use(args: list[str]) -> str:
    """``use MODEL`` (id or alias), ``use local [MODEL]``, ``use wcode [MODEL]``."""
    if not args:
        raise CellError("%wcode use MODEL: give a model id or alias (`%wcode models` lists them), or local / wcode.")
    name, rest = args[0], args[1:]
    if name == "wcode":
        url = session.use_wcode(rest[0] if rest else None)
        return f"Using wcode.net ({url}), model {SESSION.model}."
    if name == "local":
        url = session.use_local(*(catalog.resolve(m) for m in rest[:1]))
        return f"Using the bundled local model {SESSION.model} at {url} (word statistics, not an LLM)."
    entry = catalog.lookup(name)
    if entry is not None and entry.local:
        url = session.use_local(entry.id)
        return f"Using the bundled local model {entry.id} at {url} (word statistics, not an LLM)."
    if entry is not None and _is_loopback(SESSION.base_url):  # a wcode model asked for while on the local server
        url = session.use_wcode(entry.id)
        return f"Using wcode.net ({url}), model {SESSION.model}."
    SESSION.update(model=catalog.resolve(name))
    where = SESSION.base_url or "the default server"
    known = "" if entry is not None else " (not in the catalog: sent as written, no price known)"
    return f"Model {SESSION.model} at {where}{known}."


def _setting_value(name: str, text: str) -> Any:
    """A checked value for a session setting or request parameter, or InvalidParameterError naming it."""
    if name in _SETTINGS_BOOL:
        return params.Param(name, "bool", "", "").parse(text)
    if name in _SETTINGS_FLOAT:
        return params.Param(name, "float", "", "", min=0.1).parse(text)
    if name in _SETTINGS_INT:
        return params.Param(name, "int", "", "", min=0, max=10).parse(text)
    if name in _SETTINGS_TEXT:
        return catalog.resolve(text) if name == "model" else text or None
    if name == "api_key":
        raise InvalidParameterError("Set the key with `%wcode key` (asked without echo), never on a command line.")
    return params.get(name).parse(text)


def set_(args: list[str]) -> str:
    """``set NAME=VALUE ...``: every pair is checked before any is applied."""
    if not args:
        raise CellError("%wcode set NAME=VALUE ...: e.g. %wcode set temperature=0.2 top_k=5 (see %wcode help).")
    changes: dict[str, Any] = {}
    for arg in args:
        name, sep, text = arg.partition("=")
        if not sep:
            raise CellError(f"%wcode set: {arg!r} is not NAME=VALUE (e.g. temperature=0.2).")
        name = name.strip().replace("-", "_")
        try:
            changes[name] = _setting_value(name, text)
        except InvalidParameterError as e:
            raise CellError(f"%wcode set: {e.message}") from None
    try:
        params.validate({k: v for k, v in {**SESSION.params, **changes}.items() if k in params.PARAMS}, warn=False)
    except InvalidParameterError as e:
        raise CellError(f"%wcode set: {e.message}") from None
    for name, value in changes.items():
        if name in params.PARAMS:
            SESSION.set_param(name, value)
        else:
            SESSION.update(**{name: value})
    return "Set " + ", ".join(f"{k}={v!r}" for k, v in changes.items()) + "."


def unset(args: list[str]) -> str:
    """``unset NAME ...``: back to the server's default (or the session's, for settings)."""
    if not args:
        raise CellError("%wcode unset NAME ...: e.g. %wcode unset temperature.")
    for name in (a.replace("-", "_") for a in args):
        if name in _SETTINGS_TEXT:
            SESSION.update(**{name: None})
        elif name == "history":
            SESSION.update(history=True)
        else:
            try:
                SESSION.set_param(name, None)
            except InvalidParameterError as e:
                raise CellError(f"%wcode unset: {e.message}") from None
    return "Unset " + ", ".join(args) + "."


def config(args: list[str]) -> str:
    """The session's settings; the key only masked, with where it comes from."""
    from .history_store import db_path, enabled

    if SESSION.api_key is not None:
        key = f"{SESSION.api_key.masked()} (wm.configure), sent to {SESSION.base_url or 'the configured server'}"
    elif stored_key() is not None:
        key = f"{stored_key().masked()} from {key_source()}, sent to wcode.net only"  # type: ignore[union-attr]
    else:
        key = "none (set one with %wcode key, or use the local model: %wcode use local)"
    hist = f"on, {db_path()}" if enabled() else "off"
    convs = ", ".join(f"{n} ({CONVERSATIONS.get(n).turns} turns)" for n in CONVERSATIONS.names()) or "none yet"
    rows = [
        ("model", SESSION.resolve_model(None)),
        ("base_url", SESSION.base_url or "(by model: wcode.net, or the local server for local/*)"),
        ("key", key),
        ("system", SESSION.system or "(none)"),
        ("params", ", ".join(f"{k}={v!r}" for k, v in SESSION.params.items()) or "(server defaults)"),
        ("history", hist),
        ("timeouts", f"gap {SESSION.gap_timeout:g} s, connect {SESSION.connect_timeout:g} s"),
        ("retries", f"{SESSION.max_retries}, waits capped at {SESSION.retry_cap_s:g} s"),
        ("conversations", convs),
    ]
    return "\n".join(f"{name:<14}{value}" for name, value in rows)


def key(args: list[str]) -> str:
    """``key``: ask with getpass (never echoed) and store with mode 0600; ``key --clear`` removes it."""
    if args and args[0] == "--clear":
        return f"Removed the stored key ({key_file()})." if clear_key() else "There was no stored key."
    if args:
        raise CellError("%wcode key takes no value (it asks for the key without echo); or: %wcode key --clear.")
    import getpass

    entered = getpass.getpass("wcode.net API key (input hidden): ").strip()
    if not entered:
        return "No key entered; nothing changed."
    path = save_key(entered)
    return f"Key saved to {path} (readable only by you); it is sent to wcode.net only."


def history_(args: list[str]) -> Any:
    """``history [N]``: the last N exchanges (20 by default) as a DataFrame."""
    from .history_store import history

    try:
        n = int(args[0]) if args else 20
    except ValueError:
        raise CellError(f"%wcode history N: {args[0]!r} is not a number.") from None
    return history(n)


def usage(args: list[str]) -> Any:
    """Session tokens and cost (CNY) by model."""
    from .usage import usage as totals

    return totals()


def reset(args: list[str]) -> str:
    """``reset [NAME]`` forgets one conversation (the default one); ``reset --all`` forgets every one."""
    if args and args[0] == "--all":
        names = CONVERSATIONS.names()
        for name in names:
            CONVERSATIONS.reset(name)
        return f"Forgot {len(names)} conversation(s)."
    name = args[0] if args else None
    had = CONVERSATIONS.reset(name)
    return f"Conversation {name or 'default'!r} {'cleared' if had else 'was already empty'}."


def panel(args: list[str]) -> Any:
    """The parameter panel (ipywidgets), sharing this session."""
    from .panel_widget import panel as make_panel

    return make_panel()


def help_(args: list[str]) -> str:
    """This help: every subcommand and every %%chat option, with the allowed values.

    Built from the subcommands' docstrings and the parameter declarations, so it cannot drift from the code.
    """
    lines = [
        "%%chat [options]      send the cell, continuing the conversation (%%wcode: one answer outside any)",
        "%wcode PROMPT         one answer outside any conversation (%wcode OPTIONS -- PROMPT for options)",
        "",
        "%wcode subcommands:",
    ]
    for name, fn in COMMANDS.items():
        doc = (fn.__doc__ or "").strip().splitlines()[0].replace("``", "")  # docstring markup, not for the reader
        lines.append(f"  {name:<9} {doc}")
    lines += [
        "",
        "%wcode set NAME=VALUE takes any request parameter below (by its name, e.g. top_k=5) and model, system,",
        "base_url, history=on|off, gap_timeout, connect_timeout, max_retries, retry_cap_s.",
        "In prompts, {name} and {name.attr} are filled from your variables; {{x}} gives a literal {x}.",
        "A trailing ; on the magic line hides the result (the streamed answer stays); -o VAR keeps it in VAR.",
        "",
        flags.usage_text(),
    ]
    return "\n".join(lines)


COMMANDS: dict[str, Callable[[list[str]], Any]] = {
    "models": models,
    "use": use,
    "set": set_,
    "unset": unset,
    "config": config,
    "key": key,
    "history": history_,
    "usage": usage,
    "reset": reset,
    "help": help_,
    "panel": panel,
}


def is_command(line: str) -> bool:
    words = line.split(maxsplit=1)
    return bool(words) and words[0] in COMMANDS


def dispatch(line: str) -> Any:
    """Run one subcommand line; text results are printed, objects (DataFrames, the panel) returned for display."""
    words = line.split(maxsplit=1)
    if not words:
        return help_([])
    try:
        args = flags.split(words[1]) if len(words) > 1 else []
    except flags.FlagError as e:
        raise CellError(f"%wcode {words[0]}: {e}") from None
    return COMMANDS[words[0]](args)
