"""Does a schema slow wm.batch down? 200 schema requests at 200 ms each, concurrency 32, against plain batches.

The bundled local model runs as a subprocess (``batch_throughput.start_server``) and every request waits 200 ms
(``X-Wcode-Fault: delay_ms=200``) before answering. 200 prompts at concurrency 32 would ideally take 1.25 s. We time
  (a) wm.batch(prompts) as plain text, and
  (b) wm.batch(prompts, schema="label: positive|negative|mixed, reason: str") (the local model answers JSON, every
      row parsed into columns), and (c) the same with logprobs=True, top_logprobs=5 (adds <field>_prob columns).
Target (issue 13): (b) within 1.5x of the ideal, as plain batches.

    python benchmarks/schema_batch.py [--prompts 200] [--concurrency 32] [--delay-ms 200] [--repeat 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from batch_throughput import MODEL, start_server

SCHEMA = "label: positive|negative|mixed, reason: str"


def run(url: str, prompts: list[str], concurrency: int, headers: dict[str, str], **kw) -> float:
    import wcode_magic as wm

    t0 = time.perf_counter()
    df = wm.batch(prompts, concurrency=concurrency, model=MODEL, base_url=url, headers=headers, progress=False, **kw)
    elapsed = time.perf_counter() - t0
    assert df["complete"].all() and df["error"].isna().all(), df["error"].dropna().head()
    if "schema" in kw:
        assert df["label"].notna().all()
    return elapsed


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
        prompts = [f"The soup was cold but the staff were kind, take {i}" for i in range(args.prompts)]
        wm.batch(["warm up"], model=MODEL, base_url=url, schema=SCHEMA, logprobs=True, progress=False)
        ideal = args.prompts * args.delay_ms / 1000 / args.concurrency
        kinds = {
            "plain (max_tokens=24)": {"max_tokens": 24},
            "schema": {"schema": SCHEMA},
            "schema + logprobs": {"schema": SCHEMA, "logprobs": True, "top_logprobs": 5},
        }
        times: dict[str, list[float]] = {k: [] for k in kinds}
        for _ in range(args.repeat):
            for name, kw in kinds.items():
                times[name].append(run(url, prompts, args.concurrency, headers, **kw))
        print(f"{args.prompts} prompts, {args.delay_ms} ms each, concurrency {args.concurrency}: ideal {ideal:.3f} s")
        for name, ts in times.items():
            best = min(ts)
            target = " (target <= 1.5)" if name == "schema" else ""
            print(f"{name:<24} {best:.3f} s   ratio to ideal {best / ideal:.2f}{target}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
