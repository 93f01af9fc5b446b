"""Python functions as tools, pure: a JSON schema from a signature and docstring, and arguments checked against it.

``as_tools`` turns what a user passes as ``tools=[...]`` into ``Tool`` objects: a callable gets its schema from
its signature (type hints: int, float, str, bool, Literal, Enum, list, dict, Optional / ``X | None``, dataclass
and, when pydantic is importable, pydantic models) and its docstring (the description, and each parameter's text
in Google ``Args:``, NumPy ``Parameters`` or reST ``:param name:`` style). A plain OpenAI tool dict is kept as it
is and has no function: nothing runs by itself for it.

``check_arguments`` reads the model's arguments (a JSON text) and binds them to the signature, converting what
JSON cannot carry (Enum members, dataclasses, pydantic models); anything that does not fit raises
``ToolArgumentError`` with a message written for the model, which gets it back as the tool's result so it can
correct itself. Nothing here runs or evaluates model text.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidParameterError

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # OpenAI's rule for a function name
_SIMPLE = {str: "string", int: "integer", float: "number", bool: "boolean"}


class ToolArgumentError(ValueError):
    """The model's arguments do not fit the function: ``str(e)`` is the message it gets back."""


@dataclass(frozen=True)
class Tool:
    """One tool: what the model is told (name, description, parameters) and, for a callable, what runs."""

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any] | None = field(default=None, compare=False)

    @property
    def spec(self) -> dict[str, Any]:
        """The OpenAI tool dict sent in the request."""
        function: dict[str, Any] = {"name": self.name, "parameters": self.parameters}
        if self.description:
            function = {"name": self.name, "description": self.description, "parameters": self.parameters}
        return {"type": "function", "function": function}

    @property
    def runs(self) -> bool:
        return self.fn is not None

    @property
    def is_async(self) -> bool:
        return self.fn is not None and inspect.iscoroutinefunction(self.fn)


# -- which tools ------------------------------------------------------------------------------------------------
def runs_tools(tools: Any) -> bool:
    """Whether ``tools`` holds at least one callable (then the loop runs); plain dicts alone are only sent."""
    return isinstance(tools, (list, tuple)) and any(callable(t) and not isinstance(t, Mapping) for t in tools)


def as_tools(tools: Any) -> list[Tool]:
    """``tools=[fn, {...}, ...]`` as Tool objects; InvalidParameterError naming what is wrong."""
    if not isinstance(tools, (list, tuple)):
        raise InvalidParameterError(
            f"tools={_short(tools)} is not allowed: tools takes a list of functions or OpenAI tool dicts.",
            param="tools",
            value=tools,
        )
    out: list[Tool] = []
    for i, item in enumerate(tools):
        if isinstance(item, Mapping):
            out.append(_from_dict(item, i))
        elif callable(item):
            out.append(tool_from_function(item))
        else:
            raise InvalidParameterError(
                f"tools[{i}]={_short(item)} is not allowed: each tool is a function or an OpenAI tool dict "
                '({"type": "function", "function": {"name": ..., "parameters": {...}}}).',
                param="tools",
                value=tools,
            )
    names = [t.name for t in out]
    doubles = sorted({n for n in names if names.count(n) > 1})
    if doubles:
        raise InvalidParameterError(
            f"tools: the name {doubles[0]!r} is given twice; each tool needs its own name.", param="tools", value=tools
        )
    return out


def _from_dict(item: Mapping[str, Any], i: int) -> Tool:
    function = item.get("function")
    name = function.get("name") if isinstance(function, Mapping) else None
    if not isinstance(name, str) or not name:
        raise InvalidParameterError(
            f"tools[{i}]={_short(item)} is not an OpenAI tool dict: it needs "
            '{"type": "function", "function": {"name": ..., "parameters": {...}}}.',
            param="tools",
            value=item,
        )
    assert isinstance(function, Mapping)
    parameters = function.get("parameters")
    return Tool(
        name, str(function.get("description") or ""), dict(parameters) if isinstance(parameters, Mapping) else {}
    )


