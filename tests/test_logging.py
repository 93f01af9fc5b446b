"""The "wcode_magic" logger: retries, Retry-After waits, drains, routing decisions and history failures leave a
trace at info/debug level, nothing is printed until the user turns logging on, and the key is never in a record.
Calls go over HTTP to the bundled local model with injected faults."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time

import pytest

import wcode_magic as wm

KEY = "sk-wcode-logging-test-0123456789abcdef"


def fault(spec: str) -> dict[str, str]:
    return {"X-Wcode-Fault": spec, "X-Wcode-Fault-Key": f"{spec}-{time.monotonic_ns()}"}


@pytest.fixture
def logs(caplog, session):
    wm.configure(max_retries=2, retry_cap_s=1.0)
    caplog.set_level(logging.DEBUG, logger="wcode_magic")
    return caplog


def messages(caplog, level: int | None = None, logger: str = "wcode_magic") -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name.startswith(logger) and (level is None or r.levelno == level)
    ]


@pytest.mark.parametrize("use_async", [False, True])
def test_retries_and_retry_after_waits_are_logged(logs, local_url, use_async) -> None:
    kw = dict(model="local/ngram", base_url=local_url, api_key=KEY, max_tokens=4)
    if use_async:
        import asyncio

        asyncio.run(wm.achat("hi", headers=fault("status=503,times=1"), **kw))
        asyncio.run(wm.achat("hi", headers=fault("status=429,retry_after=0.2,times=1"), **kw))
    else:
        wm.chat("hi", headers=fault("status=503,times=1"), **kw)
        wm.chat("hi", headers=fault("status=429,retry_after=0.2,times=1"), **kw)
    info = messages(logs, logging.INFO, "wcode_magic.client")
    assert f"{local_url}: HTTP 503; retry 1 of 2 in" in info[0]
    assert info[1].startswith(f"{local_url}: HTTP 429; retry 1 of 2 in 0.20 s")
    assert info[1].endswith("(Retry-After asked 0.2 s, cap 1 s)")
    assert any(m.startswith("drained the body after [DONE]") for m in messages(logs, logging.DEBUG))
    assert all(KEY not in m and KEY[-8:] not in m for m in messages(logs))


def test_giving_up_is_logged(logs, local_url) -> None:
    with pytest.raises(wm.ServerError):
        wm.chat("hi", model="local/ngram", base_url=local_url, max_tokens=4, headers=fault("status=500"))
    assert messages(logs, logging.INFO)[-1] == f"{local_url}: HTTP 500 after 2 retries; giving up"


def test_routing_decisions_are_logged(logs, local_url) -> None:
    wm.configure(base_url="https://example.invalid/v1")  # a server off this machine: local/* cannot go there
    r = wm.chat("hi", model="local/ngram", max_tokens=3)
    assert r.complete
    assert messages(logs, logging.INFO)[-1] == (
        f"routing: local/ngram is a bundled local model; sent to {r.base_url}, not the session's "
        "https://example.invalid/v1"
    )


def test_history_failures_are_logged(logs, tmp_path, monkeypatch, local_url) -> None:
    from wcode_magic.analysis import history

    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("WCODE_DATA_DIR", str(blocker / "sub"))
    history._WRITER.warned.clear()
    with pytest.warns(wm.WcodeWarning):
        wm.chat("hi", model="local/ngram", base_url=local_url, max_tokens=3)
    wm.chat("hi", model="local/ngram", base_url=local_url, max_tokens=3)
    failures = [r for r in logs.records if r.name == "wcode_magic.history"]
    assert [r.levelname for r in failures] == ["WARNING", "DEBUG"]
    assert all("Could not write the history" in r.getMessage() for r in failures)


def test_silent_until_logging_is_turned_on(local_url, tmp_path) -> None:
    """No handler configured: a retry and a history failure print no log line (the warning is a warning)."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    script = textwrap.dedent(
        f"""
        import warnings
        warnings.simplefilter("ignore")
        import wcode_magic as wm
        wm.configure(max_retries=1, retry_cap_s=0)
        wm.chat("hi", model="local/ngram", base_url={local_url!r}, max_tokens=3,
                headers={fault("status=503,times=1")!r})
        print("answered")
        """
    )
    env = {**os.environ, "WCODE_DATA_DIR": str(blocker / "sub")}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("answered\n", "")
