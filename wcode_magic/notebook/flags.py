"""The options of ``%%chat`` and ``%%wcode``, generated from the parameter declarations.

One flag per ``params.PARAMS`` entry (``--top-k 20``), plus the options that are about the cell rather than the
request (model, conversation, display). The line is split with ``shlex``, so quoted strings and JSON with spaces
arrive whole (``--stop "###"``, ``--logit-bias '{"123": -100}'``), and every value is checked by its ``Param``
before anything is sent. Every problem is one line (``FlagError``) naming the option and what it allows.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import json
import keyword
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from ..core import params
from ..core.errors import InvalidParameterError

FORMATS = ("markdown", "text", "code", "json")
_BOOL_WORDS = ("true", "false", "on", "off", "yes", "no", "1", "0")


class FlagError(ValueError):
    """A bad option or value in a magic's line; the message is one line and says what is allowed."""


@dataclass
class ChatOptions:
    """Everything a ``%%chat`` line asked for, checked and ready to use."""

    model: str | None = None
    system: str | None = None
    new: bool = False
    name: str | None = None
    stream: bool = True
    format: str = "markdown"
    insert: bool = False
    out: str | None = None
    interpolate: bool = True
    quiet: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    extra_body: dict[str, Any] = field(default_factory=dict)
    schema: str | None = None  # a spec string, JSON Schema text, or a notebook variable's name (run.prepare)
    prompt: str = ""
    tool_names: list[str] = field(default_factory=list)  # --tools f,g: functions from the notebook's namespace
    max_steps: int | None = None
    confirm: bool = False


class _Parser(argparse.ArgumentParser):
    """argparse that raises FlagError instead of printing usage and exiting the kernel."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise FlagError(_explain(message, self))

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        raise FlagError(message or "")


def _explain(message: str, parser: argparse.ArgumentParser) -> str:
    """argparse's wording plus a 'did you mean' for a misspelt flag."""
    if message.startswith("unrecognized arguments:"):
        unknown = message.split(":", 1)[1].split()
        flags = [s for a in parser._actions for s in a.option_strings]
        for token in unknown:
            if token.startswith("-"):
                close = difflib.get_close_matches(token.split("=")[0], flags, n=1, cutoff=0.6)
                hint = f" Did you mean {close[0]}?" if close else " `%wcode help` lists the options."
                return f"Unknown option {token}.{hint}"
        return (
            f"Unexpected text in the options: {' '.join(unknown)!r}. The prompt goes in the cell below the "
            "%%chat line; quote values that contain spaces."
        )
    return f"{message[0].upper()}{message[1:]}."


def _param_help(p: params.Param) -> str:
    default = "" if p.default is None else f" Default {json.dumps(p.default)}."
    return f"{p.help} Takes {p.allowed}.{default}".replace("%", "%%")


def build_parser(prog: str = "%%chat") -> argparse.ArgumentParser:
    """The parser: the cell options, then one flag per declared request parameter."""
    parser = _Parser(prog=prog, add_help=False, allow_abbrev=False, description="Options of %%chat and %%wcode.")
    cell = parser.add_argument_group("cell")
    cell.add_argument("-m", "--model", help="Model id or alias (`%%wcode models` lists them).")
    cell.add_argument("--system", help="System prompt for this conversation.")
    cell.add_argument("--new", action="store_true", help="Start a fresh conversation.")
    cell.add_argument("--name", help="Use the named conversation (several can run side by side).")
    _add_thinking(cell)
    cell.add_argument("--no-stream", action="store_true", help="Wait for the whole answer instead of streaming.")
    cell.add_argument("--format", default="markdown", help=f"How to show the answer: {' | '.join(FORMATS)}.")
    cell.add_argument("--insert", action="store_true", help="Put the answer's code into a new cell (--format code).")
    cell.add_argument("-o", "--out", help="Also store the Response in this variable.")
    cell.add_argument("--no-interpolate", action="store_true", help="Send {name} placeholders as written.")
    cell.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="Extra HTTP header for this request (a proxy's, or X-Wcode-Fault for the local test server).",
    )
    cell.add_argument("--extra-body", metavar="JSON", help="JSON object merged into the request body as is.")
    cell.add_argument(
        "--schema",
        metavar="SPEC",
        help="Answer as JSON of this shape, read into `.parsed`: a spec such as 'label: yes|no, reason: str', a "
        "JSON Schema object, or the name of a dataclass, TypedDict or pydantic model in the notebook.",
    )
    cell.add_argument(
        "--max-steps", metavar="N", help="With --tools: at most N model turns in the tool loop (default 8)."
    )
    cell.add_argument("--confirm", action="store_true", help="With --tools: ask before each call runs.")
    _add_request_params(parser)
    return parser