def tool_from_function(fn: Callable[..., Any]) -> Tool:
    """The Tool for a function: its name, its docstring's description and a schema of its parameters."""
    target = fn.func if hasattr(fn, "func") and callable(getattr(fn, "func", None)) else fn  # functools.partial
    name = getattr(target, "__name__", None) or type(fn).__name__
    if not _NAME.match(name):
        raise InvalidParameterError(
            f"tools: {name!r} cannot be a tool's name (letters, digits, _ and -, at most 64): define it with def.",
            param="tools",
            value=fn,
        )
    description, texts = parse_docstring(inspect.getdoc(fn) or "")
    return Tool(name, description, parameters_schema(fn, texts), fn)


# -- schema -----------------------------------------------------------------------------------------------------
def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # a forward reference that cannot be resolved: the annotations as written
        try:
            return dict(inspect.get_annotations(fn))
        except Exception:
            return {}


def _parameters(fn: Callable[..., Any]) -> list[inspect.Parameter]:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    return [
        p
        for p in signature.parameters.values()
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]


def parameters_schema(fn: Callable[..., Any], texts: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The JSON schema of ``fn``'s parameters: an object, required = those without a default."""
    hints = _hints(fn)
    texts = texts or {}
    properties: dict[str, Any] = {}
    required: list[str] = []
    for p in _parameters(fn):
        schema = schema_for(hints.get(p.name, Any))
        if p.name in texts:
            schema = {**schema, "description": texts[p.name]}
        if p.default is not inspect.Parameter.empty and _jsonable(p.default):
            schema = {**schema, "default": _plain(p.default)}
        properties[p.name] = schema
        if p.default is inspect.Parameter.empty:
            required.append(p.name)
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(_plain(value))
    except (TypeError, ValueError):
        return False
    return True


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _is_pydantic(tp: Any) -> bool:
    return isinstance(tp, type) and hasattr(tp, "model_json_schema") and hasattr(tp, "model_validate")


def schema_for(tp: Any) -> dict[str, Any]:
    """The JSON schema of one type hint (``{}``, any value, for what it cannot describe)."""
    if tp is Any or tp is inspect.Parameter.empty:
        return {}
    if tp is None or tp is type(None):
        return {"type": "null"}
    if tp in _SIMPLE:
        return {"type": _SIMPLE[tp]}
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return schema_for(args[0])
    if origin is typing.Literal:
        values = [_plain(a) for a in args]
        kinds = {_SIMPLE.get(type(v)) for v in values}
        schema: dict[str, Any] = {"enum": values}
        if len(kinds) == 1 and None not in kinds:
            schema = {"type": kinds.pop(), "enum": values}
        return schema
    if origin is typing.Union or origin is types.UnionType:
        options = [a for a in args if a is not type(None)]
        nullable = len(options) < len(args)
        if len(options) == 1:
            inner = schema_for(options[0])
            if not nullable:
                return inner
            if isinstance(inner.get("type"), str) and set(inner) <= {"type", "enum"}:
                if "enum" in inner:
                    return {"type": [inner["type"], "null"], "enum": [*inner["enum"], None]}
                return {"type": [inner["type"], "null"]}
            return {"anyOf": [inner, {"type": "null"}]}
        return {"anyOf": [schema_for(a) for a in args]}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        values = [m.value for m in tp]
        kinds = {_SIMPLE.get(type(v)) for v in values}
        return {"type": kinds.pop(), "enum": values} if len(kinds) == 1 and None not in kinds else {"enum": values}
    if origin in (list, tuple, set, frozenset) or tp in (list, tuple, set, frozenset):
        schema = {"type": "array"}
        if origin is tuple and args and args[-1] is not Ellipsis:
            schema["prefixItems"] = [schema_for(a) for a in args]
            schema["minItems"] = schema["maxItems"] = len(args)
        elif args:
            schema["items"] = schema_for(args[0])
        return schema
    if origin in (dict, Mapping) or tp in (dict,) or origin is typing.Mapping:
        schema = {"type": "object"}
        if len(args) == 2 and args[1] is not Any:
            schema["additionalProperties"] = schema_for(args[1])
        return schema
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        description, texts = parse_docstring(_own_doc(tp))
        hints = _hints(tp)
        properties: dict[str, Any] = {}
        required = []
        for f in dataclasses.fields(tp):
            s = schema_for(hints.get(f.name, Any))
            if f.name in texts:
                s = {**s, "description": texts[f.name]}
            properties[f.name] = s
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                required.append(f.name)
        schema = {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
        if description:
            schema["description"] = description
        return schema
    if _is_pydantic(tp):
        return dict(tp.model_json_schema())
    return {}


def _own_doc(cls: type) -> str:
    """A class's own docstring (a dataclass without one gets a generated signature line: not a description)."""
    doc = cls.__dict__.get("__doc__") or ""
    return "" if doc.startswith(cls.__name__ + "(") else inspect.cleandoc(doc)


# -- docstrings -------------------------------------------------------------------------------------------------
_GOOGLE = re.compile(r"^(Args|Arguments|Parameters|Params|Attributes)\s*:\s*$")
_NUMPY_HEAD = re.compile(r"^(Parameters|Attributes|Other Parameters)\s*$")
_SECTION_END = re.compile(
    r"^(Returns?|Yields?|Raises?|Examples?|Notes?|See Also|References|Warns?|Warnings?|Todo)\s*:?\s*$"
)
_REST = re.compile(r"^:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")
_REST_OTHER = re.compile(r"^:(returns?|rtype|raises?|type|var|ivar|cvar)\b")
_GOOGLE_ITEM = re.compile(r"^(\*{0,2}\w+)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$")
_NUMPY_ITEM = re.compile(r"^(\w+)\s*(?::\s*(.*))?$")


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """(description, {parameter: text}) from a docstring in Google, NumPy or reST style (or none of them)."""
    lines = inspect.cleandoc(doc).splitlines() if doc else []
    description: list[str] = []
    texts: dict[str, str] = {}
    i = 0
    in_description = True
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if _GOOGLE.match(stripped) and not (i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"}):
            in_description = False
            i = _google_section(lines, i + 1, texts)
            continue
        if _NUMPY_HEAD.match(stripped) and i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"}:
            in_description = False
            i = _numpy_section(lines, i + 2, texts)
            continue
        m = _REST.match(stripped)
        if m:
            in_description = False
            text = [m.group(2).strip()]
            i += 1
            while i < len(lines) and lines[i].startswith((" ", "\t")) and lines[i].strip():
                text.append(lines[i].strip())
                i += 1
            texts[m.group(1)] = " ".join(t for t in text if t)
            continue
        if _REST_OTHER.match(stripped) or _SECTION_END.match(stripped):
            in_description = False
        if in_description:
            description.append(stripped)
        i += 1
    return _paragraphs(description), texts


def _paragraphs(lines: list[str]) -> str:
    text = "\n".join(lines).strip()
    return "\n\n".join(" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip())


def _google_section(lines: list[str], i: int, texts: dict[str, str]) -> int:
    indent: int | None = None
    name: str | None = None
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        level = len(line) - len(line.lstrip())
        if level == 0:
            break
        if indent is None:
            indent = level
        if level == indent:
            m = _GOOGLE_ITEM.match(line.strip())
            name = m.group(1).lstrip("*") if m else None
            if name is not None and m is not None:
                texts[name] = m.group(3).strip()
        elif name is not None:
            texts[name] = (texts[name] + " " + line.strip()).strip()
        i += 1
    return i


def _numpy_section(lines: list[str], i: int, texts: dict[str, str]) -> int:
    name: str | None = None
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        if not line.startswith((" ", "\t")):
            if i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"}:
                break  # the next section
            m = _NUMPY_ITEM.match(line.strip())
            name = m.group(1) if m else None
            if name is not None:
                texts[name] = ""
        elif name is not None:
            texts[name] = (texts[name] + " " + line.strip()).strip()
        i += 1
    return i


# -- checking the model's arguments -------------------------------------------------------------------------
def parse_arguments(raw: Any) -> dict[str, Any]:
    """The model's arguments text as a JSON object; ToolArgumentError when it is not one."""
    if isinstance(raw, Mapping):
        return dict(raw)
    text = raw if isinstance(raw, str) else ""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ToolArgumentError(
            f"The arguments are not valid JSON ({e.msg} at character {e.pos}): {_short(text, 120)}. "
            "Send the arguments as one JSON object."
        ) from None
    if not isinstance(value, dict):
        raise ToolArgumentError(
            f"The arguments must be a JSON object of named arguments, not {type(value).__name__}: {_short(text, 120)}."
        )
    return value


def check_arguments(tool: Tool, raw: Any) -> dict[str, Any]:
    """The keyword arguments to call ``tool.fn`` with: parsed, checked against the signature and converted."""
    args = parse_arguments(raw)
    if tool.fn is None:
        return args
    hints = _hints(tool.fn)
    params = {p.name: p for p in _parameters(tool.fn)}
    takes_more = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in _signature_params(tool.fn))
    unknown = [k for k in args if k not in params]
    if unknown and not takes_more:
        known = ", ".join(params) or "none"
        raise ToolArgumentError(f"{tool.name} has no argument {unknown[0]!r} (its arguments: {known}).")
    missing = [n for n, p in params.items() if p.default is inspect.Parameter.empty and n not in args]
    if missing:
        raise ToolArgumentError(
            f"{tool.name} needs the argument{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(m) for m in missing)}; it was called without {'them' if len(missing) > 1 else 'it'}."
        )
    out: dict[str, Any] = {}
    for name, value in args.items():
        tp = hints.get(name, Any)
        out[name] = convert(value, tp, f"{tool.name}: argument {name!r}")
    return out


def _signature_params(fn: Callable[..., Any]) -> list[inspect.Parameter]:
    try:
        return list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return []


def _describe(tp: Any) -> str:
    schema = schema_for(tp)
    if "enum" in schema:
        return "one of " + ", ".join(json.dumps(v) for v in schema["enum"])
    kind = schema.get("type")
    words: dict[str, str] = {
        "string": "a string",
        "integer": "an integer",
        "number": "a number",
        "boolean": "true or false",
        "array": "a list",
        "object": "an object",
        "null": "null",
    }
    if isinstance(kind, list):
        return " or ".join(words.get(str(k), str(k)) for k in kind)
    return words.get(str(kind), str(getattr(tp, "__name__", tp)))


def convert(value: Any, tp: Any, where: str) -> Any:
    """``value`` (decoded JSON) as the type hint ``tp`` asks; ToolArgumentError naming ``where`` when it does not fit."""

    def bad() -> ToolArgumentError:
        return ToolArgumentError(f"{where} must be {_describe(tp)}, not {_short(json.dumps(value), 60)}.")

    if tp is Any or tp is inspect.Parameter.empty:
        return value
    if tp is None or tp is type(None):
        if value is not None:
            raise bad()
        return None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return convert(value, args[0], where)
    if tp is bool:
        if not isinstance(value, bool):
            raise bad()
        return value
    if tp is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad()
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad()
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad()
        return value
    if origin is typing.Literal:
        for a in args:
            if value == _plain(a) and type(value) is type(_plain(a)):
                return a
        raise bad()
    if origin is typing.Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return convert(value, a, where)
            except ToolArgumentError:
                continue
        raise bad()
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        for member in tp:
            if member.value == value or (isinstance(value, str) and member.name == value):
                return member
        raise bad()
    if origin in (list, set, frozenset, tuple) or tp in (list, set, frozenset, tuple):
        if not isinstance(value, list):
            raise bad()
        kind = origin or tp
        if kind is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ToolArgumentError(f"{where} must be a list of {len(args)} items, not {len(value)}.")
            return tuple(convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
        items = [convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)] if args else list(value)
        return items if kind is list else kind(items)
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, dict):
            raise bad()
        if len(args) == 2:
            return {k: convert(v, args[1], f"{where}[{k!r}]") for k, v in value.items()}
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            raise bad()
        hints = _hints(tp)
        fields = {f.name: f for f in dataclasses.fields(tp)}
        unknown = [k for k in value if k not in fields]
        if unknown:
            raise ToolArgumentError(f"{where} has no field {unknown[0]!r} (its fields: {', '.join(fields)}).")
        kwargs = {k: convert(v, hints.get(k, Any), f"{where}.{k}") for k, v in value.items()}
        try:
            return tp(**kwargs)
        except TypeError as e:
            raise ToolArgumentError(f"{where}: {e}.") from None
    if _is_pydantic(tp):
        try:
            return tp.model_validate(value)
        except Exception as e:
            raise ToolArgumentError(f"{where} does not fit {tp.__name__}: {e}") from None
    return value


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
