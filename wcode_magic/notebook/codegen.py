""" "Show code": the ``%%chat`` cell and the ``wm.chat(...)`` call that send the same request as the panel.

Pure string building. Flags come from ``Param.flag`` exactly as the magics derive them, with the magics' own
shorthands: ``-m MODEL``, ``--system TEXT``, ``--logprobs N`` (logprobs on with the top N alternatives),
``--think`` / ``--no-think`` and ``--effort LEVEL`` (thinking on at that effort) for the reasoning object,
``--extra-body JSON`` for server-specific fields. Values are quoted so that the
magics' shell-style parser reads them back unchanged (``--stop "###"``, ``--logit-bias '{"1": -100}'``).

Every value must read back unchanged, and a magic line is one line that ``shlex`` splits and argparse reads:
a value starting with a dash is written ``--flag=-x`` (argparse would take ``-x`` for an option), and a stop
string that the plain form would change (line breaks, ``--``, whitespace at its ends, a leading ``[``/``{``/``"``,
which read as JSON) is written as JSON. JSON is kept on one line: ``json.dumps`` escapes control characters but
not U+0085, U+2028 and U+2029, at which Python's ``splitlines`` (and so IPython) breaks a cell too.

The cell must send the same request, not just the same parameters: a prompt with braces gets
``--no-interpolate`` (the panel sends braces as written, ``%%chat`` would fill ``{name}`` and unescape ``{{``),
and ``--new`` keeps the cell from continuing the magics' own conversation.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from ..core.params import PARAMS

_BARE = re.compile(r"[\w@%+=:,./-]+")


def quote(text: str) -> str:
    """Shell-style quoting that stays readable: bare when safe, "double quotes" when possible, else 'single'."""
    if _BARE.fullmatch(text):
        return text
    if not any(c in text for c in '"\\$`\n'):
        return f'"{text}"'
    return shlex.quote(text)


def fits_on_line(text: str) -> bool:
    """Whether ``text`` can be an option's value on the magic line: no line break (any of those
    ``str.splitlines`` breaks at, as IPython does), and not ``--``, which argparse drops even from ``--flag=--``."""
    return "".join(text.splitlines()) == text and text != "--"


def _json(value: Any) -> str:
    """JSON on one line, non-ASCII kept readable."""
    text = json.dumps(value, ensure_ascii=False)
    for char in "\x85\u2028\u2029":  # the line breaks json.dumps leaves as they are
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text


def _value_text(name: str, value: Any) -> str:
    """The text of a flag's value that ``Param.parse`` reads back as ``value`` (before shell quoting)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return _json(value)
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    if PARAMS[name].kind == "stop" and (not fits_on_line(text) or text != text.strip() or text[:1] in '[{"'):
        return _json(text)  # Param.parse strips the text and reads a leading [ { " as JSON
    return text


def _option(flag: str, text: str) -> list[str]:
    """``--flag VALUE``, or ``--flag=VALUE`` for a value that starts with a dash (argparse reads ``-x`` and
    ``-1e-05`` as options)."""
    return [f"{flag}={quote(text)}"] if text.startswith("-") else [flag, quote(text)]


def flags(params: Mapping[str, Any]) -> list[str]:
    """The ``%%chat`` options for these parameter values (None values are not set and give no flag)."""
    out: list[str] = []
    values = {k: v for k, v in params.items() if v is not None}
    logprobs = values.pop("logprobs", None)
    top = values.pop("top_logprobs", None)
    if logprobs:
        # "--logprobs N" means the top N alternatives, but the magics read 0 and 1 as booleans.
        if top and top > 1:
            out += ["--logprobs", str(top)]
        else:
            out += ["--logprobs", "true"] + ([PARAMS["top_logprobs"].flag, str(top)] if top is not None else [])
    else:
        if logprobs is False:
            out += [PARAMS["logprobs"].flag, "false"]
        if top is not None:
            out += [PARAMS["top_logprobs"].flag, str(top)]
    reasoning = values.pop("reasoning", None)
    for name, value in values.items():
        out += _option(PARAMS[name].flag, _value_text(name, value))
    if reasoning:
        # The magics read --think/--no-think as {"enabled": ...} and --effort E as {"enabled": true, "effort": E}.
        if reasoning == {"enabled": reasoning.get("enabled")}:
            out.append("--think" if reasoning["enabled"] else "--no-think")
        elif reasoning == {"enabled": True, "effort": reasoning.get("effort")}:
            out += ["--effort", reasoning["effort"]]
        else:
            out += [PARAMS["reasoning"].flag, quote(_json(reasoning))]
    return out


