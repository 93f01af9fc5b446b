"""Schemas for answers as data: what ``schema=`` accepts, turned into JSON Schema, and answers checked against it.

Pure (no I/O, no pandas). ``to_schema`` takes any of the accepted forms and returns a :class:`Schema`:

- a pydantic model class (duck-typed: ``model_json_schema()`` and ``model_validate()``; pydantic is never imported),
- a dataclass or a TypedDict (fields typed with str, int, float, bool, Literal[...], an Enum, list[...],
  dict[str, ...], Optional[...], nested dataclasses / TypedDicts / pydantic models),
- a JSON Schema dict (or the ``{"name": ..., "schema": {...}}`` object OpenAI's json_schema response format wraps
  it in),
- a spec string for notebook cells: ``"label: yes|no|unsure, reason: str, score: float"``; ``note?: str`` is an
  optional field, ``{...}`` a nested object, ``[type]`` or ``list[type]`` a list
  (``"items: [{name: str, qty: int}], tags: [str]"``).

Every schema is kept with its ``$ref``s inlined (a recursive schema is refused), so the validator here and the
local server walk plain trees. A form that cannot be converted is an InvalidParameterError naming the field and
the problem, raised before anything is sent.

``Schema.parse(text)`` finds the JSON in an answer (code fences and prose around it are tolerated), checks it and
builds the object of the schema's kind: a model instance, a dataclass instance, or a dict. An answer that does not
fit raises SchemaError listing every problem with its path (``items[2].name``).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..local.schemarefs import RefError, inline_refs
from .errors import InvalidParameterError, SchemaError
from .sendable import check_json

Kind = Literal["pydantic", "dataclass", "typeddict", "json", "spec"]
JSON_TYPES = ("string", "integer", "number", "boolean", "object", "array", "null")
ROOT = "(the answer)"
_SCHEMA_TAKES = (
    "schema takes a dataclass, a TypedDict, a pydantic model class, a JSON Schema dict, or a spec string such as "
    "'label: yes|no|unsure, reason: str, score: float'"
)


@dataclass(frozen=True)
class Problem:
    """One way an answer does not fit: where (``items[2].name``, or ``(the answer)``) and what."""

    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


@dataclass(frozen=True, eq=False)
class Schema:
    """A converted schema: the JSON Schema to send (refs inlined), a name, its kind, and the class to build."""

    json: dict[str, Any]
    name: str
    kind: Kind
    target: Any = None
    _key: str = field(default="", repr=False)

    @property
    def key(self) -> str:
        """The schema as canonical JSON text: equal schemas, equal keys."""
        return self._key or json.dumps(self.json, sort_keys=True)

    @property
    def fields(self) -> list[str]:
        """The top-level field names, in order."""
        return list(self.json.get("properties", {}))

    @property
    def strict(self) -> bool:
        """Whether OpenAI's strict mode can take it: every object closed and every property required."""
        return _strict_ok(self.json)

    def response_format(self) -> dict[str, Any]:
        """The ``response_format`` to send: json_schema, strict where the schema allows it."""
        return {
            "type": "json_schema",
            "json_schema": {"name": self.name, "strict": self.strict, "schema": self.json},
        }

    def instructions(self) -> str:
        """What a system prompt says when the server takes only json_object: answer with JSON of this schema."""
        return "Answer with one JSON object only, no other text, that fits this JSON Schema:\n" + json.dumps(
            self.json, ensure_ascii=False
        )

    def at(self, path: Sequence[str | int]) -> dict[str, Any] | None:
        """The sub-schema at a path of keys and indexes (None where the schema says nothing)."""
        return schema_at(self.json, path)

    def check(self, value: Any) -> list[Problem]:
        """Every problem of a parsed JSON value against the schema (empty: it fits)."""
        return problems(self.json, value)

    def parse(self, text: str) -> Any:
        """The answer as an object of the schema's kind; SchemaError naming each problem when it does not fit."""
        value = parse_json(text)
        found = self.check(value)
        if found:
            raise schema_error(found)
        return self.build(value)

    def build(self, value: Any) -> Any:
        """An object of the schema's kind from a value that fits (``check`` found no problem)."""
        if self.kind == "pydantic":
            return _validate_model(self.target, value, ())
        if self.kind == "dataclass":
            return _build(self.target, value, ())
        return value


