"""The local model calls tools: word matching, no understanding (pure, no I/O).

So the tool loop runs and can be taught offline. What the local model does, and all it does:

- **Which tool**: a request with ``tools`` whose last message is the user's calls every tool the message names (a
  tool's name, or its name with ``_`` read as spaces, as a whole word), once per mention, in the order named
  (only the first when ``parallel_tool_calls`` is false). ``tool_choice`` naming a function calls that one; ``"required"`` calls the
  tool whose name and description share the most words with the message; ``"none"`` calls nothing. A message
  that names no tool gets an ordinary answer.
- **Arguments**, valid for the tool's schema: numbers in the message fill integer and number parameters in turn,
  quoted strings ("..." or '...') fill string parameters in turn, an enum takes the value the message names (else
  its default, else its first value); a required string with nothing quoted takes the first capitalised word after
  the tool's name (else the first word that is not a filler word). Several calls in one message each read their
  own part of it (from their name to the next tool's). Optional parameters are sent only when the message gives them a value.
- **Streamed in pieces** as real providers do: the first fragment carries the call's id and name, the arguments
  follow in pieces of a few characters, ``finish_reason`` is ``tool_calls``. Thinking models think first.
- **After the tool results** (the last messages are ``tool`` messages) it answers with a fixed sentence quoting
  each result, then continues from that sentence's last words with the same trigram statistics as any answer: the
  continuation is word statistics, not reasoning about the result.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from .chat import RequestError, message_text

PIECE_CHARS = 6  # characters of arguments per streamed fragment
RESULT_CHARS = 400  # a result longer than this is quoted shortened in the answer
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.]*\w)")
_QUOTED = re.compile(r"\"([^\"]*)\"|“([^”]*)”|(?<!\w)'([^']*)'(?!\w)")
_WORD = re.compile(r"[A-Za-z][\w'-]*")
_FILLER = frozenset(
    (
        "a", "an", "the", "for", "of", "in", "on", "at", "to", "with", "about", "and", "or", "please", "me", "my",
        "use", "call", "using", "tool", "function", "by", "from", "is", "what", "whats", "how", "get", "find", "look",
        "up", "it", "this", "that", "which", "give", "tell", "show",
    )
)  # fmt: skip


@dataclass(frozen=True)
class Call:
    """One tool call the local model makes: its id, the function's name and the arguments as JSON text."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Plan:
    """What to answer: tool calls (``calls``), or an answer quoting tool results (``results``: name, text)."""

    calls: tuple[Call, ...] = ()
    results: tuple[tuple[str, str], ...] = ()


def plan(body: dict[str, Any]) -> Plan | None:
    """The tool side of a request (None: an ordinary answer); RequestError for tools the server cannot read."""
    tools = _tools(body.get("tools"))
    messages = body.get("messages") or []
    results = _trailing_results(messages)
    if results:
        return Plan(results=results)
    if not tools:
        return None
    choice = body.get("tool_choice")
    if choice == "none":
        return None
    last = messages[-1] if messages else {}
    if not isinstance(last, dict) or last.get("role") != "user":
        return None
    text = message_text(last.get("content"))
    chosen = _chosen(tools, choice, text)
    if not chosen:
        return None
    if body.get("parallel_tool_calls") is False:
        chosen = chosen[:1]
    parts = _segments(chosen, text)
    return Plan(
        calls=tuple(
            Call("call_" + uuid.uuid4().hex[:20], name, _arguments(tools[name], name, part))
            for name, part in zip(chosen, parts, strict=True)
        )
    )


def _segments(names: list[str], text: str) -> list[str]:
    """Each call's part of the message: one call reads it all; several read from their name to the next one's."""
    if len(names) < 2:
        return [text] * len(names)
    starts = sorted(pos for name in dict.fromkeys(names) for pos in _all_mentions(name, text))
    if len(starts) != len(names):  # forced by tool_choice, not named: all read the whole message
        return [text] * len(names)
    starts[0] = 0
    return [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]


