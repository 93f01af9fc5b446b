"""How close does wm.batch come to ideal concurrency, and to asyncio.gather over the openai SDK?

The bundled local model runs as a subprocess (``wcode-magic serve --test-mode``, so it does not share our GIL)
and every request asks, through the ``X-Wcode-Fault: delay_ms=200`` header, to wait 200 ms before answering.
200 prompts at concurrency 32 would ideally take 200 x 0.2 / 32 = 1.25 s. In one run we time:
  (a) wm.batch(prompts, concurrency=32) (streams, Responses, history rows, progress bar off),
  (b) asyncio.gather over openai.AsyncOpenAI with an asyncio.Semaphore(32), reading the same streams.
Targets (issue 5): (a) within 1.5x of the ideal, and no slower than (b).

    python benchmarks/batch_throughput.py [--prompts 200] [--concurrency 32] [--delay-ms 200] [--repeat 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time

# keep the benchmark's history rows out of the user's own history
os.environ.setdefault("WCODE_DATA_DIR", tempfile.mkdtemp(prefix="wcode-bench-data-"))
os.environ.setdefault("WCODE_CONFIG_DIR", tempfile.mkdtemp(prefix="wcode-bench-config-"))

MODEL = "local/ngram"
MAX_TOKENS = 8


def start_server() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "wcode_magic.cli", "serve", "--port", "0", "--test-mode"],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    url = next((w for w in line.split() if w.startswith("http://")), None)
    if url is None:
        proc.kill()
        raise SystemExit(f"the local server did not start: {line!r}")
    return proc, url


def run_wm(url: str, prompts: list[str], concurrency: int, headers: dict[str, str]) -> float:
    import wcode_magic as wm

    t0 = time.perf_counter()
    df = wm.batch(
        prompts,
        concurrency=concurrency,
        model=MODEL,
        base_url=url,
        headers=headers,
        max_tokens=MAX_TOKENS,
        progress=False,
    )
    elapsed = time.perf_counter() - t0
    assert df["complete"].all(), df["error"].dropna().head()
    return elapsed


def run_openai(url: str, prompts: list[str], concurrency: int, headers: dict[str, str]) -> float:
    import openai

    async def main() -> float:
        client = openai.AsyncOpenAI(base_url=url, api_key="local", max_retries=0)
        gate = asyncio.Semaphore(concurrency)

        async def one(prompt: str) -> str:
            async with gate:
                stream = await client.chat.completions.create(
                    model=MODEL,
                    messages=[{"role": "user", "content": prompt}],
                    max_tokens=MAX_TOKENS,
                    stream=True,
                    stream_options={"include_usage": True},
                    extra_headers=headers,
                )
                parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
                return "".join(parts)

        await one("warm up")
        t0 = time.perf_counter()
        texts = await asyncio.gather(*(one(p) for p in prompts))
        elapsed = time.perf_counter() - t0
        assert len(texts) == len(prompts)
        await client.close()
        return elapsed

    return asyncio.run(main())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--delay-ms", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()

    proc, url = start_server()
    try:
        import wcode_magic as wm

        headers = {"X-Wcode-Fault": f"delay_ms={args.delay_ms}"}
        prompts = [f"Tell me about the sea, take {i}" for i in range(args.prompts)]
        wm.batch(["warm up"], model=MODEL, base_url=url, max_tokens=2, progress=False)  # imports, connection
        ideal = args.prompts * args.delay_ms / 1000 / args.concurrency
        ours, theirs = [], []
        for _ in range(args.repeat):
            ours.append(run_wm(url, prompts, args.concurrency, headers))
            theirs.append(run_openai(url, prompts, args.concurrency, headers))
        best_ours, best_theirs = min(ours), min(theirs)
        print(f"{args.prompts} prompts, {args.delay_ms} ms each, concurrency {args.concurrency}: ideal {ideal:.3f} s")
        print(f"wm.batch:              {best_ours:.3f} s   ratio to ideal {best_ours / ideal:.2f} (target <= 1.5)")
        print(f"openai + gather:       {best_theirs:.3f} s   ratio to ideal {best_theirs / ideal:.2f}")
        print(f"wm.batch / openai:     {best_ours / best_theirs:.2f} (target <= 1.0)")
        print(f"(all runs, wm: {', '.join(f'{t:.3f}' for t in ours)}; openai: {', '.join(f'{t:.3f}' for t in theirs)})")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
