"""Inlining a JSON Schema's local ``$ref``s: one walk shared by the client and the bundled server.

The client inlines refs before sending and validating (core/schema.py: strict mode and per-field probabilities
need every field in place), and the local server's JSON mode before generating (local/jsonmode.py). It sits in
the lowest layer so that both can import it; pure, no I/O. Each caller words the two failures its own way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class RefError(ValueError):
    """A ``$ref`` that cannot be inlined: ``recursive`` (it is open further up) or naming no definition."""

    def __init__(self, ref: str, *, recursive: bool) -> None:
        super().__init__(ref)
        self.ref = ref
        self.recursive = recursive


def inline_refs(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` with every ``#/$defs/X`` and ``#/definitions/X`` replaced by what it names (keys beside a ``$ref``
    kept over the definition's), and the definitions themselves left out."""
    defs: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        if isinstance(schema.get(key), Mapping):
            defs.update({f"#/{key}/{k}": v for k, v in schema[key].items()})

    def walk(node: Any, open_: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [walk(n, open_) for n in node]
        if not isinstance(node, Mapping):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str):
            if ref in open_ or ref not in defs:
                raise RefError(ref, recursive=ref in open_)
            target = walk(defs[ref], (*open_, ref))
            return {**target, **{k: walk(v, open_) for k, v in node.items() if k != "$ref"}}
        return {k: walk(v, open_) for k, v in node.items() if k not in ("$defs", "definitions")}

    return walk(schema, ())