# -- the answer's JSON -----------------------------------------------------------------------------------------------
_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n?(.*?)\n?```\s*$", re.DOTALL)


def json_span(text: str) -> tuple[int, int]:
    """Where the JSON value sits in an answer: inside a code fence, or from the first ``{``/``[`` to the last
    matching closer when prose surrounds it; the whole stripped text otherwise."""
    stripped = text.strip()
    start = text.find(stripped) if stripped else 0
    fence = _FENCE.match(stripped)
    if fence:
        inner = fence.group(1)
        return start + fence.start(1), start + fence.start(1) + len(inner)
    if stripped[:1] in "{[":
        return start, start + len(stripped)
    opens = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if opens:
        first = min(opens)
        last = text.rfind("}" if text[first] == "{" else "]")
        if last > first:
            return first, last + 1
    return start, start + len(stripped)


def parse_json(text: str) -> Any:
    """The JSON value in an answer (see ``json_span``); SchemaError when there is none or it does not parse."""
    if not text.strip():
        raise schema_error([Problem(ROOT, "the answer is empty: there is no JSON to read")])
    start, end = json_span(text)
    try:
        return json.loads(text[start:end])
    except json.JSONDecodeError as e:
        where = start + e.pos
        near = text[max(0, where - 20) : where + 20]
        raise schema_error(
            [Problem(ROOT, f"the answer is not valid JSON: {e.msg} at character {where} (near {near!r})")]
        ) from None


def schema_error(found: list[Problem]) -> SchemaError:
    """The SchemaError for a list of problems: the first few named in the message, all in ``.problems``."""
    shown = "; ".join(str(p) for p in found[:5])
    more = f" (and {len(found) - 5} more)" if len(found) > 5 else ""
    return SchemaError(f"The answer does not fit the schema: {shown}{more}.", problems=found)


# -- validation -----------------------------------------------------------------------------------------------------
def format_path(path: Sequence[str | int]) -> str:
    """``("items", 2, "name")`` -> ``items[2].name``; the empty path is ``(the answer)``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return out or ROOT


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if _is_json(value) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is_type(value: Any, kind: str) -> bool:
    actual = _type_of(value)
    if kind == "number":
        return actual in ("integer", "number")
    if kind == "integer":
        return actual == "integer" or (actual == "number" and float(value).is_integer())
    return actual == kind


def problems(schema: Mapping[str, Any], value: Any, path: tuple[str | int, ...] = ()) -> list[Problem]:
    """Every way ``value`` fails ``schema`` (the subset of JSON Schema this module produces and the local server
    honours: type, enum, const, properties, required, additionalProperties, items, anyOf/oneOf, and the bounds)."""
    out: list[Problem] = []
    where = format_path(path)
    branches = schema.get("anyOf") or schema.get("oneOf")
    if branches:
        tried = [problems(b, value, path) for b in branches if isinstance(b, Mapping)]
        if any(not t for t in tried):
            return out
        return min(tried, key=len) if tried else out
    if "const" in schema and value != schema["const"]:
        return [Problem(where, f"is {_short(value)}, not {_short(schema['const'])}")]
    if "enum" in schema and not any(
        (value == e and type(value) is type(e)) or _num_eq(value, e) for e in schema["enum"]
    ):
        allowed = ", ".join(_short(e) for e in schema["enum"])
        return [Problem(where, f"is {_short(value)}, not one of {allowed}")]
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else list(kinds)
        if not any(_is_type(value, k) for k in kinds):
            want = " or ".join(_A.get(k, k) for k in kinds)
            return [Problem(where, f"is {_short(value)} ({_A.get(_type_of(value), _type_of(value))}), not {want}")]
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for name in schema.get("required") or ():
            if name not in value:
                out.append(Problem(format_path((*path, name)), "is missing (required)"))
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in props:
                out += problems(props[name], item, (*path, name))
            elif extra is False:
                out.append(Problem(format_path((*path, name)), "is not a field of the schema"))
            elif isinstance(extra, Mapping):
                out += problems(extra, item, (*path, name))
    elif isinstance(value, list):
        items = schema.get("items")
        if "minItems" in schema and len(value) < schema["minItems"]:
            out.append(Problem(where, f"has {len(value)} items, fewer than {schema['minItems']}"))
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            out.append(Problem(where, f"has {len(value)} items, more than {schema['maxItems']}"))
        if isinstance(items, Mapping):
            for i, item in enumerate(value):
                out += problems(items, item, (*path, i))
    elif isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            out.append(Problem(where, f"has {len(value)} characters, fewer than {schema['minLength']}"))
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            out.append(Problem(where, f"has {len(value)} characters, more than {schema['maxLength']}"))
        if "pattern" in schema and isinstance(schema["pattern"], str) and not re.search(schema["pattern"], value):
            out.append(Problem(where, f"is {_short(value)}, which does not match the pattern {schema['pattern']!r}"))
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        for bound, ok, words in (
            ("minimum", lambda v, b: v >= b, "below the minimum"),
            ("maximum", lambda v, b: v <= b, "above the maximum"),
            ("exclusiveMinimum", lambda v, b: v > b, "not above"),
            ("exclusiveMaximum", lambda v, b: v < b, "not below"),
        ):
            b = schema.get(bound)
            if isinstance(b, (int, float)) and not isinstance(b, bool) and not ok(value, b):
                out.append(Problem(where, f"is {_short(value)}, {words} {_short(b)}"))
    return out


_A = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "an object",
    "array": "a list",
    "null": "null",
}


def _num_eq(value: Any, allowed: Any) -> bool:
    numbers = (int, float)
    return (
        isinstance(value, numbers)
        and isinstance(allowed, numbers)
        and not isinstance(value, bool)
        and not isinstance(allowed, bool)
        and value == allowed
    )


def schema_at(schema: Mapping[str, Any] | None, path: Sequence[str | int]) -> dict[str, Any] | None:
    """The sub-schema a path leads to (through properties, items and the non-null anyOf branch), or None."""
    node: Any = schema
    for part in path:
        node = _plain(node)
        if node is None:
            return None
        if isinstance(part, int):
            node = node.get("items")
        else:
            props = node.get("properties") or {}
            node = props.get(part, node.get("additionalProperties") if isinstance(node, Mapping) else None)
    node = _plain(node)
    return dict(node) if isinstance(node, Mapping) else None


def _plain(node: Any) -> Any:
    """The one non-null branch of an anyOf/oneOf (``Optional[X]``), else the node itself."""
    if not isinstance(node, Mapping):
        return None
    branches = node.get("anyOf") or node.get("oneOf")
    if branches:
        real = [b for b in branches if isinstance(b, Mapping) and b.get("type") != "null"]
        if len(real) == 1:
            return real[0]
    return node


def choices_of(schema: Mapping[str, Any] | None) -> list[Any] | None:
    """The allowed values of an enum or boolean field (``[True, False]``), or None for other fields."""
    if not schema:
        return None
    if isinstance(schema.get("enum"), list):
        return list(schema["enum"])
    if schema.get("type") == "boolean":
        return [True, False]
    return None


def _strict_ok(node: Any) -> bool:
    if isinstance(node, list):
        return all(_strict_ok(n) for n in node)
    if not isinstance(node, Mapping):
        return True
    props = node.get("properties")
    if isinstance(props, Mapping) and (
        node.get("additionalProperties") is not False or set(node.get("required") or ()) != set(props)
    ):
        return False
    if node.get("type") == "object" and not isinstance(props, Mapping):
        return False
    return all(_strict_ok(v) for k, v in node.items() if k in ("properties", "items", "anyOf", "oneOf")) and all(
        _strict_ok(v) for v in (props or {}).values()
    )


# -- conversion ----------------------------------------------------------------------------------------------------
def _bad(message: str, value: Any = None) -> InvalidParameterError:
    return InvalidParameterError(f"schema: {message}", param="schema", value=value)


def to_schema(spec: Any) -> Schema:
    """Any accepted form as a :class:`Schema`; InvalidParameterError naming the problem otherwise."""
    if isinstance(spec, Schema):
        return spec
    if isinstance(spec, str):
        return _finish(parse_spec(spec), "answer", "spec", None)
    if isinstance(spec, Mapping):
        return _from_json(spec)
    if (
        isinstance(spec, type)
        and callable(getattr(spec, "model_json_schema", None))
        and hasattr(spec, "model_validate")
    ):
        try:
            raw = getattr(spec, "model_json_schema")()  # noqa: B009 - duck-typed, no pydantic import
        except Exception as e:  # pydantic's own words for a model it cannot describe
            raise _bad(f"{spec.__name__}.model_json_schema() failed ({type(e).__name__}: {e}).", spec) from None
        return _finish(_close(_inline(raw, spec.__name__)), spec.__name__, "pydantic", spec)
    if isinstance(spec, type) and dataclasses.is_dataclass(spec):
        return _finish(_class_schema(spec, (), set()), spec.__name__, "dataclass", spec)
    if _is_typeddict(spec):
        return _finish(_class_schema(spec, (), set()), spec.__name__, "typeddict", spec)
    raise _bad(f"{spec!r} is not a schema: {_SCHEMA_TAKES}.", spec)


def _finish(json_schema: dict[str, Any], name: str, kind: Kind, target: Any) -> Schema:
    check_json(json_schema, "schema")
    _check_node(json_schema, ())
    if json_schema.get("type") != "object" or not isinstance(json_schema.get("properties"), Mapping):
        raise _bad(
            "the top level must be an object with properties (servers take only an object there); wrap a list or a "
            'single value in one: {"type": "object", "properties": {"items": ...}, "required": ["items"]}.',
            json_schema,
        )
    clean = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "answer"
    return Schema(json_schema, clean, kind, target, json.dumps(json_schema, sort_keys=True))


def _from_json(spec: Mapping[str, Any]) -> Schema:
    spec = dict(spec)
    name = "answer"
    if "schema" in spec and isinstance(spec["schema"], Mapping) and "properties" not in spec:
        name = str(spec.get("name") or "answer")
        spec = dict(spec["schema"])
    try:
        check_json(spec, "schema")
    except InvalidParameterError:
        raise
    return _finish(_inline(spec, name), name, "json", None)


_KNOWN_KEYS = {
    "type", "properties", "required", "additionalProperties", "items", "enum", "const", "anyOf", "oneOf",
    "description", "title", "default", "examples", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "minLength", "maxLength", "pattern", "format", "minItems", "maxItems", "$schema", "$id", "$defs", "definitions",
    "allOf", "not", "uniqueItems", "propertyOrdering", "prefixItems", "patternProperties", "multipleOf", "nullable",
}  # fmt: skip


def _check_node(node: Any, path: tuple[str | int, ...]) -> None:
    """A JSON Schema node a server and this module can read; InvalidParameterError naming where it is wrong."""
    where = "at the top" if not path else f"at {format_path(path)}"
    if not isinstance(node, Mapping):
        raise _bad(f"{where}: a schema must be a JSON object (dict), not {_short(node)}.", node)
    kinds = node.get("type")
    if kinds is not None:
        listed = [kinds] if isinstance(kinds, str) else kinds
        if not isinstance(listed, list) or not listed or any(k not in JSON_TYPES for k in listed):
            raise _bad(f"{where}: type {_short(kinds)} is not a JSON Schema type ({', '.join(JSON_TYPES)}).", node)
    if "enum" in node and (not isinstance(node["enum"], list) or not node["enum"]):
        raise _bad(f"{where}: enum must be a non-empty list of allowed values, not {_short(node['enum'])}.", node)
    props = node.get("properties")
    if props is not None:
        if not isinstance(props, Mapping):
            raise _bad(f"{where}: properties must be an object of field name -> schema.", node)
        for name, sub in props.items():
            _check_node(sub, (*path, name))
    required = node.get("required")
    if required is not None:
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise _bad(f"{where}: required must be a list of field names, not {_short(required)}.", node)
        unknown = [r for r in required if r not in (props or {})]
        if unknown:
            raise _bad(f"{where}: required names {unknown} that are not in properties.", node)
    if "items" in node:
        _check_node(node["items"], (*path, 0))
    for key in ("anyOf", "oneOf"):
        if key in node:
            if not isinstance(node[key], list) or not node[key]:
                raise _bad(f"{where}: {key} must be a non-empty list of schemas.", node)
            for branch in node[key]:
                _check_node(branch, path)
    extra = node.get("additionalProperties")
    if isinstance(extra, Mapping):
        _check_node(extra, (*path, "*"))
    elif extra is not None and not isinstance(extra, bool):
        raise _bad(f"{where}: additionalProperties must be true, false or a schema.", node)
    if not any(k in node for k in ("type", "enum", "const", "anyOf", "oneOf", "properties", "items", "allOf", "$ref")):
        odd = [k for k in node if k not in _KNOWN_KEYS]
        if odd:
            raise _bad(f"{where}: {odd[0]!r} is not a JSON Schema keyword (a field? put fields under properties).")


def _inline(schema: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The schema with every local ``$ref`` (``#/$defs/X``, ``#/definitions/X``) replaced by what it names."""
    try:
        return inline_refs(schema)
    except RefError as e:
        if e.recursive:
            raise _bad(f"{name} refers to itself ({e.ref}): recursive schemas are not supported.", e.ref) from None
        raise _bad(f"{name}: $ref {e.ref!r} names no definition in $defs or definitions.", e.ref) from None


def _close(node: Any) -> Any:
    """Pydantic's schema with every object closed (``additionalProperties: false``) unless it says otherwise."""
    if isinstance(node, list):
        return [_close(n) for n in node]
    if not isinstance(node, Mapping):
        return node
    out = {k: _close(v) for k, v in node.items()}
    if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__annotations__") and hasattr(tp, "__total__")


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls, include_extras=False)
    except Exception as e:  # a forward reference that names nothing importable
        raise _bad(f"the types of {cls.__name__}'s fields cannot be read ({type(e).__name__}: {e}).", cls) from None


def _class_schema(cls: type, path: tuple[str | int, ...], open_: set[type]) -> dict[str, Any]:
    """An object schema from a dataclass's or TypedDict's typed fields."""
    if cls in open_:
        raise _bad(f"{cls.__name__} contains itself (at {format_path(path)}): recursive schemas are not supported.")
    open_ = open_ | {cls}
    hints = _hints(cls)
    if dataclasses.is_dataclass(cls):
        names = [f.name for f in dataclasses.fields(cls) if f.init]
        required = [
            f.name
            for f in dataclasses.fields(cls)
            if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
    else:
        names = list(hints)
        required = [n for n in names if n in getattr(cls, "__required_keys__", set(names))]
    if not names:
        raise _bad(f"{cls.__name__} has no fields: give it at least one typed field.", cls)
    props = {n: _type_schema(hints.get(n, Any), (*path, n), open_) for n in names}
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


_SCALAR_TYPES: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    type(None): {"type": "null"},
}
_TYPE_TAKES = (
    "use str, int, float, bool, Literal[...], an Enum, list[...], dict[str, ...], Optional[...], or a nested "
    "dataclass, TypedDict or pydantic model"
)


def _type_schema(tp: Any, path: tuple[str | int, ...], open_: set[type]) -> dict[str, Any]:
    """The JSON Schema of one field's Python type."""
    if tp in _SCALAR_TYPES:
        return dict(_SCALAR_TYPES[tp])
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Literal:
        values = list(args)
        if not all(isinstance(v, (str, int, float, bool)) or v is None for v in values):
            raise _bad(f"field {format_path(path)}: Literal values must be str, int, float, bool or None.", tp)
        return {"enum": values}
    if origin in (typing.Union, getattr(types, "UnionType", ())):
        return {"anyOf": [_type_schema(a, path, open_) for a in args]}
    if origin in (list, set, frozenset, Sequence, typing.Sequence) or (
        origin is tuple and len(args) == 2 and args[1] is Ellipsis
    ):
        item = args[0] if args else Any
        return {"type": "array", "items": _type_schema(item, (*path, 0), open_)}
    if origin in (dict, Mapping, typing.Mapping):
        if args and args[0] is not str:
            raise _bad(f"field {format_path(path)}: JSON object keys are strings; use dict[str, ...].", tp)
        value = args[1] if len(args) == 2 else Any
        return {"type": "object", "additionalProperties": _type_schema(value, (*path, "*"), open_)}
    if origin is not None and typing.get_origin(tp) is getattr(typing, "Annotated", None):
        return _type_schema(args[0], path, open_)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"enum": [m.value for m in tp]}
    if (isinstance(tp, type) and dataclasses.is_dataclass(tp)) or _is_typeddict(tp):
        return _class_schema(tp, path, open_)
    if isinstance(tp, type) and callable(getattr(tp, "model_json_schema", None)):
        return _close(_inline(getattr(tp, "model_json_schema")(), tp.__name__))  # noqa: B009
    name = getattr(tp, "__name__", None) or repr(tp)
    raise _bad(f"field {format_path(path)} has type {name}, which has no JSON form here: {_TYPE_TAKES}.", tp)


# -- building objects ----------------------------------------------------------------------------------------------
def _validate_model(model: Any, value: Any, path: tuple[str | int, ...]) -> Any:
    """``model.model_validate(value)``; its validation errors become a SchemaError with our paths."""
    try:
        return model.model_validate(value)
    except Exception as e:
        errors = getattr(e, "errors", None)
        found: list[Problem] = []
        if callable(errors):
            try:
                for err in errors():
                    found.append(Problem(format_path((*path, *err.get("loc", ()))), str(err.get("msg", err))))
            except Exception:
                found = []
        raise schema_error(found or [Problem(format_path(path), f"{type(e).__name__}: {e}")]) from None


def _build(tp: Any, value: Any, path: tuple[str | int, ...]) -> Any:
    """A value of Python type ``tp`` from JSON that fits its schema (dataclasses and enums built, lists kept)."""
    if value is None:
        return None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        kwargs = {
            f.name: _build(hints.get(f.name, Any), value[f.name], (*path, f.name))
            for f in dataclasses.fields(tp)
            if f.init and f.name in value
        }
        return tp(**kwargs)
    if _is_typeddict(tp):
        hints = _hints(tp)
        return {k: _build(hints.get(k, Any), v, (*path, k)) for k, v in value.items()}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(value)
    if isinstance(tp, type) and callable(getattr(tp, "model_validate", None)):
        return _validate_model(tp, value, path)
    if tp is float and isinstance(value, int):
        return float(value)
    if origin in (typing.Union, getattr(types, "UnionType", ())):
        for arg in args:
            if arg is not type(None) and not problems(_type_schema(arg, path, set()), value):
                return _build(arg, value, path)
        return value
    if origin in (list, Sequence, typing.Sequence):
        return [_build(args[0] if args else Any, v, (*path, i)) for i, v in enumerate(value)]
    if origin in (set, frozenset):
        return origin(_build(args[0] if args else Any, v, (*path, i)) for i, v in enumerate(value))
    if origin is tuple:
        return tuple(_build(args[0] if args else Any, v, (*path, i)) for i, v in enumerate(value))
    if origin in (dict, Mapping, typing.Mapping):
        inner = args[1] if len(args) == 2 else Any
        return {k: _build(inner, v, (*path, k)) for k, v in value.items()}
    return value


# -- the spec string -------------------------------------------------------------------------------------------------
_SPEC_TOKEN = re.compile(
    r"\s*(?:(?P<str>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')|(?P<num>-?\d+(?:\.\d+)?)(?![\w.-])|"
    r"(?P<word>[A-Za-z_][\w.-]*)|(?P<punct>[:,|{}\[\]?])|(?P<bad>\S))"
)
_SPEC_TYPES = {
    "str": "string",
    "string": "string",
    "text": "string",
    "int": "integer",
    "integer": "integer",
    "float": "number",
    "number": "number",
    "bool": "boolean",
    "boolean": "boolean",
}
_SPEC_HELP = (
    "write fields as 'name: type' separated by commas; a type is str, int, float, bool, choices a|b|c, "
    "{...} for a nested object, [type] or list[type] for a list; 'name?: type' for an optional field"
)


class _Spec:
    """A recursive-descent reader of the spec string, with errors that point at the character."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, Any, int]] = []
        for m in _SPEC_TOKEN.finditer(text):
            kind = m.lastgroup or "bad"
            raw = m.group(kind)
            if kind == "bad":
                self.fail(f"unexpected {raw!r}", m.start(kind))
            value: Any = raw
            if kind == "str":
                value = raw[1:-1].encode().decode("unicode_escape") if "\\" in raw else raw[1:-1]
            elif kind == "num":
                value = float(raw) if "." in raw else int(raw)
            self.tokens.append((kind, value, m.start(kind)))
        self.i = 0

    def fail(self, problem: str, at: int | None = None) -> typing.NoReturn:
        if at is None:
            at = self.tokens[self.i][2] if self.i < len(self.tokens) else len(self.text)
        raise _bad(f"spec {self.text!r}: {problem} at character {at}; {_SPEC_HELP}.", self.text)

    def peek(self) -> tuple[str, Any, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, Any, int]:
        tok = self.peek()
        if tok is None:
            self.fail(f"expected {value!r} but the spec ended" if value else "the spec ended too early")
        if value is not None and not (tok[0] == "punct" and tok[1] == value):
            self.fail(f"expected {value!r}, found {tok[1]!r}")
        self.i += 1
        return tok

    def at_punct(self, value: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[0] == "punct" and tok[1] == value

    def fields(self, closer: str | None) -> dict[str, Any]:
        props: dict[str, Any] = {}
        required: list[str] = []
        while True:
            kind, name, at = self.take()
            if kind not in ("word", "str"):
                self.fail(f"expected a field name, found {name!r}", at)
            name = str(name)
            if name in props:
                self.fail(f"field {name!r} is given twice", at)
            optional = self.at_punct("?")
            if optional:
                self.take("?")
            if not self.at_punct(":"):
                self.fail(f"field {name!r} has no type (write {name}: str)")
            self.take(":")
            props[name] = self.type_(name)
            if not optional:
                required.append(name)
            if self.at_punct(","):
                self.take(",")
                if closer is not None and self.at_punct(closer):
                    break  # a trailing comma
                continue
            break
        if closer is not None:
            self.take(closer)
        return {"type": "object", "properties": props, "required": required, "additionalProperties": False}

    def type_(self, name: str) -> dict[str, Any]:
        tok = self.peek()
        if tok is None:
            self.fail(f"field {name!r} has no type after ':'")
        kind, value, at = tok
        if kind == "punct" and value == "{":
            self.take("{")
            if self.at_punct("}"):
                self.fail(f"field {name!r} is an empty object: name its fields inside {{...}}")
            return self.fields("}")
        if kind == "punct" and value == "[":
            self.take("[")
            item = self.type_(name)
            self.take("]")
            return {"type": "array", "items": item}
        if (
            kind == "word"
            and value in ("list", "List")
            and self.i + 1 < len(self.tokens)
            and self.tokens[self.i + 1][1] == "["
        ):
            self.i += 2
            item = self.type_(name)
            self.take("]")
            return {"type": "array", "items": item}
        if kind not in ("word", "str", "num"):
            self.fail(f"field {name!r} needs a type, found {value!r}", at)
        self.i += 1
        if self.at_punct("|"):
            choices = [value]
            while self.at_punct("|"):
                self.take("|")
                k, v, a = self.take()
                if k not in ("word", "str", "num"):
                    self.fail(f"field {name!r}: expected a choice after '|', found {v!r}", a)
                choices.append(v)
            if len({json.dumps(c) for c in choices}) != len(choices):
                self.fail(f"field {name!r} lists a choice twice", at)
            return {"enum": choices}
        if kind == "word" and value.lower() in _SPEC_TYPES:
            return {"type": _SPEC_TYPES[value.lower()]}
        if kind == "word":
            self.fail(f"field {name!r} has the unknown type {value!r} (for a fixed set of choices write a|b|c)", at)
        return {"const": value}


def parse_spec(text: str) -> dict[str, Any]:
    """The JSON Schema of a spec string (see the module docstring); InvalidParameterError pointing at the problem."""
    if not text.strip():
        raise _bad(f"the spec string is empty; {_SPEC_HELP}.", text)
    reader = _Spec(text)
    if reader.at_punct("{"):  # "{a: str}" reads like "a: str"
        reader.take("{")
        schema = reader.fields("}")
    else:
        schema = reader.fields(None)
    if reader.peek() is not None:
        reader.fail(f"unexpected {reader.peek()[1]!r} after the last field")  # type: ignore[index]
    return schema


# -- the request --------------------------------------------------------------------------------------------------
def check_call(shape: Schema | None, call_params: Mapping[str, Any]) -> None:
    """schema= and response_format= in the same call: which one counts would be a guess, so neither."""
    if shape is not None and call_params.get("response_format") is not None:
        raise InvalidParameterError(
            "Give schema= or response_format=, not both: schema= sends its own response_format (json_schema).",
            param="schema",
            value=call_params.get("response_format"),
        )


def shape_body(body: dict[str, Any], shape: Schema, *, structured: bool, fallback: bool) -> dict[str, Any]:
    """The request body asking for answers of ``shape``: response_format json_schema (strict where the schema
    allows), ``structured_outputs: true`` where the model's server documents it (``structured``); or, as the
    ``fallback`` for a server that refused json_schema, json_object with the schema in the instructions."""
    out = dict(body)
    if not fallback:
        out["response_format"] = shape.response_format()
        if structured:
            out.setdefault("structured_outputs", True)
        return out
    out["response_format"] = {"type": "json_object"}
    if out.get("structured_outputs") is True and structured:
        del out["structured_outputs"]
    out["messages"] = with_instructions(out["messages"], shape.instructions())
    return out


def with_instructions(messages: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """The messages with ``text`` added to the system prompt (a new first message when there is none)."""
    out = [dict(m) for m in messages]
    if out and out[0].get("role") == "system" and isinstance(out[0].get("content"), str):
        out[0]["content"] = (out[0]["content"].rstrip() + "\n\n" + text).lstrip()
        return out
    return [{"role": "system", "content": text}, *out]


_FORMAT_WORDS = re.compile(r"json_schema|response_format|structured.output|json schema", re.IGNORECASE)


def is_format_refusal(status: int | None, param: Any, message: str) -> bool:
    """Whether a server's 400/422 refused the json_schema response format (rather than another parameter)."""
    if status not in (400, 422):
        return False
    return param in ("response_format", "structured_outputs") or bool(_FORMAT_WORDS.search(message or ""))


class Refusals:
    """Servers and models seen refusing json_schema in this session: the next calls go straight to json_object,
    and the user is told once per model."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, str]] = set()

    def refused(self, base_url: str, model: str) -> bool:
        return (base_url, model) in self._seen

    def note(self, base_url: str, model: str) -> bool:
        """Remember a refusal; True the first time for this model (say so then)."""
        first = (base_url, model) not in self._seen
        self._seen.add((base_url, model))
        return first

    def clear(self) -> None:
        self._seen.clear()


REFUSALS = Refusals()
