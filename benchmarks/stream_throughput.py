"""How fast does wm.chat read a stream, against the openai SDK and against reading raw bytes?

The server must not be the bottleneck, or it hides the client's cost (a uvicorn/starlette server is slower than
the client: design.md). So a plain socket server (a subprocess, so it does not share our GIL) answers each
request with pre-built bytes: every event already framed as an HTTP chunk, one ``sendall`` per event, as real
servers send tokens. In one run we time, per scenario:
  (a) the raw-read floor: httpx reading the body's bytes without parsing,
  (b) wm.chat(stream=True) end to end (SSE framing, parsing, folding, the Response, and recording the call in
      the history, which is on by default; into a scratch WCODE_DATA_DIR),
  (c) the official openai SDK iterating the same stream.
Targets (issue 11): content stream at most 2.0x the floor's time and at least 6x the SDK's rate; 20 top_logprobs
at least 5x the SDK's rate; 1,000,000 chunks at most 11x the time of 100,000 (no quadratic string building).

    python benchmarks/stream_throughput.py [--chunks 20000] [--repeat 5] [--skip-scaling]
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

TARGETS = {"content_vs_floor": 2.0, "content_vs_openai": 6.0, "logprobs_vs_openai": 5.0, "scaling_1M_over_100k": 11}

SERVER = r"""
import json, socket, sys, threading

def event(i, top):
    tok = f" w{i % 97}"
    c = {"id": "bench", "object": "chat.completion.chunk", "created": 1, "model": "bench",
         "choices": [{"index": 0, "delta": {"content": tok}, "finish_reason": None}]}
    if top:
        alts = [{"token": f" a{j}", "logprob": -0.5 * j, "bytes": list(f" a{j}".encode())} for j in range(top)]
        c["choices"][0]["logprobs"] = {"content": [{"token": tok, "logprob": -0.1, "bytes": list(tok.encode()),
                                                    "top_logprobs": alts}], "refusal": None}
    return ("data: " + json.dumps(c, separators=(",", ":")) + "\n\n").encode()

def framed(data):  # one HTTP/1.1 chunk
    return b"%x\r\n%s\r\n" % (len(data), data)

CACHE = {}

def pieces(top):
    if top not in CACHE:
        CACHE[top] = [framed(event(i, top)) for i in range(997)]
    return CACHE[top]

HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
        b"connection: keep-alive\r\n\r\n")

def answer(conn, req):
    n = int(req.get("max_tokens", 1000))
    top = int(req.get("top_logprobs", 0) or 0)
    ps = pieces(top)
    usage = {"id": "bench", "object": "chat.completion.chunk", "model": "bench", "choices": [],
             "usage": {"prompt_tokens": 1, "completion_tokens": n, "total_tokens": n + 1}}
    end = (b'data: {"id":"bench","model":"bench","choices":[{"index":0,"delta":{},"finish_reason":"length"}]}\n\n'
           + ("data: " + json.dumps(usage) + "\n\n").encode() + b"data: [DONE]\n\n")
    conn.sendall(HEAD)
    send, m = conn.sendall, len(ps)
    for i in range(n):
        send(ps[i % m])
    send(framed(end) + b"0\r\n\r\n")

def serve(conn):
    buf = b""
    with conn:
        while True:
            while b"\r\n\r\n" not in buf:
                more = conn.recv(65536)
                if not more:
                    return
                buf += more
            head, _, buf = buf.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(buf) < length:
                buf += conn.recv(65536)
            body, buf = buf[:length], buf[length:]
            answer(conn, json.loads(body))

listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
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

    for fn in (floor, ours, theirs):  # warm up connections and code paths
        fn()
    times = {"raw": best_of(floor, repeat), "wcode_magic": best_of(ours, repeat), "openai": best_of(theirs, repeat)}
    if top:  # logprob entries are decoded on first access: time that too, outside the stream
        t = time.perf_counter()
        assert len(kept[0].logprobs) == n and len(kept[0].logprobs[0]["top_logprobs"]) == top
        times["first .logprobs access"] = time.perf_counter() - t
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=5)
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
        "content_vs_floor": round(c["wcode_magic"] / c["raw"], 2),
        "content_vs_openai": round(c["openai"] / c["wcode_magic"], 2),
        "logprobs_vs_openai": round(lp["openai"] / lp["wcode_magic"], 2),
    }
    if "scaling" in results:
        summary["scaling_1M_over_100k"] = round(results["scaling"]["1M"] / results["scaling"]["100k"], 1)
    print("\nagainst the targets:")
    for name, got in summary.items():
        target = TARGETS[name]
        at_most = name in ("content_vs_floor", "scaling_1M_over_100k")
        met = got <= target if at_most else got >= target
        print(f"  {name:22s} {got:6.2f}x  target {'<=' if at_most else '>='} {target}x  {'met' if met else 'MISSED'}")
    print("\nsummary:", json.dumps(summary))


if __name__ == "__main__":
    main()
