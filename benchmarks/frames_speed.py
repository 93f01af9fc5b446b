"""How long do Response.tokens() + Response.alternatives() take for 20,000 positions x 20 alternatives?

Target (issue 5): at most 0.3 s. The Response is built the way the client builds it (``feed(chunk, raw=text)``
per streamed chunk), from realistic logprobs: a softmax over a 2,000-word vocabulary, the 20 best listed best
first, the sampled token drawn from the whole distribution (so now and then it is missing from its own list),
and some CJK characters split across two byte tokens. Two numbers, each the median of several fresh Responses:

  frames  tokens() + alternatives() once the Response has decoded its logprobs (what this issue builds);
  cold    the same on a Response nobody has read yet. The frames read the flat logprob columns the Response
          fills while the chunks arrive, so no decode of the kept chunk text is needed; what filling them
          costs is printed too ("feed": the Response's whole fold of the 20,000 chunks, during the stream,
          also part of benchmarks/stream_throughput.py).

    python benchmarks/frames_speed.py [--positions 20000] [--top 20] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import time

TARGET_S = 0.3


def build(positions: int, top: int, seed: int, feed_times: list[float] | None = None):
    from wcode_magic.core.response import Response

    rnd = random.Random(seed)
    vocab = [f" w{i}" for i in range(2000)]
    r = Response({"model": "local/ngram", "logprobs": True, "top_logprobs": top})
    pieces = []
    i = 0
    while len(pieces) < positions:
        i += 1
        if (
            i % 50 == 7 and len(pieces) + 2 <= positions
        ):  # a CJK character in two byte tokens: both listed as U+FFFD, bytes tell the truth
            raw = "海".encode()
            for part, text in ((raw[:2], ""), (raw[2:], "海")):
                alt = {"token": "\ufffd", "logprob": -0.05, "bytes": list(part)}
                pieces.append((text, {**alt, "top_logprobs": [alt]}))
            continue
        logits = [rnd.gauss(0, 2.5) for _ in range(60)]
        words = rnd.sample(vocab, 60)
        z = math.log(sum(math.exp(v) for v in logits)) + math.log(1 + 1940 * 0.001)  # the long tail's mass
        ranked = sorted(zip(logits, words, strict=True), reverse=True)
        alts = [{"token": w, "logprob": v - z, "bytes": list(w.encode())} for v, w in ranked[:top]]
        pick = ranked[min(int(rnd.expovariate(0.6)), 59)]
        sampled = {"token": pick[1], "logprob": pick[0] - z, "bytes": list(pick[1].encode())}
        pieces.append((pick[1], {**sampled, "top_logprobs": alts}))
    chunks = []
    for text, entry in pieces:
        chunk = {
            "id": "bench",
            "object": "chat.completion.chunk",
            "model": "local/ngram",
            "choices": [{"index": 0, "delta": {"content": text}, "logprobs": {"content": [entry], "refusal": None}}],
        }
        chunks.append((chunk, json.dumps(chunk, separators=(",", ":"))))
    t0 = time.perf_counter()
    for chunk, raw in chunks:
        r.feed(chunk, raw=raw)
    r.finish(complete=True)
    if feed_times is not None:
        feed_times.append(time.perf_counter() - t0)
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--positions", type=int, default=20_000)
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    import pandas  # noqa: F401  (imported once up front: the timing is the work, not the import)

    print(f"building {args.repeat * 2} Responses of {args.positions} positions x {args.top} alternatives ...")
    warm, cold, feed = [], [], []
    rows = alt_rows = 0
    for k in range(args.repeat):
        r = build(args.positions, args.top, seed=k, feed_times=feed)
        assert r.logprobs  # the Response decodes its kept chunk text once
        t0 = time.perf_counter()
        rows, alt_rows = len(r.tokens()), len(r.alternatives())
        warm.append(time.perf_counter() - t0)
        r = build(args.positions, args.top, seed=100 + k, feed_times=feed)
        t0 = time.perf_counter()
        r.tokens(), r.alternatives()
        cold.append(time.perf_counter() - t0)
    frames_s, cold_s = statistics.median(warm), statistics.median(cold)
    print(f"rows: tokens {rows}, alternatives {alt_rows}")
    print(
        f"frames  tokens()+alternatives(): {frames_s:.3f} s   ratio to the {TARGET_S} s target: {frames_s / TARGET_S:.2f}"
    )
    print(
        f"cold    on a Response nobody read yet: {cold_s:.3f} s   ratio to the {TARGET_S} s target: {cold_s / TARGET_S:.2f}"
    )
    print(f"feed    Response.feed of the chunks (during the stream): {statistics.median(feed):.3f} s")
    print(f"(all runs, frames: {', '.join(f'{t:.3f}' for t in warm)}; cold: {', '.join(f'{t:.3f}' for t in cold)})")


if __name__ == "__main__":
    main()
