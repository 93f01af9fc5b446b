"""The ``%wcode`` subcommands: choose the model, set session defaults, manage the key, look at history and usage.

Everything writes the one ``SESSION`` (so the panel, which listens to it, follows) and validates with the
parameter declarations before changing anything. Heavy imports (pandas, the panel) happen only in the command
that needs them.

A one-line ``%wcode WORDS`` whose first word is a subcommand's runs that subcommand, so each one checks its
arguments and refuses words it does not take (``Misuse``) instead of guessing: ``%wcode help me write a poem`` is
not help, ``%wcode use the force`` does not switch to a model called 'the'. The refusal says how to send the line
as a prompt instead: ``%wcode -- help me write a poem``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..core import catalog, params, session
from ..core.conversations import CONVERSATIONS
from ..core.errors import ConfigurationError, InvalidParameterError, WcodeError
from ..core.keys import clear_key, key_file, key_source, save_key, stored_key
from ..core.settings import SESSION, SETTINGS, is_wcode
from . import flags
from .run import CellError

_CELL_SETTINGS = [(name, spec) for name, spec in SETTINGS.items() if spec.cell]


class Misuse(Exception):
    """A subcommand's arguments do not fit it (perhaps the line was a prompt starting with its word)."""


def _no_args(name: str, args: list[str]) -> None:
    if args:
        raise Misuse(f"%wcode {name} takes no arguments.")


def models(args: list[str]) -> Any:
    """The catalog as a DataFrame (id, aliases, context, prices in CNY per 1,000 tokens, thinking)."""
    _no_args("models", args)
    return catalog.models()


def use(args: list[str]) -> str:
    """``use MODEL`` (id or alias), ``use local [MODEL]``, ``use wcode [MODEL]``."""
    if not args:
        raise CellError("%wcode use MODEL: give a model id or alias (`%wcode models` lists them), or local / wcode.")
    name, rest = args[0], args[1:]
    if name in ("local", "wcode") and len(rest) > 1:
        raise Misuse(f"%wcode use {name} takes at most one model id or alias.")
    if name == "wcode":
        if rest and _is_local(rest[0]):
            raise Misuse(f"{rest[0]} is a bundled local model, not a wcode.net one (`%wcode use {rest[0]}`).")
        url = session.use_wcode(rest[0] if rest else None)
        return f"Using wcode.net ({url}), model {SESSION.model}."
    if name == "local":
        if rest and not _is_local(rest[0]):
            local_ids = ", ".join(m.id for m in catalog.MODELS if m.local)
            raise Misuse(f"%wcode use local takes a local model ({local_ids}), not {rest[0]!r}.")
        url = session.use_local(*(catalog.resolve(m) for m in rest[:1]))
        return f"Using the bundled local model {SESSION.model} at {url} ({_note(SESSION.model)})."
    if rest:
        raise Misuse("%wcode use takes one model id or alias (or: use local [MODEL], use wcode [MODEL]).")
    entry = catalog.lookup(name)
    if entry is not None and entry.local:
        url = session.use_local(entry.id)
        return f"Using the bundled local model {entry.id} at {url} ({entry.note})."
    if entry is not None and session.is_bundled_local(
        SESSION.base_url
    ):  # the bundled server cannot serve a wcode model
        url = session.use_wcode(entry.id)
        return f"Using wcode.net ({url}), model {SESSION.model}."
    SESSION.update(model=catalog.resolve(name))
    where = SESSION.base_url or "the default server"
    known = "" if entry is not None else " (not in the catalog: sent as written, no price known)"
    return f"Model {SESSION.model} at {where}{known}."


def _note(model: str | None) -> str:
    entry = catalog.lookup(model or "")
    return entry.note if entry is not None and entry.note else "word statistics, not an LLM"


def _is_local(name: str) -> bool:
    entry = catalog.lookup(name)
    return entry is not None and entry.local


def _setting_value(name: str, text: str) -> Any:
    """A checked value for a session setting or request parameter, or InvalidParameterError naming it: the
    settings' own parsers (core/settings.py ``SETTINGS``) and the parameters' (core/params.py)."""
    spec = SETTINGS.get(name)
    if spec is not None:
        return spec.parse(text)
    return params.get(name, also=tuple(SETTINGS)).parse(text)


