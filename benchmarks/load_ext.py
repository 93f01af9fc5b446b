"""How much ``%load_ext wcode_magic`` adds to a bare IPython start (target: at most 0.15 s).

Each measurement is a fresh ``ipython -c`` process, so nothing is cached in memory; the median of several runs
of each variant is compared. Run: ``.venv/bin/python benchmarks/load_ext.py``.
"""

from __future__ import annotations

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
    print("OK" if cost <= TARGET_S else f"SLOWER than the {TARGET_S} s target")
    return cost


if __name__ == "__main__":
    main()
