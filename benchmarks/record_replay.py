"""Record, replay and cache (issue 12): three measured ratios, in one run, against the bundled local server.

(a) replay: a recorded answer of ~20,000 tokens with 5 top_logprobs, replayed at instant pace, against reading
    the same answer live from the local server (target: at most 1.2x the live time; loading the file is timed
    apart, as wm.replay(path) does it once for every request);
(b) lookup: one cache lookup (``history.cached``) in a history of 100,000 exchanges (target: at most 5 ms);
(c) sweep: a 1,000-run wm.batch answered entirely from the cache (target: at most 2 s).

  python benchmarks/record_replay.py [--tokens 20000] [--rows 100000] [--runs 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

TARGETS = {"replay_vs_live": 1.2, "lookup_ms": 5.0, "cached_sweep_s": 2.0}


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def replay_ratio(wm, url: str, tokens: int, repeat: int, work: Path) -> dict[str, float]:
    # ignore_eos: the local model goes on past its natural end; max_tokens stops it at `tokens`
    kw = {
        "extra_body": {"ignore_eos": True},
        "model": "local/ngram",
        "base_url": url,
        "max_tokens": tokens,
        "logprobs": True,
        "top_logprobs": 5,
        "seed": 1,
    }
    path = work / "long.jsonl"
    with wm.record(path):
        live_response = wm.chat("Tell me everything about rivers.", **kw)
    n = live_response.usage.completion_tokens or len(live_response.logprobs)
    live = best(lambda: wm.chat("Tell me everything about rivers.", **kw), repeat)
    t0 = time.perf_counter()
    wm.replay(path, strict=True)
    load = time.perf_counter() - t0

    def replayed() -> None:
        wm.replay(path, strict=True)  # every replayed answer is used once: load again (timed apart above)

    times = []
    for _ in range(repeat):
        replayed()
        t0 = time.perf_counter()
        r = wm.chat("Tell me everything about rivers.", **kw)
        times.append(time.perf_counter() - t0)
        assert r.replayed and r.text == live_response.text
    wm.replay(None)
    replay = min(times)
    print(f"(a) {n} tokens, 5 top_logprobs: live {live:.3f} s, replay {replay:.3f} s (+ loading the file {load:.3f} s)")
    return {"replay_vs_live": replay / live}


def lookup_ms(wm, history, rows: int, work: Path) -> dict[str, float]:
    from wcode_magic.core.served import request_key

    os.environ["WCODE_DATA_DIR"] = str(work / "lookup")
    history._WRITER.close()
    r = wm.chat("What is a river?", model="local/ngram", max_tokens=8, seed=1)  # one real row, and the schema
    history._WRITER.close()
    db = history.db_path()
    conn = sqlite3.connect(db)
    columns = ", ".join(history.ALL_COLUMNS)
    row = conn.execute(f"SELECT {columns} FROM exchanges").fetchone()
    at = history.ALL_COLUMNS.index("request_hash")
    filler = [(*row[:at], request_key({"model": "x", "n": i}), *row[at + 1 :]) for i in range(rows - 1)]
    conn.executemany(f"INSERT INTO exchanges ({columns}) VALUES ({', '.join('?' * len(row))})", filler)
    conn.commit()
    conn.close()
    assert history.cached(r.request) is not None
    times = []
    for _ in range(200):
        t0 = time.perf_counter()
        history.cached(r.request)
        times.append(time.perf_counter() - t0)
    median = statistics.median(times) * 1000
    print(f"(b) a cache lookup in {rows:,} exchanges: median {median:.3f} ms, worst {max(times) * 1000:.3f} ms")
    return {"lookup_ms": median}


def cached_sweep(wm, history, runs: int, work: Path) -> dict[str, float]:
    os.environ["WCODE_DATA_DIR"] = str(work / "sweep")
    history._WRITER.close()
    prompts = [f"Question number {i}: what is a river?" for i in range(runs)]
    kw = {"model": "local/ngram", "max_tokens": 8, "seed": 2, "progress": False, "cache": True, "concurrency": 16}
    t0 = time.perf_counter()
    first = wm.batch(prompts, **kw)
    sent = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = wm.batch(prompts, **kw)
    served = time.perf_counter() - t0
    assert all(r.cached for r in again["response"]) and list(again["text"]) == list(first["text"])
    print(f"(c) a {runs}-run batch: sent {sent:.2f} s, answered from the cache {served:.2f} s")
    return {"cached_sweep_s": served}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=20000)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wcode-bench-"))
    os.environ["WCODE_DATA_DIR"] = str(work / "data")
    os.environ.pop("WCODE_API_KEY", None)

    import wcode_magic as wm
    from wcode_magic.analysis import history

    url = wm.use_local()
    results: dict[str, float] = {}
    results.update(replay_ratio(wm, url, args.tokens, args.repeat, work))
    results.update(lookup_ms(wm, history, args.rows, work))
    results.update(cached_sweep(wm, history, args.runs, work))
    print()
    failed = 0
    for name, value in results.items():
        ok = value <= TARGETS[name]
        failed += not ok
        print(f"  {name:16s} {value:8.3f}  target <= {TARGETS[name]:g}  {'ok' if ok else 'MISSED'}")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
