"""Print pyproject.toml's runtime dependencies pinned at their declared lower bounds, one a line (``pandas==2.0``);
with ``--check``, instead verify that the running interpreter has exactly those versions installed.

Used by ``.ci/min_versions.sh``. A dependency without a ``>=`` lower bound is an error: every one must declare
the oldest version we stand behind.
"""

from __future__ import annotations

import re
import sys
from importlib.metadata import version
from pathlib import Path

import tomllib

_LOWER = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*>=\s*([0-9][0-9A-Za-z.]*)\s*(,.*)?$")


def lower_bounds(pyproject: Path) -> dict[str, str]:
    """Each runtime dependency's name and its declared minimum version."""
    deps = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    bounds = {}
    for dep in deps:
        match = _LOWER.match(dep.split(";")[0])
        if match is None:
            raise SystemExit(f"{dep!r} declares no '>=' lower bound: give it the oldest version that works")
        bounds[match.group(1)] = match.group(3)
    return bounds


def _release(v: str) -> tuple[int, ...]:
    """``2.0`` and ``2.0.0`` are one version."""
    parts = [int(p) for p in re.findall(r"\d+", v.split("+")[0])]
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def main() -> None:
    bounds = lower_bounds(Path(sys.argv[1]))
    if "--check" not in sys.argv:
        print("\n".join(f"{name}=={v}" for name, v in bounds.items()))
        return
    wrong = [f"{n} {version(n)} (declared >={v})" for n, v in bounds.items() if _release(version(n)) != _release(v)]
    if wrong:
        raise SystemExit("not at the declared minimum: " + ", ".join(wrong))
    print(f"all {len(bounds)} runtime dependencies at their declared minimum")


if __name__ == "__main__":
    main()
