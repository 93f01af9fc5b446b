"""%%chat --tools in a real kernel against the bundled local model: every step on screen as it happens, the
conversation keeps the tool messages, --confirm asks; and the same in a terminal (plain text)."""

from __future__ import annotations

import io

import pytest
from magics_kernel import Kernel

pytestmark = pytest.mark.timeout(180)

TOOLS = '''
def get_weather(city: str, days: int = 1) -> str:
    """The weather in a city."""
    import time
    time.sleep(0.3)
    return f"sunny in {city} for {days} days"

def divide(a: float, b: float) -> float:
    """Divide a by b."""
    return a / b

def slow_lookup(word: str) -> str:
    """Look a word up, slowly."""
    import time
    time.sleep(30)
    return word

not_a_function = 42
'''


@pytest.fixture(scope="module")
def k(tmp_path_factory):
    kernel = Kernel(str(tmp_path_factory.mktemp("magics-tools")))
    kernel.ok(
        "%load_ext wcode_magic\nimport wcode_magic as wm\nfrom wcode_magic.core.conversations import CONVERSATIONS"
    )
    kernel.ok("%wcode use local")
    kernel.ok(TOOLS)
    yield kernel
    kernel.close()


def test_each_step_shows_as_it_happens_and_the_answer_last(k: Kernel) -> None:
    run = k.ok("%%chat --new --tools get_weather,divide --max-tokens 30\nUse get_weather for 'Paris' over 3 days")
    shown = [d.get("text/markdown", "") for d in run.displays]
    call = 'get_weather({"city": "Paris", "days": 3})'
    # the call shows while its function runs (0.3 s), before any result; then the result; then the answer
    assert any(call in m and "…" in m and "sunny in Paris" not in m for m in shown), shown
    final = run.last_display["text/markdown"]
    assert "Step 1: get_weather" in final and "→ <code>sunny in Paris for 3 days</code>" in final
    assert "<details open>" not in final and final.index("Step 1") < final.index("get_weather returned sunny")
    kinds = k.value("wm.last().turns.kind.tolist()")  # the local model thinks before each step
    assert kinds == ["thinking", "tool_call", "tool_result", "thinking", "answer"]
    roles = k.value("[m['role'] for m in CONVERSATIONS.get().messages]")
    assert roles == ["user", "assistant", "tool", "assistant"]


def test_a_follow_up_chat_continues_the_conversation_with_the_tool_messages(k: Kernel) -> None:
    k.ok("%%chat --max-tokens 10\nAnd tomorrow?")
    sent = k.value("[m['role'] for m in wm.last().request['messages']]")
    assert sent == ["user", "assistant", "tool", "assistant", "user"]


def test_failures_show_as_results_not_crashes(k: Kernel) -> None:
    run = k.ok("%%chat --new --tools divide --max-tokens 20\ndivide 1 by 0")
    final = run.last_display["text/markdown"]
    assert "⚠️ <code>Error: divide raised ZeroDivisionError: float division by zero</code>" in final


CLICKER = """
import asyncio
from wcode_magic.notebook.approve import ButtonConfirm

async def _click(which):
    while not ButtonConfirm.waiting:
        await asyncio.sleep(0.05)
    label, run, decline = ButtonConfirm.waiting[-1].children
    (run if which == "run" else decline).click()

_clicker = asyncio.ensure_future(_click("{which}"))
"""


@pytest.mark.parametrize("which", ["decline", "run"])
def test_confirm_shows_buttons_and_a_declined_call_is_reported_as_declined(k: Kernel, which: str) -> None:
    k.ok(CLICKER.format(which=which))  # a click, as a front-end sends it once the buttons show
    run = k.run("%%chat --new -m local/ngram --tools get_weather --confirm --max-tokens 20\nget_weather 'Oslo'")
    assert run.status == "ok", run.error
    widgets = [d for d in run.displays if "application/vnd.jupyter.widget-view+json" in d]
    assert widgets, "the Run / Decline buttons were shown"
    errors = k.value("wm.last().turns.error.dropna().tolist()")
    if which == "decline":
        assert len(errors) == 1 and errors[0].startswith("Declined: the user did not allow this call.")
        assert "Declined" in run.last_display["text/markdown"]
    else:
        assert errors == [] and k.value("wm.last().text").startswith("get_weather returned sunny in Oslo")
    assert k.value("ButtonConfirm.waiting") == []


def test_the_buttons_answer_in_process_and_say_what_was_decided() -> None:
    import asyncio

    from wcode_magic.core.toolloop import ToolCall
    from wcode_magic.notebook.approve import ButtonConfirm

    confirm = ButtonConfirm()

    async def main(which: int):
        task = asyncio.ensure_future(confirm(ToolCall("c1", "get_weather", '{"city": "Oslo"}', 1)))
        while confirm.pending is None or confirm.pending not in ButtonConfirm.waiting:
            await asyncio.sleep(0.01)
        label, run, decline = confirm.pending.children
        assert label.value == 'Run <code>get_weather({"city": "Oslo"})</code>?'
        (run, decline)[which].click()
        return await task, label.value, run.disabled and decline.disabled

    assert asyncio.run(main(1)) == (False, 'Declined: <code>get_weather({"city": "Oslo"})</code>', True)
    assert asyncio.run(main(0)) == (True, 'Allowed: <code>get_weather({"city": "Oslo"})</code>', True)
    assert ButtonConfirm.waiting == []


