"""%%chat and %wcode in a real kernel against the bundled local server: what a notebook user sends and sees.

One kernel for the module (tests run in file order and share its session); every cell's iopub messages are kept
and scanned for the API key at the end, together with the history database.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest
from magics_kernel import FAKE_KEY, Kernel

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def k(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("magics"))
    kernel = Kernel(tmp)
    kernel.tmp = tmp
    kernel.ok(
        "%load_ext wcode_magic\nimport wcode_magic as wm, os\nfrom wcode_magic.core.conversations import CONVERSATIONS"
    )
    kernel.ok(SPY)
    # the key is configured explicitly for the local server, so it is really sent (and must never show)
    kernel.ok("%wcode use local\nwm.configure(api_key=os.environ['WCODE_API_KEY'], max_retries=0)")
    yield kernel
    kernel.close()


# Counts, in the kernel, the requests that carried the key (`key_sent`) and those that did not: the key scan at
# the end means something only if the key really went out. It never stores or prints the key itself.
SPY = """
import httpx as _httpx
key_sent, key_not_sent = [], []
def _spying(send):
    def note(request):
        with_key = request.headers.get('authorization') == 'Bearer ' + os.environ['WCODE_API_KEY']
        (key_sent if with_key else key_not_sent).append(str(request.url))
    async def asend(self, request, **kw):
        note(request)
        return await send(self, request, **kw)
    def ssend(self, request, **kw):
        note(request)
        return send(self, request, **kw)
    return asend if send is _httpx.AsyncClient.send else ssend
