""" "Show code": the ``%%chat`` cell and the ``wm.chat(...)`` call that send the same request as the panel.

Pure string building. Flags come from ``Param.flag`` exactly as the magics derive them, with the magics' own
shorthands: ``-m MODEL``, ``--system TEXT``, ``--logprobs N`` (logprobs on with the top N alternatives),
``--think`` / ``--no-think`` and ``--effort LEVEL`` (thinking on at that effort) for the reasoning object,
``--extra-body JSON`` for server-specific fields. Values are quoted so that the
magics' shell-style parser reads them back unchanged (``--stop "###"``, ``--logit-bias '{"1": -100}'``).

The cell must send the same request, not just the same parameters: a prompt with braces gets
``--no-interpolate`` (the panel sends braces as written, ``%%chat`` would fill ``{name}`` and unescape ``{{``),
and ``--new`` keeps the cell from continuing the magics' own conversation.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
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


def _flag_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return quote(json.dumps(value, ensure_ascii=False))
    if isinstance(value, float):
        return repr(value)
    return quote(str(value))


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
            out += ["--logprobs", "true"] + ([PARAMS["top_logprobs"].flag, str(top)] if top else [])
    else:
        if logprobs is False:
            out += [PARAMS["logprobs"].flag, "false"]
        if top is not None:
            out += [PARAMS["top_logprobs"].flag, str(top)]
    reasoning = values.pop("reasoning", None)
    for name, value in values.items():
        out += [PARAMS[name].flag, _flag_value(value)]
    if reasoning:
        # The magics read --think/--no-think as {"enabled": ...} and --effort E as {"enabled": true, "effort": E}.
        if reasoning == {"enabled": reasoning.get("enabled")}:
            out.append("--think" if reasoning["enabled"] else "--no-think")
        elif reasoning == {"enabled": True, "effort": reasoning.get("effort")}:
            out += ["--effort", reasoning["effort"]]
        else:
            out += [PARAMS["reasoning"].flag, _flag_value(reasoning)]
    return out


def chat_line(
    model: str | None = None,
    system: str | None = None,
    params: Mapping[str, Any] | None = None,
    extra_body: Mapping[str, Any] | None = None,
    *,
    new: bool = False,
    no_interpolate: bool = False,
) -> str:
    """The ``%%chat`` first line: ``%%chat -m MODEL --system "..." --temperature 0.2 ...``."""
    parts = ["%%chat"]
    if new:
        parts.append("--new")
    if model:
        parts += ["-m", quote(model)]
    if system and "\n" not in system:  # a magic line cannot hold a line break; see notes()
        parts += ["--system", quote(system)]
    if no_interpolate:
        parts.append("--no-interpolate")
    parts += flags(params or {})
    if extra_body:
        parts += ["--extra-body", _flag_value(dict(extra_body))]
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
) -> str:
    """A whole ``%%chat`` cell: the options line, then the prompt as the cell body.

    A prompt with braces gets ``--no-interpolate``, so the cell sends it exactly as written, as the panel does;
    ``new`` adds ``--new``, so the cell does not continue the magics' conversation.
    """
    line = chat_line(model, system, params, extra_body, new=new, no_interpolate=has_braces(prompt))
    return f"{line}\n{prompt}"


def python_call(
    prompt: str,
    model: str | None = None,
    system: str | None = None,
    params: Mapping[str, Any] | None = None,
    *,
    base_url: str | None = None,
    extra_body: Mapping[str, Any] | None = None,
) -> str:
    """``wm.chat(...)`` with the same request, one keyword per line, as valid Python."""
    args = [repr(prompt)]
    if model:
        args.append(f"model={model!r}")
    if system:
        args.append(f"system={system!r}")
    if base_url:
        args.append(f"base_url={base_url!r}")
    args += [f"{name}={value!r}" for name, value in (params or {}).items() if value is not None]
    if extra_body:
        args.append(f"extra_body={dict(extra_body)!r}")
    body = "".join(f"    {a},\n" for a in args)
    return f"import wcode_magic as wm\n\nwm.chat(\n{body})"


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
    if system and "\n" in system:
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
) -> str:
    """Markdown with both forms and any notes, for the panel's "Show code".

    ``new``: the magics' default conversation has turns, which a plain ``%%chat`` would continue.
    ``earlier_turns``: the panel's own conversation so far, which neither form can send.
    ``bundled_local``: ``base_url`` is this kernel's bundled local server, whose port means nothing elsewhere: the
    call leaves it out (a local/... model id starts the server by itself).
    """
    url = None if bundled_local and (model or "").startswith("local/") else base_url
    parts = [
        "```\n" + chat_cell(prompt, model, system, params, extra_body, new=new) + "\n```",
        "```python\n" + python_call(prompt, model, system, params, base_url=url, extra_body=extra_body) + "\n```",
    ]
    parts += [f"- {n}" for n in notes(system, base_url, earlier_turns, bundled_local=bundled_local)]
    return "\n\n".join(parts)