def set_(args: list[str]) -> str:
    """``set NAME=VALUE ...``: every pair is checked before any is applied."""
    if not args:
        raise CellError("%wcode set NAME=VALUE ...: e.g. %wcode set temperature=0.2 top_k=5 (see %wcode help).")
    changes: dict[str, Any] = {}
    for arg in args:
        name, sep, text = arg.partition("=")
        if not sep:
            raise Misuse(f"%wcode set: {arg!r} is not NAME=VALUE (e.g. temperature=0.2).")
        name = name.strip().replace("-", "_")
        try:
            changes[name] = _setting_value(name, text)
        except InvalidParameterError as e:
            hint = ""
            if "not valid JSON" in e.message:
                hint = f" Quote JSON in single quotes: %wcode set {name}='{{\"key\": 1}}'."
            raise CellError(f"%wcode set: {e.message}{hint}") from None
    try:
        params.validate({k: v for k, v in {**SESSION.params, **changes}.items() if k in params.PARAMS}, warn=False)
        SESSION.update(**changes)
    except InvalidParameterError as e:
        raise CellError(f"%wcode set: {e.message}") from None
    return "Set " + ", ".join(f"{k}={v!r}" for k, v in changes.items()) + "."


def unset(args: list[str]) -> str:
    """``unset NAME ...``: back to the server's default (or the session's, for settings)."""
    if not args:
        raise CellError("%wcode unset NAME ...: e.g. %wcode unset temperature.")
    names = [a.replace("-", "_") for a in args]
    for name in names:  # every name is checked before any is unset
        if name not in SETTINGS and name not in params.PARAMS:
            raise Misuse(f"%wcode unset: {name!r} is not a parameter or a setting (`%wcode help` lists them).")
    for name in names:
        SESSION.reset(name)
    return "Unset " + ", ".join(args) + "."


def _stored_key_or_problem() -> str | None:
    """The stored key as config shows it (masked, with its source), what is wrong with it, or None."""
    try:
        key = stored_key()
    except (InvalidParameterError, ConfigurationError) as e:  # the message never holds the key
        return f"unusable: {e.message}"
    return None if key is None else f"{key.masked()} from {key_source()}, sent to wcode.net only"


def _no_key(model: str) -> str:
    """The key row when no key is set, for the server the session's requests go to: only wcode.net needs
    ``%wcode key`` (the stored key goes nowhere else), the bundled local model needs none, and another server
    gets a key only from ``wm.configure``."""
    url = SESSION.base_url
    if session.is_bundled_local(url) or SESSION.goes_to_bundled(model):  # as the call would route it
        return "none needed: the bundled local model takes no key (for wcode.net models: %wcode key)"
    if url and not is_wcode(url):
        return f"none sent to {url} (if it needs one: wm.configure(api_key=...))"
    return "none (set one with %wcode key, or use the local model: %wcode use local)"


def config(args: list[str]) -> str:
    """The session's settings; the key only masked, with where it comes from."""
    from ..analysis.history import db_path, enabled

    _no_args("config", args)
    if SESSION.api_key is not None:
        key = f"{SESSION.api_key.masked()} (wm.configure), sent to {SESSION.key_home()} only"
    elif (stored := _stored_key_or_problem()) is not None:
        key = stored
    else:
        key = _no_key(SESSION.resolve_model(None))
    from ..analysis import recorder

    hist = f"on, {db_path()}" if enabled() else "off"
    recording = recorder.recording_path()
    replaying = recorder.replaying()
    convs = ", ".join(f"{n} ({CONVERSATIONS.get(n).turns} turns)" for n in CONVERSATIONS.names()) or "none yet"
    rows = [
        ("model", SESSION.resolve_model(None)),
        ("base_url", SESSION.base_url or "(by model: wcode.net, or the local server for local/*)"),
        ("key", key),
        ("system", SESSION.system or "(none)"),
        ("params", ", ".join(f"{k}={v!r}" for k, v in SESSION.params.items()) or "(server defaults)"),
        ("history", hist),
        ("cache", "on: identical completed requests are answered from the history" if SESSION.cache else "off"),
        ("recording", f"into {recording}" if recording else "off"),
        ("replay", f"{replaying[0]}{', strict' if replaying[1] else ''}, pace {replaying[2]}" if replaying else "off"),
        ("timeouts", f"gap {SESSION.gap_timeout:g} s, connect {SESSION.connect_timeout:g} s"),
        ("retries", f"{SESSION.max_retries}, waits capped at {SESSION.retry_cap_s:g} s"),
        ("budget", f"¥{SESSION.budget:g} (%wcode budget shows what is left)" if SESSION.budget else "no cap"),
        ("conversations", convs),
    ]
    return "\n".join(f"{name:<14}{value}" for name, value in rows)


