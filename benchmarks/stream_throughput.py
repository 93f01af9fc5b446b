"""How fast does wm.chat read a stream, against the openai SDK and against reading raw bytes?

A firehose server (a subprocess, so it does not share our GIL) streams N pre-built one-token chunks as fast as
uvicorn can write them. In one run we time, per scenario:
  (a) wm.chat(stream=True) end to end (parse, fold, Response),
  (b) the official openai SDK iterating the same stream,
  (c) httpx reading the raw bytes without parsing (the floor).
Targets (issue 2): content >= 5x the SDK's rate and within 2.5x of the floor's time; 20 top_logprobs >= 4x the
SDK's rate; 1,000,000 chunks at most 11x the time of 100,000 (no quadratic string building). wm.chat runs with
history on, its default: the time includes recording the call.

    python benchmarks/stream_throughput.py [--chunks 20000] [--skip-scaling]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

SERVER = r"""
import json, sys
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route
import uvicorn

def chunk(i, top):
    tok = f" w{i % 97}"
    c = {"id": "bench", "object": "chat.completion.chunk", "model": "bench",
         "choices": [{"index": 0, "delta": {"content": tok}, "finish_reason": None}]}
    if top:
        alts = [{"token": f" a{j}", "logprob": -0.5 * j, "bytes": list(f" a{j}".encode())} for j in range(top)]
        c["choices"][0]["logprobs"] = {"content": [{"token": tok, "logprob": -0.1, "bytes": list(tok.encode()),
                                                    "top_logprobs": alts}], "refusal": None}
    return ("data: " + json.dumps(c, separators=(",", ":")) + "\n\n").encode()

CACHE = {}

def body(n, top):
    key = (n, top)
    if key not in CACHE:
        pieces = [chunk(i, top) for i in range(min(n, 997))]
        CACHE[key] = pieces
    return CACHE[key]

async def completions(request: Request):
    req = await request.json()
    n = int(req.get("max_tokens", 1000))
    top = int(req.get("top_logprobs", 0) or 0)
    pieces = body(n, top)
    usage = {"id": "bench", "object": "chat.completion.chunk", "model": "bench", "choices": [],
             "usage": {"prompt_tokens": 1, "completion_tokens": n, "total_tokens": n + 1}}
    async def gen():
        # One write per event, as real servers send tokens: the raw floor then pays HTTP chunk framing per
        # event, like every client does.
        for i in range(n):
            yield pieces[i % len(pieces)]
        batch = []
        batch.append(b'data: {"id":"bench","model":"bench","choices":[{"index":0,"delta":{},"finish_reason":"length"}]}\n\n')
        batch.append(("data: " + json.dumps(usage) + "\n\n").encode())
        batch.append(b"data: [DONE]\n\n")
        yield b"".join(batch)
    return StreamingResponse(gen(), media_type="text/event-stream")

app = Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}/v1"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("benchmark server did not start")


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def run(base_url: str, n: int, top: int, repeat: int) -> dict[str, float]:
    import httpx
    import openai

    import wcode_magic as wm

    body = {"model": "bench", "messages": [{"role": "user", "content": "go"}], "max_tokens": n, "stream": True}
    extra = {"logprobs": True, "top_logprobs": top} if top else {}

    kept = []

    def ours() -> None:
        r = wm.chat("go", model="bench", base_url=base_url, max_tokens=n, **extra)
        assert r.complete and r.usage.completion_tokens == n, r
        kept[:] = [r]

    sdk = openai.OpenAI(base_url=base_url, api_key="none", max_retries=0)

    def theirs() -> None:
        count = 0
        for chunk in sdk.chat.completions.create(
            model="bench", messages=body["messages"], max_tokens=n, stream=True, **extra
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                count += 1
        assert count == n

    raw_client = httpx.Client(timeout=60)

    def floor() -> None:
        with raw_client.stream("POST", base_url + "/chat/completions", json={**body, **extra}) as r:
            for _ in r.iter_bytes():
                pass

    for fn in (ours, theirs, floor):  # warm up connections and code paths
        fn()
    times = {"wcode_magic": best_of(ours, repeat), "openai": best_of(theirs, repeat), "raw": best_of(floor, repeat)}
    if top:  # logprob entries are decoded on first access: time that too, outside the stream
        t = time.perf_counter()
        assert len(kept[0].logprobs) == n and len(kept[0].logprobs[0]["top_logprobs"]) == top
        times["first .logprobs access"] = time.perf_counter() - t
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-scaling", action="store_true")
    args = ap.parse_args()
    os.environ.pop("WCODE_API_KEY", None)
    # History stays on, as users have it (every call is recorded before wm.chat returns), but in a scratch
    # directory: the runs must not fill the user's own history.
    os.environ["WCODE_DATA_DIR"] = tempfile.mkdtemp(prefix="wcode-bench-")
    os.environ.pop("WCODE_HISTORY", None)
    proc, base_url = start_server()
    results = {}
    try:
        for label, top in (("content", 0), ("20 top_logprobs", 20)):
            t = run(base_url, args.chunks, top, args.repeat)
            n = args.chunks
            results[label] = t
            print(f"\n{label}: {n} chunks")
            for name, secs in t.items():
                print(f"  {name:12s} {secs:7.3f} s  {n / secs:10,.0f} chunks/s")
            print(
                f"  rate vs openai SDK: {t['openai'] / t['wcode_magic']:.2f}x   time vs raw floor: {t['wcode_magic'] / t['raw']:.2f}x"
            )
        if not args.skip_scaling:
            import wcode_magic as wm

            def timed(n: int) -> float:
                t = time.perf_counter()
                r = wm.chat("go", model="bench", base_url=base_url, max_tokens=n)
                assert len(r.text) > n
                return time.perf_counter() - t

            small, large = timed(100_000), timed(1_000_000)
            results["scaling"] = {"100k": small, "1M": large}
            print(
                f"\nscaling: 100,000 chunks {small:.2f} s, 1,000,000 chunks {large:.2f} s: {large / small:.1f}x (target <= 11x)"
            )
    finally:
        proc.terminate()
    c, lp = results["content"], results["20 top_logprobs"]
    summary = {
        "content_vs_openai": round(c["openai"] / c["wcode_magic"], 2),
        "content_vs_floor": round(c["wcode_magic"] / c["raw"], 2),
        "logprobs_vs_openai": round(lp["openai"] / lp["wcode_magic"], 2),
    }
    if "scaling" in results:
        summary["scaling_1M_over_100k"] = round(results["scaling"]["1M"] / results["scaling"]["100k"], 1)
    print("\nsummary:", json.dumps(summary))


if __name__ == "__main__":
    main()
