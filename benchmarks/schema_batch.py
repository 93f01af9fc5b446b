"""Does a schema slow wm.batch down? 200 schema requests at 200 ms each, concurrency 32, against plain batches.

Every request waits 200 ms (``X-Wcode-Fault: delay_ms=200``) before it is answered. 200 prompts at concurrency 32
would ideally take 1.25 s. We time
  (a) wm.batch(prompts) as plain text (max_tokens=24, with and without logprobs), and
  (b) wm.batch(prompts, schema="label: positive|negative|mixed, reason: str") (the answer JSON, every row parsed
      into columns), and (c) the same with logprobs=True, top_logprobs=5 (adds <field>_prob columns).
Target (issue 13): (b) within 1.5x of the ideal, as plain batches; (c) is judged against the same 1.5x.

The server must not be the bottleneck, or the benchmark measures it rather than the client (design.md;
benchmarks/stream_throughput.py does the same). By default (``--server prebuilt``) a plain socket server (a
subprocess, so it does not share our GIL; a thread per connection) waits the delay, then sends pre-built bytes:
every event already framed as an HTTP chunk. A schema request (response_format json_schema) is answered with the
JSON the bundled model writes for this schema, in about as many tokens (16; it averages 18); a plain one with ``max_tokens`` words; with
top_logprobs each token carries that many alternatives, the label's being the three allowed values. Its CPU time
is printed beside the client's. ``--server local`` uses the bundled local model instead (``wcode-magic serve
--test-mode``), which generates every answer and its alternatives with the trigram model: on a small machine its
CPU competes with the client's, so that run mixes the two costs (its CPU time is printed too).

The kinds take turns, round after round, so a busy moment of the machine falls on all of them alike; each one's
best round counts (the median is printed too).

    python benchmarks/schema_batch.py [--server prebuilt|local] [--prompts 200] [--concurrency 32]
                                      [--delay-ms 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import socket_server  # benchmarks/socket_server.py: the plain socket server these benchmarks share
from batch_throughput import MODEL, start_server

SCHEMA = "label: positive|negative|mixed, reason: str"
TARGET = 1.5

SERVER = r"""
import json, socket, sys, threading, time

REASON = ["the", " soup", " was", " cold", " but", " the", " staff", " were", " kind", " and", " quick"]
WORDS = [" w%d" % (i % 97) for i in range(4096)]

