"""The same magics in a plain terminal IPython: loaded from the config, plain text streamed to stdout, Ctrl-C."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pexpect
import pytest

pytestmark = pytest.mark.timeout(60)
IPYTHON = str(Path(sys.executable).with_name("ipython"))


@pytest.fixture
def env(tmp_path):
    return {
        **os.environ,
        "WCODE_CONFIG_DIR": str(tmp_path / "config"),
        "WCODE_DATA_DIR": str(tmp_path / "data"),
        "WCODE_LOCAL_TEST_MODE": "1",
        "TERM": "dumb",
    }


def test_streams_plain_text_from_config_extension(env) -> None:
    # loaded via c.InteractiveShellApp.extensions; each run_cell is a top-level terminal cell
    code = (
        "ip = get_ipython()\n"
        "ip.run_cell('%wcode use local')\n"
        "ip.run_cell('%%chat --seed 4 --max-tokens 30 -o r;\\nTell me about rivers')\n"
        "print('ANSWER<<' + r.text + '>>')\n"
        "print('REASONING<<' + r.reasoning + '>>')\n"
        "ip.run_cell('%%chat --max-tokens 5;\\nmore')\n"
        "print('TURNS', len(r.request['messages']), len(__import__('wcode_magic').last().request['messages']))\n"
    )
    import subprocess

    out = subprocess.run(
        [IPYTHON, "--no-banner", "--colors=nocolor", "--InteractiveShellApp.extensions=['wcode_magic']", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    stdout = out.stdout
    answer = stdout.split("ANSWER<<", 1)[1].split(">>", 1)[0]
    reasoning = stdout.split("REASONING<<", 1)[1].split(">>", 1)[0]
    streamed = stdout.split("ANSWER<<", 1)[0]
    assert answer and reasoning
    assert f"[thinking]\n{reasoning}\n[answer]\n{answer}\n" in streamed  # plain text, thinking then answer
    assert "local/ngram-thinking · tokens" in streamed  # the footer
    assert "<details" not in stdout and "\033[" not in stdout  # no HTML, no colour when not a tty
    assert "TURNS 1 3" in stdout  # the second %%chat continued the conversation


def _interactive(env) -> pexpect.spawn:
    """An interactive terminal IPython with the extension loaded from its config, as a user would start it."""
    return pexpect.spawn(
        IPYTHON,
        ["--no-banner", "--simple-prompt", "--colors=nocolor", "--InteractiveShellApp.extensions=['wcode_magic']"],
        env=env,
        encoding="utf-8",
        timeout=30,
    )


def test_ctrl_c_stops_the_stream_and_keeps_the_partial(env) -> None:
    child = _interactive(env)
    try:
        child.expect(r"In \[1\]: ")
        child.sendline("%wcode use local")
        child.expect(r"In \[2\]: ")
        child.sendline("%wcode --max-tokens 3000 --header 'X-Wcode-Fault: stall_after=10,stall_s=60' -- a long story")
        child.expect(r"\[answer\]\r?\n")  # the answer is streaming, then the server stalls
        child.sendintr()
        child.expect(r"Stopped\. The partial answer \((\d+) characters\)")
        kept = int(child.match.group(1))
        child.expect(r"In \[\d+\]: ")
        child.sendline("import wcode_magic as wm; print('STATUS', wm.last().status, len(wm.last().text))")
        child.expect(r"STATUS (\w+) (\d+)")
        assert child.match.group(1) == "stopped"
        assert int(child.match.group(2)) == kept > 0
        child.expect(r"In \[\d+\]: ")
        child.sendline("print('ROWS', list(wm.history()['status']))")
        child.expect(r"ROWS \[([^\]]*)\]")
        assert child.match.group(1) == "'stopped'"
    finally:
        child.sendeof()
        child.close(force=True)


def test_a_call_over_the_budget_asks_at_the_terminal_prompt(env) -> None:
    from priced_server import PricedServer

    server = PricedServer()
    child = _interactive(env)
    try:
        child.expect(r"In \[1\]: ")
        child.sendline(f"import wcode_magic as wm; wm.configure(base_url={server.base_url!r}, budget=0.0001)")
        child.expect(r"In \[2\]: ")
        call = "r = wm.chat('hi', model='r1', max_tokens=2000); print('COST', r.cost > 0)"
        child.sendline(call)
        child.expect(r"budget is left.*Send anyway\? \[y/N\] ")
        child.sendline("n")
        child.expect("Not sent: you declined")
        assert server.count == 0  # nothing went out while it asked, nor after the no
        child.expect(r"In \[\d+\]: ")
        child.sendline(call)
        child.expect(r"\[y/N\] ")
        child.sendline("y")
        child.expect("COST True")
        assert server.count == 1 and server.models == ["deepseek-r1"]
    finally:
        child.sendeof()
        child.close(force=True)
        server.stop()
