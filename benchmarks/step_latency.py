"""How long the step widget takes from a click on a candidate to the next token's bars (issue 15's targets:
150 ms on the n-gram model, 400 ms on the 270M transformer, 2 cores).

The click runs the button's handler as the kernel would (take the token, ask the server for the next candidates,
redraw); the median over a walk of clicks is printed with its ratio to the target (a measurement, not a verdict).
The transformer is measured when the optional extra is installed.

    .venv/bin/python benchmarks/step_latency.py [--clicks 15]
"""

from __future__ import annotations

import argparse
import statistics
import time

import wcode_magic as wm
from wcode_magic.local import llama

PROMPT = "The capital of France is"


def walk(model: str, clicks: int) -> float:
    w = wm.step(PROMPT, model=model, seed=1)
    times = []
    for i in range(clicks):
        start = time.perf_counter()
        w.candidate_buttons[i % 3].click()  # take a token: the handler fetches and draws the next bars
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clicks", type=int, default=15)
    args = parser.parse_args()
    targets = [("local/ngram", 0.150)]
    if llama.missing() is None:
        targets.append((llama.MODEL_ID, 0.400))
    else:
        print(f"transformer not measured: {llama.missing()}")
    for model, target in targets:
        median = walk(model, args.clicks)
        print(f"{model}: click to bars {median * 1000:.0f} ms (median of {args.clicks}), {median / target:.2f}x target")


if __name__ == "__main__":
    main()
