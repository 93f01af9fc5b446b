"""Are the columns of ``%%compare`` truly concurrent? Three streams side by side vs the slowest one alone.

A real API streams at the pace of its model, so a compare of three streams should take about as long as the
slowest of them, not their sum. A plain socket server in a subprocess plays that API: it streams pre-built
events at a fixed pace (``--rate`` tokens a second, one write per event), each model id asking for its own
length (``bench/300`` streams 300 tokens). In a real kernel (nbclient, so every widget update is a real comm
message) we time each stream alone (``await wm.achat``), then the three at once through ``CompareView`` (what
``%%compare`` shows) and through ``wm.acompare`` (no view), and count each column's redraws.
Targets (issue 16): the view's compare within 1.3x the slowest single stream; at most 15 redraws a second per
column. Prints the measured numbers; it is not a pass/fail test.

    .venv/bin/python benchmarks/compare_stream.py [--rate 100] [--lengths 200,300,400] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess

import socket_server  # benchmarks/socket_server.py: the plain socket server these benchmarks share
from kernel_runs import kernel_runs  # benchmarks/kernel_runs.py: the timings run in a real kernel

TARGET_RATIO = 1.3
TARGET_UPDATES = 15

SERVER = r"""
import json, socket, sys, threading, time

RATE = float(sys.argv[2])

def chunk(delta, finish=None, usage=None):
    c = {"id": "bench", "object": "chat.completion.chunk", "created": 1, "model": "bench",
         "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage:
        c["usage"] = usage
    data = ("data: " + json.dumps(c, separators=(",", ":")) + "\n\n").encode()
    return b"%x\r\n%s\r\n" % (len(data), data)

HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
        b"connection: keep-alive\r\n\r\n")

def answer(conn, req, headers):
    n = int(str(req.get("model", "bench/100")).rsplit("/", 1)[-1])
    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": " w%d" % i}) for i in range(n)]
    usage = {"prompt_tokens": 12, "completion_tokens": n, "total_tokens": 12 + n}
    events.append(chunk({}, "stop", usage))
    done = b"data: [DONE]\n\n"
    events.append(b"%x\r\n%s\r\n" % (len(done), done) + b"0\r\n\r\n")
    conn.sendall(HEAD)
    start = time.monotonic()
    for i, piece in enumerate(events):
        wait = start + i / RATE - time.monotonic()  # paced like a model: RATE events a second
        if wait > 0:
            time.sleep(wait)
        conn.sendall(piece)

from socket_server import serve_forever

serve_forever(answer, int(sys.argv[1]))
"""

KERNEL_CODE = """
import asyncio, json, time
import wcode_magic as wm
from wcode_magic.notebook.compareview import CompareView

wm.configure(base_url={url!r}, api_key='bench', history=False)
MODELS = {models!r}
PROMPT = 'Tell me a long story.'

def busiest(stamps):  # the most redraws in any one-second window
    return max((sum(1 for u in stamps if s <= u < s + 1.0) for s in stamps), default=0)

# warmed: three connections, and pandas and tqdm imported (a first compare in a session pays ~0.5 s for them)
await wm.acompare(PROMPT, ['bench/5'] * 3, progress=False)
results = []
for run in range({repeat}):
    row = {{}}
    for m in MODELS:
        t = time.perf_counter()
        r = await wm.achat(PROMPT, model=m)
        row[m] = time.perf_counter() - t
        assert r.complete
    view = CompareView(PROMPT, MODELS)
    display(view)
    await asyncio.sleep(0.3)  # the widgets' comm_open messages go out first, as before a person clicks
    t = time.perf_counter()
    df = await view
    row['view'] = time.perf_counter() - t
    assert df['complete'].all(), df['error']
    assert all(c.answer.outputs[0]['data']['text/markdown'] == c.response.text for c in view.columns)
    row['updates'] = [c.updates for c in view.columns]
    row['busiest'] = [busiest(c.pushes) for c in view.columns]
    t = time.perf_counter()
    plain = await wm.acompare(PROMPT, MODELS, progress=False)
    row['acompare'] = time.perf_counter() - t
    assert list(plain['text']) == list(df['text'])
    results.append(row)
print(json.dumps(results))
"""


def _serve(rate: float) -> tuple[subprocess.Popen, str]:
    return socket_server.start(SERVER, str(rate))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=100.0, help="tokens a second per stream")
    ap.add_argument("--lengths", default="200,300,400", help="tokens of each of the streams")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    models = [f"bench/{int(n)}" for n in args.lengths.split(",")]
    server, url = _serve(args.rate)
    try:
        runs = kernel_runs(KERNEL_CODE.format(url=url, models=models, repeat=args.repeat))
    finally:
        server.terminate()
        server.wait(10)

    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    slowest = max(med(m) for m in models)
    view, plain = med("view"), med("acompare")
    print(f"{len(models)} streams at {args.rate:g} tokens/s ({args.lengths} tokens), median of {len(runs)} runs")
    for m in models:
        print(f"  alone {m:12s} {med(m):7.3f} s")
    print(f"  CompareView   {view:7.3f} s   {view / slowest:.2f}x the slowest alone   (target <= {TARGET_RATIO}x)")
    print(f"  wm.acompare   {plain:7.3f} s   {plain / slowest:.2f}x the slowest alone")
    print(f"  sum alone     {sum(med(m) for m in models):7.3f} s   (what a sequential compare would take)")
    for r in runs:
        rates = ", ".join(
            f"{u} ({u / r['view']:.1f}/s, most in 1 s {b})" for u, b in zip(r["updates"], r["busiest"], strict=True)
        )
        print(f"  run {r['view']:.3f} s, redraws per column: {rates}   (target <= {TARGET_UPDATES} in any 1 s)")


if __name__ == "__main__":
    main()