def _tools(tools: Any) -> dict[str, dict[str, Any]]:
    """name -> parameters schema; a 400 naming ``tools`` for what is not an OpenAI tool list."""
    if tools is None:
        return {}
    if not isinstance(tools, list):
        raise RequestError("tools must be a list of function tools", "tools")
    out: dict[str, dict[str, Any]] = {}
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str) or not name:
            raise RequestError(
                'each tool must be {"type": "function", "function": {"name": ..., "parameters": {...}}}', "tools"
            )
        assert isinstance(function, dict)
        parameters = function.get("parameters")
        out[name] = {
            "parameters": parameters if isinstance(parameters, dict) else {},
            "description": str(function.get("description") or ""),
        }
    return out


def _trailing_results(messages: list[Any]) -> tuple[tuple[str, str], ...]:
    """The tool results that end the conversation, each with the name of the call it answers."""
    tail: list[dict[str, Any]] = []
    for m in reversed(messages):
        if not isinstance(m, dict) or m.get("role") != "tool":
            break
        tail.append(m)
    if not tail:
        return ()
    names: dict[str, str] = {}
    for m in messages:
        if isinstance(m, dict) and m.get("role") == "assistant":
            for call in m.get("tool_calls") or []:
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict) and isinstance(call.get("id"), str):
                    names[call["id"]] = str(fn.get("name") or "the tool")
    return tuple(
        (names.get(str(m.get("tool_call_id")), "the tool"), message_text(m.get("content"))) for m in reversed(tail)
    )


def _all_mentions(name: str, text: str) -> list[int]:
    """Where the message names the tool (its name, or with ``_`` as spaces), each time."""
    lowered = text.lower()
    found: set[int] = set()
    for form in dict.fromkeys((name.lower(), name.lower().replace("_", " "), name.lower().replace("-", " "))):
        found.update(m.start() for m in re.finditer(r"(?<![\w])" + re.escape(form) + r"(?![\w])", lowered))
    return sorted(found)


def _mentions(name: str, text: str) -> int | None:
    """Where the message first names the tool, or None."""
    found = _all_mentions(name, text)
    return found[0] if found else None


def _chosen(tools: dict[str, dict[str, Any]], choice: Any, text: str) -> list[str]:
    if isinstance(choice, dict):
        fn = choice.get("function")
        name = fn.get("name") if isinstance(fn, dict) else None
        if name not in tools:
            raise RequestError(f"tool_choice names {name!r}, which is not among the tools", "tool_choice")
        return [str(name)]
    named = sorted((pos, name) for name in tools for pos in _all_mentions(name, text))
    if named:
        return [name for _, name in named]
    if choice == "required":
        words = {w.lower() for w in _WORD.findall(text)}

        def overlap(name: str) -> int:
            own = {w.lower() for w in _WORD.findall(name.replace("_", " ") + " " + tools[name]["description"])}
            return len(words & own)

        return [max(tools, key=overlap)]  # ties: the first tool
    return []


class _Values:
    """The values a message offers, taken in turn: numbers, quoted strings, and the free words after the name."""

    def __init__(self, name: str, text: str) -> None:
        self.text = text
        self.numbers = [m.group(0) for m in _NUMBER.finditer(text)]
        self.quoted = [next(g for g in m.groups() if g is not None) for m in _QUOTED.finditer(text)]
        unquoted = _QUOTED.sub(" ", text)
        at = _mentions(name, unquoted)
        after = unquoted[at + len(name) :] if at is not None else unquoted
        words = [w for w in _WORD.findall(after) if w.lower() not in _FILLER and _mentions(name, w) is None]
        first = _WORD.match(unquoted.lstrip())
        names = [w for w in words if w[0].isupper() and not (first and w == first.group(0) and at is None)]
        self.words = names + [w for w in words if w not in names]  # a name (capitalised) first, then the rest

    def number(self) -> str | None:
        return self.numbers.pop(0) if self.numbers else None

    def string(self) -> str | None:
        return self.quoted.pop(0) if self.quoted else None

    def word(self) -> str | None:
        return self.words.pop(0) if self.words else None


def _arguments(tool: dict[str, Any], name: str, text: str) -> str:
    values = _Values(name, text)
    args = _fill_object(tool["parameters"], values)
    return json.dumps(args, ensure_ascii=False)