def key(args: list[str]) -> str:
    """``key``: ask with getpass (never echoed) and store with mode 0600; ``key --clear`` removes it."""
    if args == ["--clear"]:
        return f"Removed the stored key ({key_file()})." if clear_key() else "There was no stored key."
    if args:  # never echoed back: the words may be the key itself
        raise Misuse("%wcode key takes no value (it asks for the key without echo); or: %wcode key --clear.")
    import getpass

    entered = getpass.getpass("wcode.net API key (input hidden): ").strip()
    if not entered:
        return "No key entered; nothing changed."
    try:
        path = save_key(entered)
    except ConfigurationError as e:  # a directory another user owns or may write to: say which, store nothing
        raise CellError(f"%wcode key: {e.message}") from None
    return f"Key saved to {path} (readable only by you); it is sent to wcode.net only."


def history_(args: list[str]) -> Any:
    """``history [N]``: the last N exchanges (20 by default) as a DataFrame."""
    from ..analysis.history import history

    if len(args) > 1:
        raise Misuse("%wcode history takes at most one number.")
    try:
        n = int(args[0]) if args else 20
    except ValueError:
        raise Misuse(f"%wcode history N: {args[0]!r} is not a number.") from None
    return history(n)


def usage(args: list[str]) -> Any:
    """Session tokens and cost (CNY) by model; replayed or cached answers cost nothing (saved_cny: their price)."""
    from ..analysis.usage import usage as totals

    _no_args("usage", args)
    return totals()


def budget_(args: list[str]) -> str:
    """``budget 5`` caps the session at ¥5 (asks before passing it); ``budget off``; ``budget`` shows what is left."""
    from ..core import budget

    if len(args) > 1:
        raise Misuse("%wcode budget takes one amount in CNY (e.g. %wcode budget 5), or off.")
    if args:
        try:
            SESSION.update(budget=SETTINGS["budget"].parse(args[0]))
        except InvalidParameterError as e:
            raise CellError(f"%wcode budget: {e.message}") from None
    cap, spent, held = SESSION.budget, budget.spent(), budget.reserved()
    running = f", {budget.yuan(held)} held by calls still running" if held else ""
    if cap is None:
        return f"No budget cap ({budget.yuan(spent)} spent this session{running}); %wcode budget 5 sets one in CNY."
    left = budget.left() or 0.0
    return (
        f"Budget {budget.yuan(cap)}: {budget.yuan(spent)} spent{running}, {budget.yuan(left)} left. A call or sweep "
        "whose worst case could pass what is left asks first; %wcode budget off removes the cap."
    )


def record(args: list[str]) -> str:
    """``record PATH`` records every exchange from now on into PATH (JSON Lines, no key); ``record off`` stops."""
    from ..analysis import recorder

    if len(args) != 1:
        raise Misuse("%wcode record takes one file path (quote it if it has spaces), or off.")
    if args[0] == "off":
        was = recorder.recording_path()
        recorder.record(None)
        return f"Stopped recording into {was}." if was else "No recording was on."
    try:
        recorder.record(args[0])
    except WcodeError as e:
        raise CellError(f"%wcode record: {e.message}") from None
    return f"Recording every exchange into {recorder.recording_path()} (never the key); %wcode record off stops."