def chat_line(
    model: str | None = None,
    system: str | None = None,
    params: Mapping[str, Any] | None = None,
    extra_body: Mapping[str, Any] | None = None,
    *,
    new: bool = False,
    no_interpolate: bool = False,
    tools: Sequence[str] = (),
    schema: str | Mapping[str, Any] | None = None,
) -> str:
    """The ``%%chat`` first line: ``%%chat -m MODEL --system "..." --temperature 0.2 ...``; ``tools`` are the names
    of the notebook's functions the model may call (``--tools a,b``)."""
    parts = ["%%chat"]
    if new:
        parts.append("--new")
    if tools:
        parts += ["--tools", ",".join(tools)]
    if model:
        parts += _option("--model", model) if model.startswith("-") else ["-m", quote(model)]
    if system and fits_on_line(system):  # a magic line cannot hold a line break; see notes()
        parts += _option("--system", system)
    if no_interpolate:
        parts.append("--no-interpolate")
    parts += flags(params or {})
    if extra_body:
        parts += ["--extra-body", quote(_json(dict(extra_body)))]
    if schema is not None:
        parts += ["--schema", quote(schema if isinstance(schema, str) else _json(dict(schema)))]
    return " ".join(parts)


def has_braces(prompt: str) -> bool:
    """Whether ``%%chat`` could read something in the prompt as a ``{placeholder}`` (or an escaped brace)."""
    return "{" in prompt or "}" in prompt


def chat_cell(
    prompt: str,
    model: str | None = None,
    system: str | None = None,
    params: Mapping[str, Any] | None = None,
    extra_body: Mapping[str, Any] | None = None,
    *,
    new: bool = False,
    tools: Sequence[str] = (),
    schema: str | Mapping[str, Any] | None = None,
) -> str:
    """A whole ``%%chat`` cell: the options line, then the prompt as the cell body.

    A prompt with braces gets ``--no-interpolate``, so the cell sends it exactly as written, as the panel does;
    ``new`` adds ``--new``, so the cell does not continue the magics' conversation.
    """
    line = chat_line(
        model, system, params, extra_body, new=new, no_interpolate=has_braces(prompt), tools=tools, schema=schema
    )
    return f"{line}\n{prompt}"


def compare_cell(
    prompt: str,
    models: Sequence[str],
    system: str | None = None,
    params: Mapping[str, Any] | None = None,
    extra_body: Mapping[str, Any] | None = None,
    *,
    schema: str | Mapping[str, Any] | None = None,
) -> str:
    """A whole ``%%compare`` cell: ``-m`` per model, then ``%%chat``'s options, then the prompt."""
    line = chat_line(None, system, params, extra_body, no_interpolate=has_braces(prompt), schema=schema)
    runs = " ".join(part for m in models for part in ("-m", quote(m)))
    return f"%%compare {runs}{line.removeprefix('%%chat')}\n{prompt}"


