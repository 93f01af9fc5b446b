"""Run a benchmark's timing code in a real kernel (nbclient) and read back the JSON line it prints last.

Why a kernel: what the panel and ``%%compare`` cost is only real with ipykernel's event loop and comm messages
behind the widgets; the timing code prints its runs as one JSON list on its last line of stdout.
"""

from __future__ import annotations

import json
from typing import Any

import nbformat
from nbclient import NotebookClient


def kernel_runs(code: str) -> list[dict[str, Any]]:
    """Execute ``code`` as one notebook cell and return the runs it printed (its last stdout line, JSON)."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    NotebookClient(nb, timeout=600, kernel_name="python3").execute()
    stream = [o for o in nb.cells[0].outputs if o.get("name") == "stdout"]
    return json.loads(stream[-1]["text"].strip().splitlines()[-1])