_httpx.AsyncClient.send = _spying(_httpx.AsyncClient.send)
_httpx.Client.send = _spying(_httpx.Client.send)
"""


def last_request(k: Kernel) -> dict:
    return k.value("wm.last().request")


def one_line_error(run) -> str:
    """The cell failed with a short message: one traceback line, no Python frames."""
    assert run.status == "error"
    tb = run.error["traceback"]
    assert len(tb) == 1 and "Traceback" not in tb[0] and 'File "' not in tb[0], tb
    return tb[0]


def test_conversation_continues_and_streams_live(k: Kernel) -> None:
    # a 1 s pause before the first answer token, then one in the answer: both phases are on screen for a while
    first = k.ok(
        "%%chat --seed 1 --max-tokens 90 --header 'X-Wcode-Fault: stall_after=0,stall_s=0.5'\nTell me about frogs"
    )
    # The thinking streams in a widget (so a reader's collapse holds); the output is re-sent once per phase, with a
    # Markdown snapshot for front-ends without widgets; it ends as static Markdown, the thinking closed (no reader
    # here to have opened it).
    live = [d for d in first.displays if "application/vnd.jupyter.widget-view+json" in d]
    assert [d["text/plain"].rsplit(" · ", 1)[-1] for d in live] == ["thinking…", "answering…"], live
    assert "<details open>" in live[0]["text/markdown"]
    assert "<details><summary>Thinking" in first.last_display["text/markdown"]
    assert "widget-view" not in str(first.last_display), "the saved notebook keeps static text"
    assert first.result is None and all(first.displays), "the live output ends as the result, never emptied"
    answer = k.value("wm.last().text")
    assert answer and answer in first.last_display["text/markdown"]
    assert "tokens" in first.last_display["text/markdown"]  # footer
    assert k.value("_ is wm.last()"), "the result is still the cell's result: _ and Out hold it"
    k.ok("%%chat --seed 2 --max-tokens 20\nAnd toads?")
    messages = last_request(k)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"] == "Tell me about frogs"
    assert messages[1]["content"] == answer
    assert messages[2]["content"] == "And toads?"


def test_one_output_per_cell_and_earlier_warnings_stay(k: Kernel) -> None:
    run = k.ok("%%chat --name warned -m local/ngram --think --max-tokens 8\nq")
    assert "cannot switch its thinking" in run.stderr, "the warning is shown"
    assert not run.of("clear_output"), "and nothing clears it away"
    shown = run.of("display_data")
    assert len(shown) == 1 and run.result is None, "one output: the live view, which ends as the result"
    ids = {m["transient"]["display_id"] for m in run.of("display_data", "update_display_data")}
    assert len(ids) == 1 and all(run.displays), "every update goes to that output, none empties it"
    assert k.value("wm.last().text") in run.last_display["text/markdown"]


@pytest.mark.parametrize("options", ["", ";", "--format text", "--format code", "--format json"])
def test_an_answer_lost_to_thinking_says_why_in_the_notebook(k: Kernel, options: str) -> None:
    run = k.run(f"%%chat --name lost -m local/ngram-thinking --max-tokens 4 {options}\nExplain rivers")
    if options == "--format json":  # no object to return: the cell fails, saying why
        assert one_line_error(run).startswith("--format json: there is no answer to read: the whole token budget")
    else:
        assert run.status == "ok"
    assert k.value("[wm.last().text, wm.last().finish_reason]") == ["", "length"], "all spent thinking"
    final = run.last_display
    mimes = {"": ["text/markdown"], "--format text": ["text/plain"]}.get(options, ["text/markdown", "text/plain"])
    for mime in mimes:
        assert "the whole token budget (max_tokens=4) went to the thinking" in final[mime], mime
        assert "raise max_tokens, lower the effort, or switch thinking off" in final[mime]
        assert "(no answer text)" not in final[mime]


def test_long_answer_few_updates_exact_final_text(k: Kernel) -> None:
    run = k.ok("%%chat --name long --max-tokens 3000 --extra-body '{\"ignore_eos\": true}' -o long;\nA long one")
    info = k.value("[long.usage.completion_tokens, long.latency_s, long.text]")
    tokens, latency, text = info
    assert tokens == 3000  # thinking and answer together
    assert len(run.displays) <= 15 * latency + 3  # throttled: ~15 renders a second at most, plus first and last
    assert run.last_display["text/plain"].split("\n[answer]\n", 1)[1].startswith(text)  # final render is exact
    assert text in run.last_display["text/markdown"]


def test_new_name_and_system(k: Kernel) -> None:
    k.ok('%%chat --name side --system "Be brief." --max-tokens 60\nfirst on the side')
    messages = last_request(k)["messages"]
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == "Be brief."
    k.ok("%%chat --name side --max-tokens 60\nsecond on the side")
    assert [m["role"] for m in last_request(k)["messages"]] == ["system", "user", "assistant", "user"]
    k.ok("%%chat --max-tokens 60\nback in the default one")
    assert len(last_request(k)["messages"]) == 5  # two earlier exchanges + this turn; the side one is separate
    k.ok("%%chat --new --max-tokens 5\nfresh start")
    assert [m["content"] for m in last_request(k)["messages"]] == ["fresh start"]


def test_request_parameters_from_flags(k: Kernel) -> None:
    k.ok(
        '%%chat --new -m local/ngram --temperature 0.2 --top-k 20 --max-tokens 50 --seed 7 --stop "###" '
        '--logprobs 5 --logit-bias \'{"123": -100, "7": 5}\' --frequency-penalty -0.5 --no-stream\nhello'
    )
    req = last_request(k)
    assert req["model"] == "local/ngram"
    for name, value in {
        "temperature": 0.2,
        "top_k": 20,
        "max_tokens": 50,
        "seed": 7,
        "stop": "###",
        "logprobs": True,
        "top_logprobs": 5,
        "logit_bias": {"123": -100, "7": 5},
        "frequency_penalty": -0.5,
        "stream": False,
    }.items():
        assert req[name] == value, name
    assert k.value("len(wm.last().logprobs) > 0")


def test_thinking_switches(k: Kernel) -> None:
    k.ok("%%chat --new --think --effort high --max-tokens 5\nq")
    assert last_request(k)["reasoning"] == {"enabled": True, "effort": "high"}
    k.ok("%%chat --no-think --max-tokens 5\nq")
    assert last_request(k)["reasoning"] == {"enabled": False}
    assert k.value("wm.last().reasoning") == ""


def test_interpolation(k: Kernel) -> None:
    k.ok("x = 42\nclass C: pass\nobj = C(); obj.attr = 'attr-value'")
    cell = 'Value {x}, {obj.attr}, {{x}}, {missing}\ndef f():\n    return {}\npayload = {"a b": {"c": 1}}'
    k.ok(f"%%chat --new --max-tokens 5\n{cell}")
    sent = last_request(k)["messages"][-1]["content"]
    assert sent == 'Value 42, attr-value, {x}, {missing}\ndef f():\n    return {}\npayload = {"a b": {"c": 1}}'
    k.ok("%%chat --new --no-interpolate --max-tokens 5\nValue {x}")
    assert last_request(k)["messages"][-1]["content"] == "Value {x}"
    k.ok('%%chat --new --stop \'["a b", "###"]\' --max-tokens 5\nq')
    assert last_request(k)["stop"] == ["a b", "###"]


def test_out_semicolon_and_formats(k: Kernel) -> None:
    quiet = k.ok("%%chat --new -o r --max-tokens 8;\nq")
    assert quiet.result is None and quiet.last_display.get("text/plain"), "the live view stays as the answer"
    assert k.value("r is wm.last() and r.status == 'done'")
    text = k.ok("%%chat -m local/ngram --format text --max-tokens 8\nq")
    assert text.result is None and text.last_display == {"text/plain": k.value("wm.last().text")}
    assert all(set(d) <= {"text/plain"} for d in text.displays)
    code = k.ok("%%chat --format code --max-tokens 60\nwrite code")
    answer = k.value("wm.last().text").strip()
    assert answer
    assert code.last_display == {"text/plain": answer, "text/markdown": f"```\n{answer}\n```"}
    assert k.value("[type(_).__name__, _ == wm.last().text.strip()]") == ["CodeText", True]  # a str, exec-able
    assert not [p for p in code.reply["payload"] if p.get("source") == "set_next_input"], "no new cell without --insert"
    code = k.ok("%%chat --format code --insert --max-tokens 60\nwrite code")
    answer = k.value("wm.last().text")
    assert answer.strip() and code.last_display["text/markdown"].startswith("```")
    payloads = [p for p in code.reply["payload"] if p.get("source") == "set_next_input"]
    assert payloads and payloads[0]["text"] == answer.strip()
    code = k.ok("%%chat --insert --max-tokens 60\nwrite code")  # --insert alone means --format code
    assert [p["text"] for p in code.reply["payload"] if p.get("source") == "set_next_input"] == [
        k.value("wm.last().text").strip()
    ]
    bad_json = k.run("%%chat -m local/ngram --format json --max-tokens 8\nq")
    assert "--format json: the answer is not valid JSON" in one_line_error(bad_json)


def test_one_shot_wcode(k: Kernel) -> None:
    before = k.value("len(CONVERSATIONS.get().messages)")
    k.ok("%wcode what is {x}?")
    assert last_request(k)["messages"] == [{"role": "user", "content": "what is 42?"}]
    k.ok("%wcode -m local/ngram --seed 3 --max-tokens 4 -- say {x}")
    req = last_request(k)
    assert (req["model"], req["seed"], req["messages"][-1]["content"]) == ("local/ngram", 3, "say 42")
    k.ok("%%wcode --max-tokens 4\ncell prompt")
    assert len(last_request(k)["messages"]) == 1
    assert k.value("len(CONVERSATIONS.get().messages)") == before


def test_options_then_a_prompt_need_no_separator(k: Kernel) -> None:
    k.ok("%wcode --max-tokens 5 say hi")
    req = last_request(k)
    assert (req["max_tokens"], req["messages"]) == (5, [{"role": "user", "content": "say hi"}])
    k.ok("%wcode -m local/ngram --seed 2 --max-tokens 4 use the force")  # a subcommand's word after options
    req = last_request(k)
    assert (req["model"], req["seed"], req["messages"][-1]["content"]) == ("local/ngram", 2, "use the force")
    for line, expected in [
        ("--tempreature 1 hi", "%wcode: Unknown option --tempreature. Did you mean --temperature?"),
        ("--max-tokens 5", "%wcode: the prompt is empty"),
    ]:
        run = k.run(f"%wcode {line}")
        assert one_line_error(run).startswith(expected)
        assert len(run.of("error")) == 1 and not run.stdout and not run.stderr, "said once"


def test_a_prompt_starting_with_a_subcommand_word(k: Kernel) -> None:
    model = k.value("wm.SESSION.model")
    run = k.run("%wcode help me write a poem")
    assert one_line_error(run) == (
        "%wcode help takes no arguments. To send it as a prompt instead: %wcode -- help me write a poem"
    )
    assert run.stdout == "", "no help printed"
    assert "To send it as a prompt instead: %wcode -- use the force" in one_line_error(k.run("%wcode use the force"))
    assert k.value("wm.SESSION.model") == model, "no model called 'the'"
    k.ok("%wcode -- help me write a poem")
    assert last_request(k)["messages"] == [{"role": "user", "content": "help me write a poem"}]
    k.ok("%wcode -- use the force;")
    assert last_request(k)["messages"][-1]["content"] == "use the force"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("--temperature 5", "%%chat: temperature=5.0 is not allowed: temperature takes a number from 0 to 2."),
        ("--tempreature 1", "%%chat: Unknown option --tempreature. Did you mean --temperature?"),
        ("--logprobs 50", "%%chat: top_logprobs=50 is not allowed: top_logprobs takes an integer from 0 to 20."),
        ("--effort extreme", "%%chat: --effort 'extreme' is not allowed: --effort takes low | medium | high."),
    ],
)
def test_bad_options_are_one_line(k: Kernel, line: str, expected: str) -> None:
    assert one_line_error(k.run(f"%%chat {line}\nq")) == expected


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("status=401", "AuthenticationError: HTTP 401: the API key was refused or is missing."),
        ("status=402", "InsufficientCreditError: HTTP 402: the account is out of credit."),
        ("status=429", "RateLimitError: HTTP 429: rate limited"),
        ("status=503", "ServerError: HTTP 503: the server had trouble"),
    ],
)
def test_http_errors_say_what_to_do(k: Kernel, fault: str, expected: str) -> None:
    run = k.run(f"%%chat --header 'X-Wcode-Fault: {fault}'\nq")
    message = one_line_error(run)
    assert message.startswith(expected)
    if fault == "status=401":
        assert "%wcode key" in message and "%wcode use local" in message


def test_broken_stream_keeps_partial(k: Kernel) -> None:
    k.ok("%wcode reset")
    run = k.run("%%chat --max-tokens 200 --header 'X-Wcode-Fault: error_after=5'\nq")
    assert one_line_error(run).startswith("StreamError: The stream broke")
    partial = k.value("wm.last().text")
    assert partial and partial in run.last_display["text/plain"]
    assert "ERROR" in run.last_display["text/plain"]
    assert k.value("CONVERSATIONS.get().messages[-1]['content']") == partial


def test_server_down_and_local_parameter_error(k: Kernel) -> None:
    run = k.run("%%chat --max-tokens 0\nq")
    assert "max_tokens=0 is not allowed" in one_line_error(run)
    k.ok("saved = wm.SESSION.base_url\nwm.configure(base_url='http://127.0.0.1:9/v1')")
    run = k.run("%%chat\nq")
    assert one_line_error(run).startswith("APIConnectionError: Could not reach http://127.0.0.1:9/v1")
    k.ok("wm.configure(base_url=saved)")


def test_interrupt_keeps_partial_answer(k: Kernel) -> None:
    k.ok("%wcode reset")
    rows_before = k.value("len(wm.history())")

    def answering(run) -> bool:
        return any("answering" in d.get("text/plain", "") for d in run.displays)

    run = k.run(
        "%%chat --max-tokens 3000 --header 'X-Wcode-Fault: stall_after=30,stall_s=60'\ntell a long story",
        interrupt_when=answering,
        timeout=30,
    )
    assert one_line_error(run).startswith("Stopped. The partial answer")
    partial = k.value("wm.last().text")
    assert partial and k.value("wm.last().status") == "stopped"
    final = run.last_display["text/plain"]
    assert partial in final and "STOPPED" in final
    assert "<details>" in run.last_display["text/markdown"]
    assert k.value("CONVERSATIONS.get().messages[-1]['content']") == partial
    rows = k.value("wm.history(1)[['status', 'text']].to_dict('records')")
    assert rows == [{"status": "stopped", "text": partial}]
    assert k.value("len(wm.history())") == rows_before + 1
    k.ok("%%chat --max-tokens 5\nstill alive?")  # the kernel and the conversation carry on
    assert [m["role"] for m in last_request(k)["messages"]] == ["user", "assistant", "user"]


def test_interrupt_before_any_answer_says_nothing_was_kept(k: Kernel) -> None:
    turns = k.value("len(CONVERSATIONS.get().messages)")

    def showing(phase: str):
        return lambda run: any(phase in d.get("text/plain", "") for d in run.displays)

    # nothing at all arrives: the server waits a minute before answering
    run = k.run(
        "%%chat -m local/ngram --header 'X-Wcode-Fault: delay_ms=60000'\nq",
        interrupt_when=showing("waiting"),
        timeout=30,
    )
    assert one_line_error(run) == "Stopped before anything arrived; the conversation is unchanged."
    # only thinking arrives: the answer stalls before its first token
    run = k.run(
        "%%chat --header 'X-Wcode-Fault: stall_after=0,stall_s=60'\nq",
        interrupt_when=showing("thinking…"),
        timeout=30,
    )
    thinking = k.value("len(wm.last().reasoning)")
    assert thinking and k.value("wm.last().text") == ""
    assert one_line_error(run) == (
        "Stopped while thinking, before any answer; the conversation is unchanged. "
        f"The thinking so far ({thinking} characters) is in the history and wm.last()."
    )
    assert k.value("len(CONVERSATIONS.get().messages)") == turns
    # a one-off answer has no conversation to keep anything in
    run = k.run(
        "%wcode -m local/ngram --max-tokens 3000 --header 'X-Wcode-Fault: stall_after=20,stall_s=60' -- go on",
        interrupt_when=showing("answering"),
        timeout=30,
    )
    kept = k.value("len(wm.last().text)")
    assert (
        one_line_error(run) == f"Stopped. The partial answer ({kept} characters) is kept in the history and wm.last()."
    )


def test_interrupt_of_top_level_await_stops_within_a_second(k: Kernel) -> None:
    """``await wm.achat(...)`` / ``await wm.acompare(...)`` during a stalled read: the interrupt lands at once (not
    after the gap timeout), achat ends in StoppedError with the partial in wm.last(), acompare returns its table."""
    import time

    stalled = "headers={'X-Wcode-Fault': 'stall_after=20, stall_s=60'}, max_tokens=3000"
    cells = {
        "achat": f"r = await wm.achat('tell a long story', model='local/ngram', {stalled})",
        "acompare": f"df = await wm.acompare('a story', models=['local/ngram'], n=2, progress=False, {stalled})",
    }
    for name, cell in cells.items():
        k.ok("wm.configure(gap_timeout=60)")
        at: list[float] = []

        def after_two_seconds(run, at=at) -> bool:
            if not at:
                at.append(time.monotonic())
            if time.monotonic() - at[0] > 2.0:
                at.append(time.monotonic())
                return True
            return False

        run = k.run(cell, interrupt_when=after_two_seconds, timeout=30)
        assert time.monotonic() - at[-1] < 5.0, name  # stopped in seconds (a loaded machine included), not the 60 s gap
        assert k.value("wm.last().status") == "stopped" and k.value("len(wm.last().text)") > 0, name
        if name == "achat":
            assert run.status == "error" and run.error["ename"] == "StoppedError", run.error
        else:
            assert run.status == "ok", run.error  # the table of what finished (nothing here), flagged interrupted
            assert k.value("df.attrs['interrupted']") is True


def test_subcommands(k: Kernel) -> None:
    models = k.ok("%wcode models")
    assert "deepseek/deepseek-chat-v3.1" in models.result["text/plain"]
    bad = k.run("%wcode set temperature=5 top_k=2")
    assert one_line_error(bad) == "%wcode set: temperature=5.0 is not allowed: temperature takes a number from 0 to 2."
    assert k.value("wm.SESSION.params") == {}, "nothing applied when one value is bad"
    k.ok("%wcode set temperature=0.2 top_k=5 stop='a b'")
    assert k.value("wm.SESSION.params") == {"temperature": 0.2, "top_k": 5, "stop": "a b"}
    k.ok("%%chat --max-tokens 3\nq")
    req = last_request(k)
    assert (req["temperature"], req["top_k"], req["stop"]) == (0.2, 5, "a b")
    k.ok("%wcode unset temperature top_k stop")
    assert k.value("wm.SESSION.params") == {}
    config = k.ok("%wcode config").stdout
    assert "local/ngram-thinking" in config and "history" in config and "…" in config
    usage = k.ok("%wcode usage").result["text/plain"]
    assert "local/ngram-thinking" in usage
    assert "prompt_tokens" in k.ok("%wcode history 3").result["text/plain"]
    help_text = k.ok("%wcode help").stdout
    for flag in ("--top-k", "--logit-bias", "--top-logprobs", "--effort", "models", "panel"):
        assert flag in help_text
    k.ok("%wcode use local-thinking-rc")
    assert k.value("wm.SESSION.model") == "local/ngram-thinking-rc"
    assert "Using wcode.net" in k.ok("%wcode use qwen3").stdout  # a wcode model leaves the local server
    assert k.value("[wm.SESSION.model, wm.SESSION.base_url]") == ["qwen/qwen3-8b", "https://wcode.net/api/gpt/v1"]
    k.ok("%wcode use local")
    k.ok("%wcode set system='Be kind.' model=local/ngram")
    k.ok("%%chat --new --max-tokens 3\nq")
    req = last_request(k)
    assert req["model"] == "local/ngram" and req["messages"][0] == {"role": "system", "content": "Be kind."}
    k.ok("%wcode unset system\n%wcode use local")


def test_wcode_models_leave_the_bundled_local_server(k: Kernel) -> None:
    k.ok("%wcode use local")
    said = k.ok("%wcode use wcode").stdout
    assert said == "Using wcode.net (https://wcode.net/api/gpt/v1), model deepseek/deepseek-chat-v3.1.\n"
    assert k.value("[wm.SESSION.model, wm.SESSION.base_url]") == [
        "deepseek/deepseek-chat-v3.1",
        "https://wcode.net/api/gpt/v1",
    ]
    k.ok("%wcode use local")
    # a wcode model chosen for one cell goes to wcode.net (here a dead port standing in for it), not to the local
    # server, which answered 404
    k.ok("os.environ['WCODE_BASE_URL'] = 'http://127.0.0.1:9/v1'")
    try:
        run = k.run("%%chat -m deepseek-r1 --max-tokens 3\nq")
        assert one_line_error(run).startswith("APIConnectionError: Could not reach http://127.0.0.1:9/v1")
        assert k.value("wm.last().base_url") == "http://127.0.0.1:9/v1"
    finally:
        k.ok("del os.environ['WCODE_BASE_URL']")
    assert k.value("wm.SESSION.model") == "local/ngram-thinking"  # the session stays where it was
    k.ok("%%chat --max-tokens 3\nq")
    assert last_request(k)["model"] == "local/ngram-thinking"


def test_panel_command(k: Kernel) -> None:
    run = k.ok("%wcode panel")
    shown = [*run.displays, run.result or {}]
    assert any("application/vnd.jupyter.widget-view+json" in d for d in shown)


def test_history_off(k: Kernel) -> None:
    before = k.value("len(wm.history())")
    k.ok("%wcode set history=off")
    k.ok("%%chat --max-tokens 3\nnot logged")
    assert k.value("len(wm.history())") == before
    k.ok("%wcode set history=on")
    k.ok("%%chat --max-tokens 60 --logprobs 2\nlogged")
    frame_row = k.value("wm.history(1).iloc[0][['host', 'params', 'messages', 'complete']].to_dict()")
    assert frame_row["host"].startswith("127.0.0.1:")
    assert frame_row["params"]["top_logprobs"] == 2 and frame_row["complete"] is True
    assert frame_row["messages"][-1] == {"role": "user", "content": "logged"}
    assert k.value("len(wm.history(1).iloc[0]['logprobs'])") > 0


def test_key_command_uses_getpass_and_0600(k: Kernel) -> None:
    stored = "sk-typed-in-getpass-0000111122223333"
    run = k.run("%wcode key", stdin=stored)
    assert run.status == "ok" and "Key saved to" in run.stdout
    path = os.path.join(k.tmp, "config", "key")
    assert Path(path).read_text() == stored
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stored not in run.text()
    assert "Removed the stored key" in k.ok("%wcode key --clear").stdout
    assert not os.path.exists(path)


def test_key_never_shown_or_stored(k: Kernel) -> None:
    assert k.value("wm.SESSION.key_for(wm.SESSION.base_url, None).reveal() == os.environ['WCODE_API_KEY']")
    sent = k.value("[u for u in key_sent if u.startswith(wm.SESSION.base_url)]")
    assert len(sent) > 20, "the key was really sent to the local server, cell after cell"
    assert not [u for u in k.value("key_not_sent") if u.startswith(k.value("wm.SESSION.base_url"))]
    k.ok("print(repr(wm.SESSION.api_key), repr(wm.last()))\nwm.SESSION")  # reprs that could leak
    for run in k.runs:
        assert FAKE_KEY not in run.text()
    db = os.path.join(k.tmp, "data", "history.sqlite")
    for suffix in ("", "-wal"):
        if os.path.exists(db + suffix):
            assert FAKE_KEY.encode() not in Path(db + suffix).read_bytes()
    with sqlite3.connect(db) as conn:
        dumped = json.dumps(list(conn.execute("SELECT * FROM exchanges")))
    assert FAKE_KEY not in dumped and len(dumped) > 1000