def python_call(
    prompt: str,
    model: str | None = None,
    system: str | None = None,
    params: Mapping[str, Any] | None = None,
    *,
    base_url: str | None = None,
    extra_body: Mapping[str, Any] | None = None,
    tools: Sequence[str] = (),
    schema: str | Mapping[str, Any] | None = None,
    models: Sequence[str] = (),
) -> str:
    """``wm.chat(...)`` with the same request, one keyword per line, as valid Python (``tools`` by their names, the
    functions the notebook defines); with ``models``, ``wm.compare(...)`` over them instead."""
    args = [repr(prompt)]
    if models:
        args.append(f"models={list(models)!r}")
    elif model:
        args.append(f"model={model!r}")
    if tools:
        args.append(f"tools=[{', '.join(tools)}]")
    if system:
        args.append(f"system={system!r}")
    if base_url:
        args.append(f"base_url={base_url!r}")
    args += [f"{name}={value!r}" for name, value in (params or {}).items() if value is not None]
    if extra_body:
        args.append(f"extra_body={dict(extra_body)!r}")
    if schema is not None:
        args.append(f"schema={schema if isinstance(schema, str) else dict(schema)!r}")
    body = "".join(f"    {a},\n" for a in args)
    return f"import wcode_magic as wm\n\nwm.{'compare' if models else 'chat'}(\n{body})"


def notes(
    system: str | None = None, base_url: str | None = None, earlier_turns: int = 0, *, bundled_local: bool = False
) -> list[str]:
    """What the ``%%chat`` cell cannot say by itself. The panel shares this session, which already holds it, so
    the note says so and only asks for the ``wm.configure`` line in another notebook or kernel."""
    out = []
    if earlier_turns:
        out.append(
            f"This conversation has {earlier_turns} earlier exchange{'s' if earlier_turns > 1 else ''}: the cell and "
            "the call above send only this prompt, without them (%%chat cannot replay a conversation it did not "
            "have)."
        )
    if system and not fits_on_line(system):
        out.append(
            "The %%chat line cannot hold a system prompt of several lines. This session already has it; "
            "in another notebook, run `wm.configure(system=...)` first."
        )
    if base_url and bundled_local:
        out.append(
            f"In this session %%chat sends it to the bundled local model ({base_url}). That server belongs to this "
            "kernel: in another notebook run `wm.use_local()` first (a local/... model id also starts it by itself)."
        )
    elif base_url:
        out.append(
            f"In this session %%chat sends it to {base_url}. In another notebook, run "
            f"`wm.configure(base_url={base_url!r})` first."
        )
    return out


def show(
    prompt: str,
    model: str | None = None,
    system: str | None = None,
    params: Mapping[str, Any] | None = None,
    *,
    base_url: str | None = None,
    extra_body: Mapping[str, Any] | None = None,
    new: bool = False,
    earlier_turns: int = 0,
    bundled_local: bool = False,
    tools: Sequence[str] = (),
    schema: str | Mapping[str, Any] | None = None,
    models: Sequence[str] = (),
) -> str:
    """Markdown with both forms and any notes, for the panel's "Show code".

    ``new``: the magics' default conversation has turns, which a plain ``%%chat`` would continue.
    ``earlier_turns``: the panel's own conversation so far, which neither form can send.
    ``bundled_local``: ``base_url`` is this kernel's bundled local server, whose port means nothing elsewhere: the
    call leaves it out (a local/... model id starts the server by itself).
    ``models``: the panel's Compare mode: a ``%%compare`` cell and a ``wm.compare`` call over them.
    """
    url = None if bundled_local and (model or "").startswith("local/") else base_url
    if models:
        cell = compare_cell(prompt, models, system, params, extra_body, schema=schema)
        earlier_turns = 0  # a compare is one prompt on its own
    else:
        cell = chat_cell(prompt, model, system, params, extra_body, new=new, tools=tools, schema=schema)
    call = python_call(
        prompt, model, system, params, base_url=url, extra_body=extra_body, tools=tools, schema=schema, models=models
    )
    parts = ["```\n" + cell + "\n```", "```python\n" + call + "\n```"]
    parts += [f"- {n}" for n in notes(system, base_url, earlier_turns, bundled_local=bundled_local)]
    return "\n\n".join(parts)