def _add_thinking(group: Any) -> None:
    """--think / --no-think / --effort, which fold into the ``reasoning`` parameter (``_request_params``)."""
    think = group.add_mutually_exclusive_group()
    think.add_argument("--think", dest="think", action="store_const", const=True, help="Switch thinking on.")
    think.add_argument("--no-think", dest="think", action="store_const", const=False, help="Switch thinking off.")
    group.add_argument("--effort", help=f"Thinking effort: {' | '.join(params.EFFORTS)} (switches thinking on).")


def _add_request_params(parser: argparse.ArgumentParser, skip: frozenset[str] = frozenset()) -> None:
    """One flag per declared request parameter (but those in ``skip``)."""
    request = parser.add_argument_group("request parameters")
    for p in params.PARAMS.values():
        if p.name in skip:
            continue
        if p.name == "logprobs":
            request.add_argument(
                p.flag,
                dest=p.name,
                nargs="?",
                const="true",
                metavar="N",
                help="Return each answer token's log-probability; with N, also the top N alternatives (0 to 20).",
            )
        elif p.kind == "bool":
            request.add_argument(p.flag, dest=p.name, nargs="?", const="true", metavar="BOOL", help=_param_help(p))
        elif p.name == "tools":
            request.add_argument(
                p.flag,
                dest=p.name,
                metavar="NAMES/JSON",
                help="Python functions from the notebook, by name (--tools get_weather,lookup): the model calls "
                "them and the loop runs them. Or a JSON array of OpenAI tool dicts, only sent.",
            )
        else:
            request.add_argument(p.flag, dest=p.name, metavar=p.kind.upper(), help=_param_help(p))


@functools.cache
def parser() -> argparse.ArgumentParser:
    """``%%chat``'s parser, built once, on first use (not at import)."""
    return build_parser()


def split(line: str) -> list[str]:
    """shlex-split a magic line; unbalanced quotes are a FlagError, not a traceback."""
    try:
        return shlex.split(line)
    except ValueError as e:
        raise FlagError(f"Cannot read the options ({e}): close every quote you open.") from None


def parse(line: str) -> ChatOptions:
    """Parse a ``%%chat`` line into checked ChatOptions. A trailing ``;`` means: do not show the result."""
    line = line.strip()
    quiet = line.endswith(";")
    if quiet:
        line = line[:-1]
    tokens = split(line)
    try:
        return _parse(tokens, quiet)
    except FlagError:
        hint = _unquoted_json(line, tokens)
        if hint is None:
            raise
        raise FlagError(hint) from None


def _parse(tokens: list[str], quiet: bool) -> ChatOptions:
    ns = parser().parse_args(tokens)
    opts = ChatOptions(
        model=ns.model,
        system=ns.system,
        new=ns.new,
        name=ns.name,
        stream=not ns.no_stream,
        format=_check_format(ns.format),
        insert=ns.insert,
        out=_check_out(ns.out),
        interpolate=not ns.no_interpolate,
        quiet=quiet,
        headers=_headers(ns.header),
        extra_body=_extra_body(ns.extra_body),
        schema=_check_schema(ns.schema),
    )
    if opts.insert and opts.format not in ("code", "markdown"):
        raise FlagError(f"--insert puts code into a new cell: use it with --format code, not --format {opts.format}.")
    if opts.insert:
        opts.format = "code"
    if ns.tools is not None and not ns.tools.strip().startswith("["):
        opts.tool_names = _tool_names(ns.tools)
        ns.tools = None
    opts.max_steps = _max_steps(ns.max_steps)
    opts.confirm = ns.confirm
    if (opts.max_steps is not None or opts.confirm) and not opts.tool_names:
        used = "--max-steps" if opts.max_steps is not None else "--confirm"
        raise FlagError(f"{used} is about running tools: use it with --tools NAME,NAME (functions of the notebook).")
    opts.params = _request_params(ns)
    return opts