def _kind(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None and isinstance(schema.get("anyOf"), list):
        options = [o for o in schema["anyOf"] if isinstance(o, dict) and o.get("type") != "null"]
        return _kind(options[0]) if options else "null"
    if kind is None and "enum" in schema:
        return "enum"
    return str(kind or "any")


def _option(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema itself, or the first non-null choice of an ``anyOf``."""
    if "type" not in schema and isinstance(schema.get("anyOf"), list):
        options = [o for o in schema["anyOf"] if isinstance(o, dict) and o.get("type") != "null"]
        return options[0] if options else schema
    return schema


def _fill_object(schema: dict[str, Any], values: _Values) -> dict[str, Any]:
    properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    required = set(schema.get("required") or [])
    out: dict[str, Any] = {}
    for pname, pschema in (properties or {}).items():
        if not isinstance(pschema, dict):
            continue
        value, found = _fill(_option(pschema), values, pname in required)
        if found or pname in required:
            out[pname] = value
    return out


def _fill(schema: dict[str, Any], values: _Values, required: bool) -> tuple[Any, bool]:
    """(value, whether the message gave it) for one parameter."""
    if "enum" in schema and isinstance(schema["enum"], list) and schema["enum"]:
        for option in schema["enum"]:
            if isinstance(option, str) and re.search(
                r"(?<!\w)" + re.escape(option.lower()) + r"(?!\w)", values.text.lower()
            ):
                return option, True
        return schema.get("default", schema["enum"][0]), False
    kind = _kind(schema)
    if kind in ("integer", "number"):
        taken = values.number() if required or values.numbers else None
        if taken is None:
            default = schema.get("default", schema.get("minimum", 1))
            return default, False
        number = float(taken)
        if kind == "integer":
            return int(number), True
        return (int(number) if number.is_integer() else number), True
    if kind == "string":
        quoted = values.string()
        if quoted is not None:
            return quoted, True
        if not required:
            return schema.get("default"), False
        return (values.word() or schema.get("default") or ""), True
    if kind == "boolean":
        words = {w.lower() for w in _WORD.findall(values.text)}
        if words & {"no", "not", "false", "without", "off"}:
            return False, True
        if words & {"yes", "true", "with", "on"}:
            return True, True
        return schema.get("default", False), False
    if kind == "array":
        items = _option(schema.get("items") or {})
        item_kind = _kind(items)
        found: list[Any] = []
        if item_kind in ("integer", "number"):
            while values.numbers:
                found.append(_fill(items, values, True)[0])
        elif item_kind == "string":
            while values.quoted:
                found.append(values.string())
        return found, bool(found)
    if kind == "object":
        value = _fill_object(schema, values)
        return value, bool(value)
    if kind == "null":
        return None, False
    quoted = values.string()
    return (quoted, True) if quoted is not None else (values.word() or "", required)


# -- the wire --------------------------------------------------------------------------------------------------
def call_fragments(calls: tuple[Call, ...]) -> list[dict[str, Any]]:
    """``delta.tool_calls`` items as a provider streams them: id and name first, then the arguments in pieces."""
    out: list[dict[str, Any]] = []
    for index, call in enumerate(calls):
        out.append(
            {"index": index, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}
        )
        args = call.arguments
        out.extend(
            {"index": index, "function": {"arguments": args[i : i + PIECE_CHARS]}}
            for i in range(0, len(args), PIECE_CHARS)
        )
    return out


def message_calls(calls: tuple[Call, ...]) -> list[dict[str, Any]]:
    """``message.tool_calls`` of a non-streamed answer."""
    return [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in calls]


def result_sentence(results: tuple[tuple[str, str], ...]) -> str:
    """The fixed opening of the answer after tool results: each result quoted (long ones shortened)."""
    parts = []
    for name, text in results:
        text = " ".join(text.split())
        if len(text) > RESULT_CHARS:
            text = text[: RESULT_CHARS - 3] + "..."
        parts.append(f"{name} returned {text}" if text else f"{name} returned nothing")
    return "; ".join(parts) + "."


def continuation_prompt(results: tuple[tuple[str, str], ...]) -> str:
    """What the answer's word statistics continue from: the sentence quoting the results (its last words)."""
    return result_sentence(results)
