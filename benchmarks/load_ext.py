"""How much ``%load_ext wcode_magic`` adds to a bare IPython start (target: at most 0.15 s).

Each measurement is a fresh ``ipython -c`` process, so nothing is cached in memory; the median of several runs
of each variant is compared. Prints the load cost and its ratio to the target (a measurement, not a verdict).

    .venv/bin/python benchmarks/load_ext.py [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

IPYTHON = Path(sys.executable).with_name("ipython")
TARGET_S = 0.15


def once(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([str(IPYTHON), "--no-banner", "--quick", "-c", code], check=True, capture_output=True)
    return time.perf_counter() - start


def median(code: str, runs: int) -> float:
    return statistics.median(once(code) for _ in range(runs))


def main(runs: int = 7) -> float:
    once("pass")  # warm the disk cache
    bare = median("pass", runs)
    loaded = median("%load_ext wcode_magic", runs)
    cost = loaded - bare
    print(f"bare IPython {bare:.3f} s, with %load_ext wcode_magic {loaded:.3f} s: load cost {cost:.3f} s")
    print(f"ratio to the {TARGET_S} s target: {max(cost, 0.0) / TARGET_S:.2f} (a small negative cost is noise)")
    return cost


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--runs", type=int, default=7, help="fresh starts per variant (the median is taken)")
    main(ap.parse_args().runs)
