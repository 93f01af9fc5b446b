"""How long does Response.field_probs() take for a 2,000-token JSON answer with 20 alternatives per token?

Target (issue 13): at most 50 ms. The Response is built the way the client builds it (``feed(chunk, raw=text)``
per streamed chunk) for a schema ``items: [{name: str, label: yes|no|unsure, ok: bool, n: int}]``: a list of
records whose names are several word tokens, whose labels and booleans are one token with the allowed values
(and case variants) among 20 alternatives, every token carrying 20 alternatives. The median of several fresh
Responses is printed, with the number of leaf rows.

    python benchmarks/field_probs.py [--tokens 2000] [--top 20] [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import time

TARGET_S = 0.05
SCHEMA = "items: [{name: str, label: yes|no|unsure, ok: bool, n: int}]"


def _alts(rnd: random.Random, sampled: str, top: int, extra: list[str]) -> tuple[float, list[dict]]:
    words = [sampled, *extra, *(f" w{rnd.randrange(5000)}" for _ in range(top))][:top]
    logits = sorted((rnd.gauss(0, 2) for _ in words), reverse=True)
    z = math.log(sum(math.exp(v) for v in logits) * 1.05)
    alts = [{"token": w, "logprob": v - z, "bytes": list(w.encode())} for w, v in zip(words, logits, strict=True)]
    return alts[0]["logprob"], alts


def build(tokens: int, top: int, seed: int):
    from wcode_magic.core.response import Response
    from wcode_magic.core.schema import to_schema

    rnd = random.Random(seed)
    pieces: list[tuple[str, list[str]]] = [('{"items": [', [])]
    first = True
    while len(pieces) < tokens - 2:
        pieces.append(("" if first else ", ", []))
        first = False
        pieces.append(('{"name": "', []))
        for k in range(rnd.randrange(3, 9)):
            pieces.append((("" if k == 0 else " ") + f"w{rnd.randrange(5000)}", []))
        label = rnd.choice(["yes", "no", "unsure"])
        pieces.append(('", "label": "', []))
        pieces.append((label, ["yes", "no", "unsure", "Yes", " no"]))
        pieces.append(('", "ok": ', []))
        pieces.append((rnd.choice(["true", "false"]), ["true", "false", "True"]))
        pieces.append((', "n": ', []))
        pieces.append((str(rnd.randrange(100)), [str(i) for i in range(5)]))
        pieces.append(("}", []))
    pieces.append(("]}", []))
    r = Response({"model": "m", "logprobs": True, "top_logprobs": top})
    r.schema = to_schema(SCHEMA)
    for text, extra in pieces:
        lp, alts = _alts(rnd, text, top, [e for e in extra if e != text])
        entry = {"token": text, "logprob": lp, "bytes": list(text.encode()), "top_logprobs": alts}
        chunk = {
            "id": "b",
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": text}, "logprobs": {"content": [entry]}}],
        }
        r.feed(chunk, raw=json.dumps(chunk))
    r.finish(complete=True)
    json.loads(r.text)  # the answer is valid JSON
    return r, len(pieces)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    import wcode_magic  # noqa: F401  (the package root wires r.field_probs)

    times = []
    for seed in range(args.repeat):
        r, n = build(args.tokens, args.top, seed)
        if seed == 0:
            r.field_probs()  # imports (pandas, numpy) out of the measurement
            r, n = build(args.tokens, args.top, 100)
        t0 = time.perf_counter()
        df = r.field_probs()
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    print(f"field_probs: {n} tokens x {args.top} alternatives, {len(df)} rows: median {median * 1000:.1f} ms")
    print(
        f"target <= {TARGET_S * 1000:.0f} ms: {'met' if median <= TARGET_S else 'NOT met'} ({median / TARGET_S:.2f}x)"
    )


if __name__ == "__main__":
    main()