def replay(args: list[str]) -> str:
    """``replay PATH [--strict] [--pace recorded]`` answers recorded requests from PATH; ``replay off`` stops."""
    from ..analysis import recorder

    if args == ["off"]:
        was = recorder.replaying()
        recorder.replay(None)
        return f"Stopped replaying {was[0]}." if was else "No replay was on."
    paths, strict, pace, rest = [], False, "instant", list(args)
    while rest:
        word = rest.pop(0)
        if word == "--strict":
            strict = True
        elif word == "--pace":
            if not rest:
                raise Misuse("%wcode replay --pace takes instant or recorded.")
            pace = rest.pop(0)
        elif word.startswith("--pace="):
            pace = word.partition("=")[2]
        elif word.startswith("-"):
            raise Misuse(f"%wcode replay: unknown option {word!r} (it takes --strict and --pace recorded).")
        else:
            paths.append(word)
    if len(paths) != 1:
        raise Misuse("%wcode replay takes one file path (quote it if it has spaces), --strict, --pace; or off.")
    try:
        recorder.replay(paths[0], strict=strict, pace=pace)  # type: ignore[arg-type]
    except WcodeError as e:
        raise CellError(f"%wcode replay: {e.message}") from None
    on = recorder.replaying()
    assert on is not None
    miss = "a request not in it is an error (nothing is sent)" if strict else "a request not in it is sent"
    return f"Replaying {on[3]} exchanges from {on[0]} at {pace} pace; {miss}. %wcode replay off stops."


def reset(args: list[str]) -> str:
    """``reset [NAME]`` forgets one conversation (the default one); ``reset --all`` forgets every one."""
    if len(args) > 1:
        raise Misuse("%wcode reset takes at most one conversation name (or --all).")
    if args == ["--all"]:
        names = CONVERSATIONS.names()
        for each in names:
            CONVERSATIONS.reset(each)
        return f"Forgot {len(names)} conversation(s)."
    name = args[0] if args else None
    had = CONVERSATIONS.reset(name)
    return f"Conversation {name or 'default'!r} {'cleared' if had else 'was already empty'}."


def panel(args: list[str]) -> Any:
    """The parameter panel (ipywidgets), sharing this session."""
    from .panel import panel as make_panel

    _no_args("panel", args)
    return make_panel()


def help_(args: list[str]) -> str:
    """This help: every subcommand and every %%chat option, with the allowed values.

    Built from the subcommands' docstrings and the parameter declarations, so it cannot drift from the code.
    """
    _no_args("help", args)
    lines = [
        "%%chat [options]      send the cell, continuing the conversation (%%wcode: one answer outside any)",
        "%wcode PROMPT         one answer outside any conversation (%wcode OPTIONS PROMPT with options)",
        "%wcode -- PROMPT      the same for a prompt that starts with a dash or a subcommand's word (%wcode -- help me ...)",
        "%%compare -m A -m B   the cell's prompt to several runs at once, in columns; returns wm.compare's DataFrame",
        "",
        "%wcode subcommands:",
    ]
    for name, fn in COMMANDS.items():
        doc = (fn.__doc__ or "").strip().splitlines()[0].replace("``", "")  # docstring markup, not for the reader
        lines.append(f"  {name:<9} {doc}")
    lines += [
        "",
        "%wcode set NAME=VALUE takes any request parameter below (by its name, e.g. top_k=5) and these settings",
        "(%wcode unset NAME goes back to the default):",
        *(f"  {name:<16}{spec.help} Takes {spec.allowed}; default {spec.default!r}." for name, spec in _CELL_SETTINGS),
        "In prompts, {name} and {name.attr} are filled from your variables; {{ and }} give literal braces ({{x}}",
        "gives {x}); other braces (dicts, JSON, code) stay as written; --no-interpolate sends the prompt as written.",
        "A trailing ; on the magic line hides the result (the streamed answer stays); -o VAR keeps it in VAR.",
        "",
        flags.usage_text(),
        "",
        flags.compare_usage_text(),
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
    "budget": budget_,
    "record": record,
    "replay": replay,
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
        return COMMANDS[words[0]](args)
    except (Misuse, flags.FlagError) as e:
        # the line may have been a prompt that starts with this subcommand's word; say how to send it as one
        what = str(e) if isinstance(e, Misuse) else f"%wcode {words[0]}: {e}"
        prompt = "key ..." if words[0] == "key" else line.strip()  # never repeat what may be a key
        raise CellError(f"{what} To send it as a prompt instead: %wcode -- {prompt}") from None
