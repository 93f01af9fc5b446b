"""Each token's exact text, rebuilt from its bytes, and where it sits in the answer.

A byte-level tokenizer cuts CJK characters and emoji into several tokens. The ``token`` string of such a piece
is useless on its own: providers send U+FFFD, or an escaped fragment such as ``"\\xe4\\xbd"`` or
``"bytes:\\xe4\\xbd"``, while ``bytes`` holds the truth (protocol.md, Logprobs). Decoding the byte stream with
an incremental UTF-8 decoder gives each character to the token in which its *last* byte arrives: the earlier
fragments get ``""`` and the completing token gets the whole character. So the pieces concatenate to exactly
the decoded text, and ``char_start``/``char_end`` are offsets into ``Response.text``. Pure functions, no pandas.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Sequence
from itertools import accumulate
from typing import cast

_ESCAPED = re.compile(r"(?:bytes:)?((?:\\x[0-9a-fA-F]{2})+)")
_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")
# When the pieces do not concatenate to the target text (a think block split out of the content, a gap in the
# logprobs), each piece is looked for this far past where the previous one ended.
ALIGN_SLACK = 256


def token_bytes(token: str, raw_bytes: Sequence[int] | None) -> bytes:
    """The bytes a token stands for: ``bytes`` when sent, else the unescaped fragment, else its UTF-8."""
    if raw_bytes is not None:
        return bytes(raw_bytes)
    m = _ESCAPED.fullmatch(token)
    if m is not None:
        return bytes(int(h, 16) for h in _ESCAPE.findall(m.group(1)))
    return token.encode("utf-8")


def texts_from(tokens: Sequence[str | None], raws: Sequence[Sequence[int] | None]) -> list[str]:
    """The text each token contributes, with multi-token characters given whole to the token that completes them.

    ``raws`` are the tokens' ``bytes`` (bytes or lists of ints; None where not sent). Invalid byte sequences
    decode to U+FFFD (never an exception); an unfinished character at the very end goes to the last token as
    U+FFFD. A missing token string counts as "".
    """
    texts = [t or "" for t in tokens] if None in tokens else cast("Sequence[str]", tokens)
    if _whole_characters(texts, raws):
        return list(texts)
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    decode = decoder.decode
    out: list[str] = []
    append = out.append
    pending = False  # whether the decoder holds part of a character
    for token, raw in zip(texts, raws, strict=True):
        if (
            not pending
            and (raw is None or (token.isascii() and len(raw) == len(token)))
            and "\ufffd" not in token
            and "\\x" not in token
        ):
            append(token)  # whole characters, and its bytes (if any) can only spell this same ASCII text
            continue
        piece = decode(token_bytes(token, raw))
        pending = bool(decoder.getstate()[0])
        append(piece)
    if pending and out:
        out[-1] += decode(b"", final=True)
    return out


def _whole_characters(tokens: Sequence[str], raws: Sequence[Sequence[int] | None]) -> bool:
    """True when every token string is already its exact text (no fragments anywhere): the fast, common case."""
    joined = "".join(tokens)
    if "\ufffd" in joined or "\\x" in joined:
        return False
    if None not in raws:
        try:
            return b"".join(raws) == joined.encode("utf-8")  # type: ignore[arg-type]
        except TypeError:  # lists of ints (entries as sent) rather than bytes
            pass
    elif all(r is None for r in raws):
        return True
    stream = b"".join(t.encode("utf-8") if r is None else bytes(r) for t, r in zip(tokens, raws, strict=True))
    return stream == joined.encode("utf-8")


def char_offsets(pieces: Sequence[str], target: str | None = None) -> tuple[list[int | None], list[int | None]]:
    """``(starts, ends)`` of each piece in ``target`` (default: the pieces' own concatenation).

    When the pieces concatenate to ``target`` the offsets are cumulative. Otherwise each piece is aligned
    greedily, searched within ``ALIGN_SLACK`` characters past the previous match; a piece not found gets
    ``None`` for both offsets rather than a wrong number.
    """
    if target is None or "".join(pieces) == target:
        ends: list[int | None] = list(accumulate(map(len, pieces)))
        return ([0, *ends[:-1]] if ends else []), ends
    starts: list[int | None] = []
    ends = []
    cursor = 0
    for piece in pieces:
        if not piece:
            starts.append(cursor)
            ends.append(cursor)
            continue
        found = target.find(piece, cursor, cursor + len(piece) + ALIGN_SLACK)
        if found < 0:
            starts.append(None)
            ends.append(None)
            continue
        cursor = found + len(piece)
        starts.append(found)
        ends.append(cursor)
    return starts, ends
