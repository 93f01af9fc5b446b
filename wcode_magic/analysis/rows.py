"""One flat row per Response: the columns shared by ``wm.frame(...)`` and the history table.

Pure Python (no pandas), so history can store a row without importing pandas and the analysis code can build a
DataFrame from many rows in one pass.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from ..core.logprobs import normalize_logprob
from ..core.response import Response

REQUEST_NON_PARAMS = frozenset({"model", "messages", "stream", "stream_options"})

# what the server said and what it counted: the part every table of answers shows (the frames, a sweep's result
# columns, the history's cached answer), declared here once
ANSWER_COLUMNS = (
    "text",
    "reasoning",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "total_tokens",
)
TIMING_COLUMNS = ("latency_s", "ttft_s")
COLUMNS = (
    "time",
    "model",
    "host",
    "params",
    "prompt",
    *ANSWER_COLUMNS,
    "cost",
    *TIMING_COLUMNS,
    "mean_logprob",
    "perplexity",
    "min_prob",
    "complete",
    "status",
)


def request_params(response: Response) -> dict[str, Any]:
    """The sampling parameters that were sent (everything in the body but model, messages and stream flags)."""
    return {k: v for k, v in response.request.items() if k not in REQUEST_NON_PARAMS}


def last_prompt(response: Response) -> str:
    """The last user turn's text: what a table of runs should show as "the prompt"."""
    for message in reversed(response.request.get("messages", [])):
        if message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
    return ""


def logprob_summary(response: Response) -> tuple[float | None, float | None, float | None]:
    """(mean logprob, perplexity, min prob) over the answer tokens with a finite logprob; Nones without any.

    Reads the Response's logprob columns, not ``.logprobs``: every call's history row needs this, and decoding
    every entry with its alternatives costs far more than the three numbers.
    """
    columns = response.logprob_columns("content")
    values = [v for v in map(normalize_logprob, columns.logprobs if columns else ()) if math.isfinite(v)]
    if not values:
        return None, None, None
    mean = sum(values) / len(values)
    return mean, math.exp(-mean), math.exp(min(values))


def response_row(response: Response, *, when: float | None = None) -> dict[str, Any]:
    """The row for one Response, with ``params`` as a dict (history stores it as JSON)."""
    from urllib.parse import urlsplit

    mean, ppl, min_prob = logprob_summary(response)
    u = response.usage
    return {
        "time": time.time() if when is None else when,
        "model": response.request.get("model") or response.model,
        "host": urlsplit(response.base_url).netloc,
        "params": request_params(response),
        "prompt": last_prompt(response),
        "text": response.text,
        "reasoning": response.reasoning,
        "finish_reason": response.finish_reason,
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "reasoning_tokens": u.reasoning_tokens,
        "total_tokens": u.total_tokens,
        "cost": response.cost,
        "latency_s": response.latency_s,
        "ttft_s": response.ttft_s,
        "mean_logprob": mean,
        "perplexity": ppl,
        "min_prob": min_prob,
        "complete": response.complete,
        "status": response.status,
    }
