"""The answer's logprobs as history stores them: the Response's flat columns as one JSON document, and back.

Every call is recorded, on the caller's thread, before ``wm.chat`` returns; a 20,000-token answer with 20
alternatives per token is 420,000 entries. Decoding them into dicts (``Response.logprobs``) and writing those with
``json.dumps`` took about a second, more than the stream itself. The columns the Response filled while the stream
ran are written as they are, with orjson, in a few tens of milliseconds; the entries are rebuilt only when
someone reads the history.

The document: ``{"format": "columns-1", "token": [...], "logprob": [...], "bytes": [hex or null],
"count": [alternatives per position], "alt_token": [...], "alt_logprob": [...], "alt_bytes": {index: hex}}``.
Logprobs are stored as sent (orjson writes NaN and -inf as null) and normalised on reading, so every sentinel still
becomes -inf. Alternatives' bytes are kept at positions where a token string is ambiguous (U+FFFD, ``\\x..``),
the only place they say more than the token strings; elsewhere they read back as None.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from ..core.logprobs import LogprobColumns, normalize_logprob

FORMAT = "columns-1"


def _hex(raw: bytes | None) -> str | None:
    return None if raw is None else raw.hex()


def _unhex(text: str | None) -> list[int] | None:
    return None if text is None else list(bytes.fromhex(text))


def dumps(columns: LogprobColumns | None) -> str | None:
    """The JSON text for one segment's columns; None when there are no logprobs."""
    if columns is None or not len(columns):
        return None
    doc = {
        "format": FORMAT,
        "token": columns.tokens,
        "logprob": columns.logprobs,
        "bytes": [_hex(b) for b in columns.bytes],
        "count": columns.counts,
        "alt_token": columns.alt_tokens,
        "alt_logprob": columns.alt_logprobs,
        "alt_bytes": {str(k): _hex(v) for k, v in columns.alt_bytes.items()},
    }
    try:
        return orjson.dumps(doc).decode()
    except TypeError:  # a byte-level token with a lone surrogate: orjson refuses it, the standard library writes
        # it as a \udcxx escape (ASCII, so SQLite takes the text; json.loads gives the same token back)
        return json.dumps(doc, ensure_ascii=True)


def loads(text: str | None) -> list[dict[str, Any]] | None:
    """The ``{token, logprob, bytes, top_logprobs}`` entries back, sentinels normalised to -inf.

    Rows written before this format held the entries themselves (a JSON list): they are returned as stored.
    """
    if text is None:
        return None
    doc = json.loads(text)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        return doc
    alt_tokens, alt_logprobs = doc["alt_token"], doc["alt_logprob"]
    alt_bytes = {int(k): v for k, v in doc["alt_bytes"].items()}
    entries = []
    start = 0
    for token, logprob, raw, count in zip(doc["token"], doc["logprob"], doc["bytes"], doc["count"], strict=True):
        alternatives = [
            {
                "token": alt_tokens[i],
                "logprob": normalize_logprob(alt_logprobs[i]),
                "bytes": _unhex(alt_bytes.get(i)),
            }
            for i in range(start, start + count)
        ]
        start += count
        entries.append(
            {"token": token, "logprob": normalize_logprob(logprob), "bytes": _unhex(raw), "top_logprobs": alternatives}
        )
    return entries