def _tool_names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if not n.isidentifier()]
    if not names or bad:
        raise FlagError(
            f"--tools {text!r} is not allowed: --tools takes the names of functions in the notebook, separated "
            "by commas (--tools get_weather,lookup), or a JSON array of tool dicts."
        )
    return list(dict.fromkeys(names))


def _max_steps(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isdigit() or int(text) < 1:
        raise FlagError(f"--max-steps {text!r} is not allowed: --max-steps takes an integer >= 1.")
    return int(text)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


def _unquoted_json(line: str, tokens: list[str]) -> str | None:
    """When a failed line held JSON that the shell-style split broke apart (at its spaces) or stripped of its
    double quotes, the one thing to say: quote it. None when the failure has another cause."""
    for i, token in enumerate(tokens[1:], 1):
        flag = tokens[i - 1]
        if token[:1] not in "{[" or not flag.startswith("-") or _is_json(token):
            continue
        # the JSON as typed: from the option to the next option (a negative number is not one) or the end
        typed = re.search(re.escape(flag) + r"\s+(.*?)(?=\s+--?[A-Za-z]|\s*$)", line)
        raw = typed.group(1).strip() if typed else ""
        if raw == token or raw[:1] in "'\"":  # nothing was split off or unquoted: the error is about the value
            continue
        example = raw if _is_json(raw) and "'" not in raw else '{"key": 1}'
        return (
            f"{flag} takes JSON quoted as a whole: unquoted, it is split at its spaces and loses its double "
            f"quotes. Quote JSON in single quotes: {flag} '{example}'."
        )
    return None


def _check_format(value: str) -> str:
    if value not in FORMATS:
        raise FlagError(f"--format {value!r} is not allowed: --format takes {' | '.join(FORMATS)}.")
    return value


def _check_out(name: str | None) -> str | None:
    """A name the Response can be assigned to: an identifier, and not a keyword (``-o class`` would be stored in
    the namespace under a name no code can read back)."""
    if name is not None and not name.isidentifier():
        raise FlagError(f"-o/--out {name!r} is not a Python variable name.")
    if name is not None and keyword.iskeyword(name):
        raise FlagError(f"-o/--out {name!r} is a Python keyword, not a variable name: pick another, e.g. {name}_.")
    return name


def _headers(items: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise FlagError(f"--header {item!r} is not allowed: --header takes NAME:VALUE.")
        headers[name.strip()] = value.strip()
    return headers


def _extra_body(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise FlagError(f"--extra-body {text!r} is not valid JSON ({e.msg}): quote it, e.g. '{{\"a\": 1}}'.") from None
    if not isinstance(value, dict):
        raise FlagError("--extra-body takes a JSON object.")
    return value


VARIABLE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def _check_schema(text: str | None) -> str | None:
    """A spec string or JSON Schema checked now (FlagError naming the problem); a variable name is looked up
    when the cell runs (``run.prepare``)."""
    if text is None or VARIABLE_NAME.fullmatch(text.strip()):
        return text.strip() if text else text
    from ..core.schema import to_schema

    value: Any = text
    if text.lstrip().startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            raise FlagError(
                f"--schema {text!r} is not valid JSON ({e.msg}): quote it as a whole in single quotes."
            ) from None
    try:
        to_schema(value)
    except InvalidParameterError as e:
        raise FlagError(f"--schema: {e.message.removeprefix('schema: ')}") from None
    return text


def _parse_param(name: str, text: str) -> Any:
    try:
        return params.PARAMS[name].parse(text)
    except InvalidParameterError as e:
        hint = ""
        if "not valid JSON" in e.message:
            hint = f" Quote JSON in single quotes: {params.PARAMS[name].flag} '{{\"key\": 1}}'."
        raise FlagError(e.message + hint) from None


def _request_params(ns: argparse.Namespace) -> dict[str, Any]:
    """The request parameters the line set, validated; --think/--no-think/--effort fold into ``reasoning``."""
    out: dict[str, Any] = {}
    for name in params.PARAMS:
        text = getattr(ns, name, None)  # %%compare has no flag for tools
        if text is None:
            continue
        if name == "logprobs" and text.lower() not in _BOOL_WORDS:
            out["logprobs"] = True
            out["top_logprobs"] = _parse_param("top_logprobs", text)
        elif name == "top_logprobs" and "top_logprobs" in out:
            raise FlagError("Give the number of alternatives once: --logprobs N or --top-logprobs N.")
        else:
            out[name] = _parse_param(name, text)
    if out.get("top_logprobs") and "logprobs" not in out:
        out["logprobs"] = True  # --top-logprobs N alone clearly means it
    reasoning: dict[str, Any] | None = None
    if ns.think is not None:
        reasoning = {"enabled": ns.think}
    if ns.effort is not None:
        if ns.effort not in params.EFFORTS:
            raise FlagError(f"--effort {ns.effort!r} is not allowed: --effort takes {' | '.join(params.EFFORTS)}.")
        if ns.think is False:
            raise FlagError("--effort switches thinking on: it cannot go with --no-think.")
        reasoning = {"enabled": True, "effort": ns.effort}
    if reasoning is not None:
        out["reasoning"] = params.PARAMS["reasoning"].check({**out.get("reasoning", {}), **reasoning})
    return out


def usage_text() -> str:
    """The options help, generated from the declarations (for ``%wcode help``)."""
    return parser().format_help()


def compare_usage_text() -> str:
    """``%%compare``'s own options, for ``%wcode help`` (its request parameters are %%chat's, listed once)."""
    return build_compare_parser(request=False).format_help()


# One shell word at the start of a line: bare characters, 'single' or "double" quoted runs, or escapes.
_WORD = re.compile(r"""(?:[^\s'"\\]+|'[^']*'|"(?:[^"\\]|\\.)*"|\\.)+""")
_NUMBER = re.compile(r"-?\d+(\.\d*)?([eE][-+]?\d+)?|-?\.\d+([eE][-+]?\d+)?")


def _takes_word(action: argparse.Action, word: str) -> bool:
    """Whether ``word`` after this option is its value: always for a one-value option, never for a switch,
    and for an optional value (``--logprobs [N]``, a bool flag) only a word that reads as one."""
    if action.nargs is None:
        return True
    if action.nargs == "?":
        return word.lower() in _BOOL_WORDS or (action.metavar == "N" and word.isdigit())
    return False


def split_options(line: str) -> tuple[str, str]:
    """``OPTIONS PROMPT`` -> (the options as typed, the prompt verbatim), as any command line reads.

    Options are read word by word while they are ones ``%%chat`` knows (with their values); the first other word
    starts the prompt, which is never shlex-split. `` -- `` ends the options explicitly, for a prompt that starts
    with a dash. A word that looks like an unknown option is an error (a typo must not be sent as the prompt).
    """
    actions = parser()._option_string_actions
    pos, end = 0, len(line)
    while True:
        while pos < end and line[pos].isspace():
            pos += 1
        m = _WORD.match(line, pos)
        if m is None:
            return line[:pos].strip(), ""
        word = split(m.group())[0]
        if word == "--":
            return line[:pos].strip(), line[m.end() :].lstrip()
        if not word.startswith("-") or _NUMBER.fullmatch(word):
            return line[:pos].strip(), line[pos:]
        action = actions.get(word.split("=", 1)[0])
        if action is None:
            raise FlagError(_explain(f"unrecognized arguments: {word}", parser()))
        pos = m.end()
        if "=" in word or action.nargs == 0:
            continue
        rest = line[pos:].lstrip()
        value = _WORD.match(rest)
        if value is not None and _takes_word(action, split(value.group())[0]):
            pos = end - len(rest) + value.end()


def parse_prompt_line(line: str) -> tuple[ChatOptions, str]:
    """``%wcode [OPTIONS] PROMPT`` or ``%wcode [OPTIONS] -- PROMPT`` (for a prompt that starts with a dash or a
    subcommand's word); the prompt is taken verbatim (never shlex-split)."""
    line = line.strip()
    quiet = line.endswith(";")
    if quiet:
        line = line[:-1].rstrip()
    head, prompt = split_options(line)
    opts = parse(head) if head else ChatOptions()
    opts.quiet = quiet
    return opts, prompt


# -- %%compare ---------------------------------------------------------------------------------------------------
# %%compare sends one prompt to several runs at once: no conversation, tool loop or display format to choose.
COMPARE_SKIP = frozenset({"tools", "tool_choice", "parallel_tool_calls"})
_SPLIT_KINDS = ("float", "int", "bool", "enum")  # -p NAME=A,B: values a comma cannot be part of


@dataclass
class CompareOptions:
    """Everything a ``%%compare`` line asked for, checked: the runs are ``models`` x the ``grid`` axes x ``n``."""

    models: list[str] = field(default_factory=list)
    system: str | None = None
    out: str | None = None
    interpolate: bool = True
    quiet: bool = False
    n: int = 1
    concurrency: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    extra_body: dict[str, Any] = field(default_factory=dict)
    schema: str | None = None


def build_compare_parser(request: bool = True) -> argparse.ArgumentParser:
    """``%%compare``'s parser: the models (-m, repeatable), the swept settings (-p), the runs, then the request
    parameters of ``%%chat`` (but tools: a compare runs no tool loop); ``request=False``: without those (help)."""
    parser = _Parser(prog="%%compare", add_help=False, allow_abbrev=False, description="Options of %%compare.")
    cell = parser.add_argument_group("cell")
    cell.add_argument(
        "-m",
        "--model",
        action="append",
        default=[],
        help="A model id or alias; repeat (-m r1 -m v3.1) or list (-m r1,v3.1).",
    )
    cell.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME=V1,V2",
        help="Sweep a request parameter: one run per value (-p temperature=0.2,1.0); repeat -p for more values of a "
        "JSON parameter or for another axis (axes multiply).",
    )
    cell.add_argument("-n", "--runs", metavar="N", help="Runs of each combination (default 1).")
    cell.add_argument("--concurrency", metavar="N", help="Runs at a time (default: all of them, up to 64).")
    cell.add_argument("--system", help="System prompt for every run.")
    _add_thinking(cell)
    cell.add_argument("-o", "--out", help="Also store the DataFrame in this variable.")
    cell.add_argument("--no-interpolate", action="store_true", help="Send {name} placeholders as written.")
    cell.add_argument("--header", action="append", default=[], metavar="NAME:VALUE", help="Extra HTTP header.")
    cell.add_argument("--extra-body", metavar="JSON", help="JSON object merged into every request body as is.")
    cell.add_argument("--schema", metavar="SPEC", help="Answer as JSON of this shape (as %%%%chat --schema).")
    if request:
        _add_request_params(parser, COMPARE_SKIP)
    return parser


@functools.cache
def compare_parser() -> argparse.ArgumentParser:
    """``%%compare``'s parser, built once, on first use."""
    return build_compare_parser()


def parse_compare(line: str) -> CompareOptions:
    """Parse a ``%%compare`` line into checked CompareOptions (a trailing ``;``: do not show the DataFrame)."""
    line = line.strip()
    quiet = line.endswith(";")
    if quiet:
        line = line[:-1]
    ns = compare_parser().parse_args(split(line))
    models = [m.strip() for item in ns.model for m in item.split(",") if m.strip()]
    return CompareOptions(
        models=models,
        system=ns.system,
        out=_check_out(ns.out),
        interpolate=not ns.no_interpolate,
        quiet=quiet,
        n=_count_flag("-n/--runs", ns.runs, 1) or 1,
        concurrency=_count_flag("--concurrency", ns.concurrency, None),
        params=_request_params(ns),
        grid=_sweep(ns.param),
        headers=_headers(ns.header),
        extra_body=_extra_body(ns.extra_body),
        schema=_check_schema(ns.schema),
    )


def _count_flag(flag: str, text: str | None, default: int | None) -> int | None:
    if text is None:
        return default
    if not text.isdigit() or int(text) < 1:
        raise FlagError(f"{flag} {text!r} is not allowed: {flag} takes an integer >= 1.")
    return int(text)


def _sweep(items: list[str]) -> dict[str, list[Any]]:
    """``-p NAME=V1,V2`` options as grid axes, each value checked by its parameter's declaration."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip().lstrip("-").replace("-", "_")
        if not sep or not text.strip():
            raise FlagError(f"-p {item!r} is not allowed: -p takes NAME=VALUE[,VALUE...] (-p temperature=0.2,1.0).")
        if name not in params.PARAMS or name in COMPARE_SKIP:
            known = [n for n in params.PARAMS if n not in COMPARE_SKIP]
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean {close[0]}?" if close else f" Sweepable: {', '.join(known)}."
            raise FlagError(f"-p {item!r}: {name!r} is not a request parameter.{hint}")
        kind = params.PARAMS[name].kind
        texts = text.split(",") if kind in _SPLIT_KINDS else [text]
        grid.setdefault(name, []).extend(_parse_param(name, t) for t in texts)
    return grid