def chunk(delta, token=None, top=0, alts=None):
    c = {"id": "bench", "object": "chat.completion.chunk", "created": 1, "model": "local/ngram",
         "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
    if token is not None and top:
        pairs = alts or [(token, -0.1)] + [(" a%d" % j, -1.0 - j) for j in range(top - 1)]
        c["choices"][0]["logprobs"] = {"content": [{
            "token": token, "logprob": pairs[0][1], "bytes": list(token.encode()),
            "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in pairs[:top]]}],
            "refusal": None}
    return ("data: " + json.dumps(c, separators=(",", ":")) + "\n\n").encode()

def framed(data):  # one HTTP/1.1 chunk
    return b"%x\r\n%s\r\n" % (len(data), data)

def tokens(schema, n):
    if not schema:
        return [(w, None) for w in WORDS[:n]]
    labels = [("mixed", -0.4), ("negative", -1.3), ("positive", -2.0)]
    out = [('{"label": "', None), ("mixed", labels), ('", "reason": "', None)]
    out += [(w, None) for w in REASON] + [(".", None), ('"}', None)]
    return out  # 16 tokens plus the role chunk: as many events as the bundled model's answer

CACHE = {}

def body(schema, top, n):
    key = (schema, top, n)
    if key not in CACHE:
        toks = tokens(schema, n)
        events = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": t}, t, top, alts) for t, alts in toks]
        usage = {"prompt_tokens": 12, "completion_tokens": len(toks), "total_tokens": 12 + len(toks)}
        end = {"id": "bench", "object": "chat.completion.chunk", "model": "local/ngram",
               "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage}
        events.append(("data: " + json.dumps(end) + "\n\n").encode() + b"data: [DONE]\n\n")
        CACHE[key] = [framed(e) for e in events] + [b"0\r\n\r\n"]
    return CACHE[key]

HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
        b"connection: keep-alive\r\n\r\n")

def answer(conn, req, headers):
    fault = headers.get(b"x-wcode-fault", b"")
    delay = int(fault.split(b"delay_ms=")[1].split(b",")[0]) if b"delay_ms=" in fault else 0
    if delay:
        time.sleep(delay / 1000)
    schema = (req.get("response_format") or {}).get("type") == "json_schema"
    top = int(req.get("top_logprobs") or 0) if req.get("logprobs") else 0
    n = int(req.get("max_tokens") or 24)
    conn.sendall(HEAD)
    for piece in body(schema, top, n):
        conn.sendall(piece)

from socket_server import serve_forever

serve_forever(answer, int(sys.argv[1]))
"""


def start_prebuilt() -> tuple[subprocess.Popen, str]:
    return socket_server.start(SERVER)


def cpu_of(pid: int) -> float:
    """A process's CPU seconds so far (user + system), from /proc; NaN where there is no /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(url: str, prompts: list[str], concurrency: int, headers: dict[str, str], **kw) -> float:
    import wcode_magic as wm

    t0 = time.perf_counter()
    df = wm.batch(prompts, concurrency=concurrency, model=MODEL, base_url=url, headers=headers, progress=False, **kw)
    elapsed = time.perf_counter() - t0
    assert df["complete"].all() and df["error"].isna().all(), df["error"].dropna().head()
    if "schema" in kw:
        assert df["label"].notna().all()
        if kw.get("logprobs"):
            assert df["label_prob"].notna().all() and df["reason_prob"].notna().all()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", choices=("prebuilt", "local"), default="prebuilt")
    ap.add_argument("--prompts", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--delay-ms", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    proc, url = start_prebuilt() if args.server == "prebuilt" else start_server()
    try:
        import wcode_magic as wm

        headers = {"X-Wcode-Fault": f"delay_ms={args.delay_ms}"}
        prompts = [f"The soup was cold but the staff were kind, take {i}" for i in range(args.prompts)]
        wm.batch(["warm up"], model=MODEL, base_url=url, schema=SCHEMA, logprobs=True, progress=False)
        ideal = args.prompts * args.delay_ms / 1000 / args.concurrency
        kinds = {
            "plain (max_tokens=24)": {"max_tokens": 24},
            "plain + logprobs": {"max_tokens": 24, "logprobs": True, "top_logprobs": 5},
            "schema": {"schema": SCHEMA},
            "schema + logprobs": {"schema": SCHEMA, "logprobs": True, "top_logprobs": 5},
        }
        times: dict[str, list[float]] = {k: [] for k in kinds}
        client_cpu: dict[str, list[float]] = {k: [] for k in kinds}
        server_cpu: dict[str, list[float]] = {k: [] for k in kinds}
        for _ in range(args.repeat):
            for name, kw in kinds.items():
                c0, s0 = time.process_time(), cpu_of(proc.pid)
                times[name].append(run(url, prompts, args.concurrency, headers, **kw))
                client_cpu[name].append(time.process_time() - c0)
                server_cpu[name].append(cpu_of(proc.pid) - s0)
        print(
            f"{args.prompts} prompts, {args.delay_ms} ms each, concurrency {args.concurrency}, server {args.server}: "
            f"ideal {ideal:.3f} s; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
        )
        for name, ts in times.items():
            best = min(ts)
            target = f" (target <= {TARGET})" if name.startswith("schema") else ""
            verdict = ("  met" if best / ideal <= TARGET else "  NOT met") if target else ""
            print(
                f"{name:<22} best {best:.3f} s  median {statistics.median(ts):.3f} s  ratio to ideal "
                f"{best / ideal:.2f}{target}{verdict}   CPU client {statistics.median(client_cpu[name]):.2f} s, "
                f"server {statistics.median(server_cpu[name]):.2f} s"
            )
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
