"""Continuing a begun answer (an assistant *prefill*) on each kind of server, and checking that a server does.

A branch (``r.branch``) sends the answer up to a position plus a chosen token as the start of the assistant's
turn and asks for the rest. Servers differ in how they are told (issue 15, protocol.md):

- ``local``: the bundled n-gram model continues a trailing assistant message exactly (local/chat.py).
- ``llama.cpp``: llama.cpp's server continues a trailing assistant message (its ``prefill_assistant``, on by
  default); the ``local/gemma-270m`` server this package starts is one.
- ``vllm``: a trailing assistant message with ``continue_final_message: true, add_generation_prompt: false``.
- ``deepseek``: DeepSeek's API marks the trailing assistant message ``"prefix": true`` (its beta endpoint).
- ``check``: any other server (wcode.net's models among them): a trailing assistant message, as OpenRouter-style
  services continue for many models, but only after checking it once per (server, model) for the session.

The check is a probe that needs no knowledge of the model: the answer's own first ``k`` tokens are sent as the
prefill with ``max_tokens=1`` and logprobs. A server that continues the prefill is then at the answer's
position ``k`` and returns (nearly) the top candidates it returned there; one that ignores it starts afresh and
returns those of position 0. The position ``k`` is chosen where the two differ. The verdict is remembered per
(server, model); a failed check is a plain :class:`PrefillError`, never branches that
only look right.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import errors

if TYPE_CHECKING:
    from .response import Response

LOCAL = "local"
LLAMA = "llama.cpp"
VLLM = "vllm"
DEEPSEEK = "deepseek"
CHECK = "check"
DIALECTS = (LOCAL, LLAMA, VLLM, DEEPSEEK, CHECK)
# the share of the original position's top candidates the probe must return (and more than position 0's)
AGREEMENT = 0.6


class PrefillError(errors.WcodeError):
    """The server or model does not continue a prefilled answer (or it could not be checked): no branches."""


_servers: dict[str, str] = {}  # base URL -> dialect, for servers this process knows (the local ones register)
_verdicts: dict[tuple[str, str], bool] = {}  # (base URL, model) -> continues a prefill, found by a probe


def _norm(url: str) -> str:
    return url.rstrip("/")


def register(base_url: str, dialect: str) -> None:
    """Say which prefill dialect the server at ``base_url`` speaks (local/llama.py registers its server)."""
    check_dialect(dialect)
    _servers[_norm(base_url)] = dialect


def check_dialect(dialect: Any) -> str:
    if dialect not in DIALECTS:
        raise errors.InvalidParameterError(
            f"dialect={dialect!r} is not allowed: use one of {', '.join(map(repr, DIALECTS))}, or None to let the "
            "server's address decide.",
            param="dialect",
            value=dialect,
        )
    return str(dialect)


def dialect_for(base_url: str, dialect: str | None = None) -> str:
    """The dialect to speak to ``base_url``: as given, as registered, by address (DeepSeek's API), else check."""
    if dialect is not None:
        return check_dialect(dialect)
    from ..local import llama
    from .session import is_bundled_local

    if llama.base_url() is not None and _norm(base_url) == _norm(llama.base_url() or ""):
        return LLAMA
    if is_bundled_local(base_url):
        return LOCAL
    known = _servers.get(_norm(base_url))
    if known is not None:
        return known
    if "api.deepseek.com" in base_url:
        return DEEPSEEK
    return CHECK


def verdict(base_url: str, model: str) -> bool | None:
    """What the probe found for (server, model) this session: True continues, False does not, None unknown."""
    return _verdicts.get((_norm(base_url), model))


def remember(base_url: str, model: str, continues: bool) -> None:
    _verdicts[(_norm(base_url), model)] = continues


def forget() -> None:
    """Forget every verdict (a server that was fixed, a test)."""
    _verdicts.clear()


def prefill_request(
    messages: Sequence[Mapping[str, Any]], prefix: str, dialect: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The messages (with the begun answer as the trailing assistant turn) and the extra body fields to send."""
    turn: dict[str, Any] = {"role": "assistant", "content": prefix}
    extra: dict[str, Any] = {}
    if dialect == DEEPSEEK:
        turn["prefix"] = True
    elif dialect == VLLM:
        extra = {"continue_final_message": True, "add_generation_prompt": False}
    return [dict(m) for m in messages] + [turn], extra


def refusal(base_url: str, model: str, why: str) -> PrefillError:
    return PrefillError(
        f"This server ({base_url}) or model ({model}) does not continue a prefilled answer: {why}. Branching needs "
        "a server that continues the assistant's begun answer (the bundled local models, llama.cpp, vLLM, "
        "DeepSeek's API); with dialect='vllm' or 'deepseek' you can say which one this is."
    )


# -- the check: pure functions over logprob entries ------------------------------------------------------------
def entry_bytes(entry: Mapping[str, Any]) -> bytes:
    """A token's bytes: its ``bytes`` when sent (the truth for fragments of a character), else its text."""
    raw = entry.get("bytes")
    if isinstance(raw, list) and all(isinstance(b, int) and 0 <= b < 256 for b in raw):
        return bytes(raw)
    token = entry.get("token")
    return token.encode("utf-8", "surrogatepass") if isinstance(token, str) else b""


def top_tokens(entry: Mapping[str, Any]) -> list[bytes]:
    """The listed candidates at one position, most likely first (finite logprobs only), as bytes."""
    alts = [a for a in entry.get("top_logprobs") or [] if isinstance(a, dict)]
    alts = [a for a in alts if isinstance(a.get("logprob"), (int, float)) and math.isfinite(a["logprob"])]
    alts.sort(key=lambda a: -a["logprob"])
    return [entry_bytes(a) for a in alts]


def agreement(expected: Sequence[bytes], got: Sequence[bytes]) -> float:
    """The share of ``expected`` candidates found among ``got`` (0 when nothing was expected)."""
    if not expected:
        return 0.0
    found = set(got)
    return sum(1 for t in expected if t in found) / len(expected)


def probe_position(entries: Sequence[Mapping[str, Any]]) -> int | None:
    """A position k >= 1 whose top candidates differ most from position 0's and whose prefix is whole text."""
    if len(entries) < 2:
        return None
    first = top_tokens(entries[0])
    best: tuple[float, int] | None = None
    prefix = b""
    for k in range(1, len(entries)):
        prefix += entry_bytes(entries[k - 1])
        here = top_tokens(entries[k])
        if not here or not _decodes(prefix):
            continue
        overlap = agreement(here, first)
        if best is None or overlap < best[0]:
            best = (overlap, k)
        if overlap == 0:
            break
    if best is None or best[0] >= AGREEMENT:  # nothing tells a continuation from a fresh start
        return None
    return best[1]


def continues(entries: Sequence[Mapping[str, Any]], k: int, probe_entry: Mapping[str, Any] | None) -> bool:
    """Whether a probe answer after the prefill of the first ``k`` tokens is at position ``k`` (not at 0)."""
    if probe_entry is None:
        return False
    got = top_tokens(probe_entry) or [entry_bytes(probe_entry)]
    at_k = agreement(top_tokens(entries[k]), got)
    at_0 = agreement(top_tokens(entries[0]), got)
    return at_k >= AGREEMENT and at_k > at_0


def _decodes(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def prefix_text(entries: Sequence[Mapping[str, Any]], at: int, token: bytes) -> str:
    """The answer's first ``at`` tokens and then ``token``, as text; an error when it ends inside a character."""
    data = b"".join(entry_bytes(e) for e in entries[:at]) + token
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        start = at
        while start > 0 and not _decodes(b"".join(entry_bytes(x) for x in entries[:start])):
            start -= 1
        raise errors.InvalidParameterError(
            f"Forcing {token!r} at position {at} leaves the answer ending inside a multi-byte character "
            f"({data[e.start :].hex(' ')}), which cannot be sent as text: force a token that completes the "
            f"character, or branch at position {start}, where it starts.",
            param="token",
            value=token,
        ) from None


# -- sending ------------------------------------------------------------------------------------------------------
_OWN = ("model", "messages", "stream", "stream_options")


def carried(request: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The original request's own fields (sampling, logprobs, reasoning…), less those a call overrides: sent as
    they were, so a branch samples as the answer did."""
    return {k: v for k, v in request.items() if k not in _OWN and k not in overrides}


def ensure_continues(
    response: Response,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
    api_key: str | None = None,
) -> None:
    """For a server of unknown dialect: probe once per (server, model) whether it continues a prefill; raise
    :class:`PrefillError` when it does not (now or earlier this session) or when it cannot be checked."""
    from .client import chat

    base_url, model = response.base_url, str(response.request.get("model") or response.model)
    known = verdict(base_url, model)
    if known is True:
        return
    if known is False:
        raise refusal(base_url, model, "a check earlier in this session found it answering afresh instead")
    entries = response.logprobs
    k = probe_position(entries) if entries else None
    if k is None:
        raise PrefillError(
            f"Cannot check whether this server ({base_url}) and model ({model}) continue a prefilled answer, so no "
            "branches: the check needs an answer of two or more tokens with their top alternatives (ask with "
            "logprobs=True, top_logprobs=5), whose positions differ. If you know the server, say so with "
            f"dialect= (one of {', '.join(DIALECTS[:-1])})."
        )
    prefix = b"".join(entry_bytes(e) for e in entries[:k]).decode("utf-8")
    messages, _ = prefill_request(response.request.get("messages") or [], prefix, CHECK)
    top = min(max(len(top_tokens(entries[k])), 1), 20)
    overrides: dict[str, Any] = {"max_tokens": 1, "logprobs": True, "top_logprobs": top}
    probe = chat(
        messages,
        model=model,
        base_url=base_url,
        headers=headers,
        timeout=timeout,
        api_key=api_key,
        extra_body=carried(response.request, overrides),
        **overrides,
    )
    if not probe.logprobs:
        raise PrefillError(
            f"Cannot check whether this server ({base_url}) and model ({model}) continue a prefilled answer: the "
            "check's answer came without logprobs. No branches."
        )
    ok = continues(entries, k, probe.logprobs[0])
    remember(base_url, model, ok)
    if not ok:
        raise refusal(
            base_url,
            model,
            f"given the answer's first {k} token(s) as the assistant's begun turn, it answered as if from the start",
        )


def send(
    response: Response,
    prefix: str,
    *,
    dialect: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
    api_key: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> Response:
    """Ask the server that gave ``response`` for the continuation of ``prefix`` (the answer begun), in its
    dialect, with the original request's settings under ``params``; streamed (llama.cpp repeats the prefill in a
    whole answer's text, not in a stream's). Servers of unknown dialect are checked first (:func:`ensure_continues`)."""
    from .client import chat

    params = dict(params or {})
    for name in ("logprobs", "top_logprobs"):  # checked together: top_logprobs=1 alone keeps logprobs on
        if name in response.request and name not in params:
            params[name] = response.request[name]
    spoken = dialect_for(response.base_url, dialect)
    if spoken == CHECK:
        ensure_continues(response, headers=headers, timeout=timeout, api_key=api_key)
    messages, extra = prefill_request(response.request.get("messages") or [], prefix, spoken)
    return chat(
        messages,
        model=str(response.request.get("model") or response.model),
        base_url=response.base_url,
        headers=headers,
        timeout=timeout,
        api_key=api_key,
        stream=True,
        extra_body={**carried(response.request, params), **extra},
        **params,
    )
