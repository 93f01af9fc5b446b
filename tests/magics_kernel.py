"""A real IPython kernel for the magics tests, driven through jupyter_client like a front-end would.

``Kernel.run(code)`` executes one cell and returns everything the front-end received for it (streams, display
data and its in-place updates, the result, the error, the reply's payload), so tests can check what a user would
see, interrupt the kernel mid-stream, answer a getpass prompt, and scan every byte of output for the key.
"""

from __future__ import annotations

import json
import os
import queue
import time
from dataclasses import dataclass, field
from typing import Any

FAKE_KEY = "sk-test-SECRET123-do-not-leak-0123456789"


@dataclass
class CellRun:
    messages: list[dict[str, Any]] = field(default_factory=list)  # every iopub content for this cell
    status: str = ""
    reply: dict[str, Any] = field(default_factory=dict)

    def of(self, *types: str) -> list[dict[str, Any]]:
        return [m["content"] for m in self.messages if m["msg_type"] in types]

    @property
    def stdout(self) -> str:
        return "".join(c["text"] for c in self.of("stream") if c["name"] == "stdout")

    @property
    def stderr(self) -> str:
        return "".join(c["text"] for c in self.of("stream") if c["name"] == "stderr")

    @property
    def result(self) -> dict[str, Any] | None:
        results = self.of("execute_result")
        return results[0]["data"] if results else None

    @property
    def error(self) -> dict[str, Any] | None:
        errors = self.of("error")
        return errors[0] if errors else None

    @property
    def displays(self) -> list[dict[str, Any]]:
        """Display data and updates, in arrival order."""
        return [c["data"] for c in self.of("display_data", "update_display_data")]

    @property
    def last_display(self) -> dict[str, Any] | None:
        shown = self.displays
        return shown[-1] if shown else None

    def text(self) -> str:
        """Every message of the cell as JSON: what a key scan must search."""
        return json.dumps(self.messages) + json.dumps(self.reply)


class Kernel:
    """One python3 kernel with an isolated config/data dir and the local server's test mode on."""

    def __init__(self, tmp: str, extra_env: dict[str, str] | None = None) -> None:
        from jupyter_client import KernelManager

        env = dict(os.environ)
        env.update(
            WCODE_CONFIG_DIR=os.path.join(tmp, "config"),
            WCODE_DATA_DIR=os.path.join(tmp, "data"),
            WCODE_LOCAL_TEST_MODE="1",
            WCODE_API_KEY=FAKE_KEY,
            PYDEVD_DISABLE_FILE_VALIDATION="1",
        )
        env.pop("WCODE_HISTORY", None)
        env.update(extra_env or {})
        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(env=env)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self.runs: list[CellRun] = []

    def run(
        self,
        code: str,
        *,
        timeout: float = 60,
        interrupt_when: Any = None,
        stdin: str | None = None,
    ) -> CellRun:
        """Execute a cell; ``interrupt_when(run)`` is polled and the kernel interrupted once it is true."""
        msg_id = self.kc.execute(code, allow_stdin=stdin is not None)
        run = CellRun()
        self.runs.append(run)
        deadline = time.monotonic() + timeout
        interrupted = False
        while time.monotonic() < deadline:
            if stdin is not None:
                try:
                    self.kc.get_stdin_msg(timeout=0.01)
                    self.kc.input(stdin)
                    stdin = None
                except queue.Empty:
                    pass
            if interrupt_when is not None and not interrupted and interrupt_when(run):
                self.km.interrupt_kernel()
                interrupted = True
            try:
                msg = self.kc.get_iopub_msg(timeout=0.05)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            if kind == "status":
                if msg["content"]["execution_state"] == "idle":
                    break
                continue
            run.messages.append({"msg_type": kind, "content": msg["content"]})
        else:
            raise TimeoutError(f"cell did not finish in {timeout} s: {code[:80]!r}")
        reply = self.kc.get_shell_msg(timeout=10)
        run.reply = reply["content"]
        run.status = reply["content"]["status"]
        return run

    def ok(self, code: str, **kw: Any) -> CellRun:
        """Run a cell that must succeed; on failure show what it printed."""
        run = self.run(code, **kw)
        assert run.status == "ok", (code, run.error, run.stderr)
        return run

    def value(self, expr: str) -> Any:
        """A JSON-able value computed in the kernel."""
        run = self.ok(f"import json as _j; print(_j.dumps({expr}))")
        return json.loads(run.stdout.strip().splitlines()[-1])

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)