def test_an_async_confirm_works_in_both_loops(local_url, session) -> None:
    import asyncio

    import wcode_magic as wm

    async def no(call):
        await asyncio.sleep(0)
        return False

    exec(TOOLS, scope := {})
    kw = {"model": "local/ngram", "base_url": local_url, "tools": [scope["get_weather"]], "confirm": no}
    for r in (wm.chat("get_weather 'Oslo'", **kw), asyncio.run(wm.achat("get_weather 'Oslo'", **kw))):
        assert r.turns.error.dropna().tolist()[0].startswith("Declined")


def _showing(text: str):
    return lambda run: any(text in d.get("text/markdown", "") for d in run.displays)


def test_interrupt_while_a_tool_runs_keeps_the_loop_so_far(k: Kernel) -> None:
    run = k.run(
        "%%chat --new -m local/ngram --tools slow_lookup\nslow_lookup 'otter'",
        interrupt_when=_showing("running slow_lookup"),
        timeout=25,
    )
    assert run.status == "error" and run.error["traceback"][0] == (
        "Stopped in the tool loop, in step 1. The steps so far are kept in the conversation, the history and "
        "wm.last(); `wm.last().turns` lists them."
    )
    assert k.value("wm.last().status") == "stopped"
    assert k.value("wm.last().turns.kind.tolist()") == ["tool_call"]
    assert k.value("[m['role'] for m in CONVERSATIONS.get().messages]") == ["user", "assistant", "tool"]
    assert k.value("CONVERSATIONS.get().messages[-1]['content']") == "Not run: the tool loop was stopped."
    k.ok("%%chat --max-tokens 5\nstill alive?")  # the conversation goes on from there


def test_interrupt_while_the_next_step_streams_keeps_it(k: Kernel) -> None:
    run = k.run(
        "%%chat --new -m local/ngram --tools get_weather --header 'X-Wcode-Fault: stall_after=8,stall_s=60'\n"
        "get_weather 'Kyiv'",
        interrupt_when=_showing("answering"),
        timeout=25,
    )
    assert run.status == "error" and run.error["traceback"][0].startswith("Stopped")
    assert k.value("wm.last().status") == "stopped" and k.value("len(wm.last().steps)") == 2
    kinds = k.value("wm.last().turns.kind.tolist()")
    assert kinds == ["tool_call", "tool_result", "answer"]
    assert k.value("wm.last().text").startswith("get_weather returned sunny in Kyiv")
    roles = k.value("[m['role'] for m in CONVERSATIONS.get().messages]")
    assert roles == ["user", "assistant", "tool", "assistant"]


def test_bad_tool_names_are_one_line_errors(k: Kernel) -> None:
    run = k.run("%%chat --tools nope\nhi")
    assert run.status == "error" and "there is no 'nope' in the notebook" in run.error["traceback"][0]
    run = k.run("%%chat --tools not_a_function\nhi")
    assert "'not_a_function' is a int, not a function" in run.error["traceback"][0]
    run = k.run("%%chat --confirm\nhi")
    assert "--confirm is about running tools" in run.error["traceback"][0]


def test_in_a_terminal_calls_and_results_are_lines(local_url, session, monkeypatch) -> None:
    from IPython.testing.globalipapp import get_ipython

    from wcode_magic.core.conversations import CONVERSATIONS
    from wcode_magic.notebook import live, run

    shell = get_ipython()
    exec(TOOLS, shell.user_ns)
    session.base_url, session.model = local_url, "local/ngram"
    out = io.StringIO()
    monkeypatch.setattr(live.sys, "stdout", out)  # the terminal view writes to sys.stdout; no network is touched
    CONVERSATIONS.reset("terminal-tools")
    run.cell_sync(shell, "chat", "--name terminal-tools --tools get_weather --max-tokens 20", "get_weather 'Rome' 2")
    text = out.getvalue()
    assert '[step 1] call get_weather({"city": "Rome", "days": 2})\n[step 1] result: sunny in Rome for 2 days\n' in text
    assert "get_weather returned sunny in Rome for 2 days." in text


def test_the_tools_options_parse_names_and_still_take_json() -> None:
    from wcode_magic.notebook import flags

    opts = flags.parse("--tools get_weather, divide --max-steps 3 --confirm".replace(", ", ","))
    assert (opts.tool_names, opts.max_steps, opts.confirm) == (["get_weather", "divide"], 3, True)
    assert "tools" not in opts.params
    spec = '[{"type": "function", "function": {"name": "f", "parameters": {}}}]'
    opts = flags.parse(f"--tools '{spec}'")
    assert opts.tool_names == [] and opts.params["tools"][0]["function"]["name"] == "f"
    for line, message in (
        ("--tools 'a b'", "takes the names of functions"),
        ("--tools f --max-steps 0", "--max-steps takes an integer >= 1"),
        ("--max-steps 2", "--max-steps is about running tools"),
    ):
        with pytest.raises(flags.FlagError, match=message):
            flags.parse(line)
