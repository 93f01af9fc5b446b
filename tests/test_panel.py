"""The parameter panel: controls derived from the declarations, the session binding, "Show code", and the live
stream with Stop, driven in-process against the real local server and once in a real kernel (nbclient)."""

from __future__ import annotations

import ast
import asyncio
import json
import time
import warnings

import pytest

from wcode_magic.core.errors import InvalidParameterError
from wcode_magic.core.params import PARAMS
from wcode_magic.notebook import codegen, controls

# a long answer that stays long on any machine: the local model alone writes ~50,000 tokens a second here, so the
# server paces it (100,000 tokens: 20 s) for the tests that Stop it mid-stream
PACED = {"X-Wcode-Fault": "pace=5000"}

# -- controls: pure mapping ---------------------------------------------------------------------------------


def test_every_parameter_gets_a_control_shaped_by_its_declaration(session):
    from wcode_magic.notebook.panel import Panel

    p = Panel()
    try:
        made = p.controls.controls
        assert set(made) | controls.COMPOSITE == set(PARAMS)
        temp = made["temperature"].widget
        decl = PARAMS["temperature"]
        assert (temp.min, temp.max, temp.step, temp.value) == (decl.min, decl.max, decl.step, decl.default)
        assert type(made["top_logprobs"].widget).__name__ == "IntSlider"
        for name in ("seed", "max_tokens", "top_k"):  # unbounded: a text box with an unset state
            assert type(made[name].widget).__name__ == "Text"
        assert type(made["logprobs"].widget).__name__ == "Checkbox"
        assert type(made["verbosity"].widget).__name__ == "Dropdown"
        assert type(made["stop"].widget).__name__ == "Textarea"
        assert type(made["logit_bias"].widget).__name__ == "Textarea"
        for name, control in made.items():
            assert PARAMS[name].help in control.widget.tooltip
            assert PARAMS[name].help_zh in control.widget.tooltip
        assert "default 1" in made["temperature"].marker.value
        assert "(default)" in dict((v, k) for k, v in made["verbosity"].widget.options)["medium"]
    finally:
        p.close()


@pytest.mark.parametrize(
    ("name", "widget_value", "sent"),
    [
        ("temperature", 1.0, None),  # the documented default is not sent
        ("temperature", 0.30000000000000004, 0.3),  # slider float noise rounded to the step
        ("top_logprobs", 0, None),
        ("top_logprobs", 5, 5),
        ("logprobs", False, None),
        ("logprobs", True, True),
        ("parallel_tool_calls", True, None),
        ("parallel_tool_calls", False, False),
        ("structured_outputs", "", None),
        ("structured_outputs", "false", False),
        ("verbosity", "medium", None),
        ("verbosity", "high", "high"),
        ("seed", "", None),
        ("seed", " 7 ", 7),
        ("top_k", "0", None),
        ("top_k", "20", 20),
        ("stop", "###", "###"),
        ("stop", "###\nEND\n", ["###", "END"]),
        ("stop", '["\\n\\n"]', ["\n\n"]),
        ("logit_bias", '{"1": -100}', {"1": -100}),
        ("tool_choice", "auto", "auto"),
    ],
)
def test_widget_values_map_to_what_is_sent(name, widget_value, sent):
    assert controls.from_widget(PARAMS[name], widget_value) == sent


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("temperature", 0.3),
        ("seed", 42),
        ("stop", "###"),
        ("stop", ["a", "b"]),
        ("stop", "\n\n"),
        ("logit_bias", {"5": 10}),
        ("structured_outputs", True),
        ("verbosity", "low"),
        ("max_tokens", 500),
    ],
)
def test_session_values_round_trip_through_the_widget(name, value):
    p = PARAMS[name]
    assert controls.from_widget(p, controls.to_widget(p, value)) == value


@pytest.mark.parametrize(
    ("name", "text", "words"),
    [
        ("seed", "abc", "seed='abc'"),
        ("max_tokens", "0", "max_tokens=0"),
        ("logit_bias", "{1:", "not valid JSON"),
        ("stop", "a\nb\nc\nd\ne", "up to 4"),
    ],
)
def test_bad_text_names_the_parameter_and_the_range(name, text, words):
    with pytest.raises(InvalidParameterError) as e:
        controls.from_widget(PARAMS[name], text)
    assert e.value.param == name
    assert words in e.value.message


def test_thinking_switch_and_effort_make_one_reasoning_object():
    assert controls.reasoning_value("", "") is None
    assert controls.reasoning_value("on", "high") == {"enabled": True, "effort": "high"}
    assert controls.reasoning_value("off", "") == {"enabled": False}
    assert controls.reasoning_value("", "low", {"max_tokens": 100}) == {"max_tokens": 100, "effort": "low"}
    assert controls.reasoning_widgets({"enabled": True, "effort": "low", "exclude": True}) == (
        "on",
        "low",
        {"exclude": True},
    )


# -- codegen: the magics' flag syntax, read back the way the magics read it --------------------------------

EXAMPLE = {
    "temperature": 0.2,
    "top_k": 20,
    "stop": "###",
    "logprobs": True,
    "top_logprobs": 5,
    "logit_bias": {"1": -100},
    "seed": 7,
    "reasoning": {"enabled": True, "effort": "high"},
}


def test_chat_line_uses_the_magics_flags():
    line = codegen.chat_line("local-thinking", "Be brief", EXAMPLE)
    assert line == (
        '%%chat -m local-thinking --system "Be brief" --logprobs 5 --temperature 0.2 --top-k 20 --stop "###" '
        "--logit-bias '{\"1\": -100}' --seed 7 --effort high"
    )
    assert codegen.chat_line(params={"reasoning": {"enabled": False}}) == "%%chat --no-think"
    assert codegen.chat_line(params={"logprobs": True}) == "%%chat --logprobs true"
    assert '--reasoning \'{"enabled": true, "max_tokens": 50}\'' in codegen.chat_line(
        params={"reasoning": {"enabled": True, "max_tokens": 50}}
    )


def _read_back(line: str):
    """Parse a generated line with the magics' own option parser."""
    from wcode_magic.notebook import flags

    assert line.startswith("%%chat")
    return flags.parse(line[len("%%chat") :])


@pytest.mark.parametrize(
    "params",
    [
        EXAMPLE,
        {"logprobs": True},
        {"logprobs": True, "top_logprobs": 1},
        {"reasoning": {"enabled": False}},
        {"reasoning": {"effort": "low"}},
        {"reasoning": {"enabled": True, "max_tokens": 50}},
        {"temperature": 0.0, "seed": -3, "structured_outputs": True},
        {"stop": ["a b", 'say "hi"', "it's"]},
        {"stop": "$HOME `x`"},
        {"response_format": {"type": "json_object"}, "verbosity": "low", "parallel_tool_calls": False},
        {"tool_choice": {"type": "function", "function": {"name": "f"}}, "max_tokens": 9},
    ],
)
def test_chat_line_reads_back_to_the_same_parameters(params):
    opts = _read_back(codegen.chat_line("local/ngram", 'a "quoted" system', params, extra_body={"ignore_eos": True}))
    assert opts.params == params
    assert (opts.model, opts.system, opts.extra_body) == ("local/ngram", 'a "quoted" system', {"ignore_eos": True})


def test_python_call_is_valid_python_with_the_same_arguments():
    code = codegen.python_call(
        'say "hi"\nand {braces}', "local/ngram", "sys", EXAMPLE, base_url="http://x/v1", extra_body={"a": 1}
    )
    call = ast.parse(code).body[-1].value
    assert ast.unparse(call.func) == "wm.chat"
    assert ast.literal_eval(call.args[0]) == 'say "hi"\nand {braces}'
    kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    assert kwargs == {
        "model": "local/ngram",
        "system": "sys",
        "base_url": "http://x/v1",
        "extra_body": {"a": 1},
        **EXAMPLE,
    }


def test_show_code_notes_what_a_magic_line_cannot_hold():
    text = codegen.show("hi", "local", "line one\nline two", {}, extra_body={"ignore_eos": True})
    assert "--system" not in text.split("```python")[0]
    assert "wm.configure(system=...)" in text
    assert "--extra-body '{\"ignore_eos\": true}'" in text


@pytest.mark.parametrize("prompt", ["Explain {x} and {{y}}", "d = {'a': 1}", "close }"])
def test_a_prompt_with_braces_gets_no_interpolate(prompt):
    cell = codegen.chat_cell(prompt, "local/ngram")
    line, body = cell.split("\n", 1)
    assert body == prompt
    assert _read_back(line).interpolate is False
    assert "--no-interpolate" not in codegen.chat_cell("no braces here", "local/ngram")


def test_new_and_the_conversation_note():
    assert codegen.chat_line("local/ngram", new=True).startswith("%%chat --new -m local/ngram")
    assert _read_back(codegen.chat_line("local/ngram", new=True)).new
    text = codegen.show("hi", "local/ngram", new=True, earlier_turns=2)
    assert "%%chat --new" in text
    assert "This conversation has 2 earlier exchanges" in text and "%%chat cannot replay" in text
    assert "earlier exchange" not in codegen.show("hi", "local/ngram")


# -- the session binding --------------------------------------------------------------------------------------


def test_panel_and_session_follow_each_other_without_echo(session):
    from wcode_magic.notebook.panel import Panel

    session.set_param("temperature", 0.4)
    p = Panel()
    try:
        assert p.controls.controls["temperature"].widget.value == 0.4  # a value set before the panel shows
        heard = []
        session.subscribe(lambda n, v: heard.append((n, v)))
        p.controls.controls["temperature"].widget.value = 0.7
        assert session.params["temperature"] == 0.7
        assert heard == [("temperature", 0.7)]  # exactly one write, no echo back and forth
        p.controls.controls["temperature"].widget.value = PARAMS["temperature"].default
        assert "temperature" not in session.params  # back at the default: unset, not sent
        session.set_param("top_k", 40)  # what `%wcode set top_k=40` does
        assert p.controls.controls["top_k"].widget.value == "40"
        assert "sent" in p.controls.controls["top_k"].marker.value
        session.set_param("top_k", None)
        assert p.controls.controls["top_k"].widget.value == ""
        p.controls.controls["top_logprobs"].widget.value = 3  # alternatives tick logprobs too
        assert session.params["logprobs"] is True
        p.controls.thinking.switch.value = "on"
        assert session.params["reasoning"] == {"enabled": True}
        session.update(model="qwen3")  # `%wcode use qwen3`
        assert p.model_pick.value == "qwen/qwen3-8b"
        p.model_pick.value = "local/ngram"
        assert session.model == "local/ngram"
        assert p.controls.thinking.switch.disabled  # cannot switch: the control says so
        p.model_pick.value = "local/ngram-thinking"
        assert not p.controls.thinking.switch.disabled
        p.base_url.value = "http://127.0.0.1:1/v1"
        assert session.base_url == "http://127.0.0.1:1/v1"
        session.update(system="Be terse.")
        assert p.system.value == "Be terse."
    finally:
        p.close()


class _Shell:
    def __init__(self, user_ns):
        self.user_ns = user_ns


def _cell_request(code_markdown: str, user_ns: dict) -> dict:
    """What the "Show code" cell would send: parsed and prepared the way the magics do it."""
    from wcode_magic.notebook import flags, run

    cell = code_markdown.split("```\n", 1)[1].split("\n```", 1)[0]
    line, body = cell.split("\n", 1)
    return run.prepare(_Shell(user_ns), flags.parse(line[len("%%chat") :]), body, conversation=True).kwargs


def test_show_code_cell_sends_what_send_sends(session, local_url, monkeypatch):
    from wcode_magic.core.conversations import CONVERSATIONS, Conversation
    from wcode_magic.notebook.panel import Panel

    earlier = [{"role": "user", "content": "earlier"}, {"role": "assistant", "content": "reply"}]
    monkeypatch.setattr(CONVERSATIONS, "_by_name", {"default": Conversation("default", list(earlier))})
    session.update(base_url=local_url, model="local/ngram")
    p = Panel()
    try:
        prompt = 'Fill {x} in {"a": {{b}}} or {b}'
        code = p.code_text(prompt)
        assert code.startswith("```\n%%chat --new -m local/ngram --no-interpolate")
        sent = _cell_request(code, {"x": 42, "b": 1})
        assert sent["prompt_or_messages"] == [{"role": "user", "content": prompt}]  # as written, on its own
        assert sent["model"] == "local/ngram"
        CONVERSATIONS.reset()
        assert "--new" not in p.code_text("first")  # nothing to leave behind: a plain %%chat
        p.messages = earlier  # after a panel turn: the cell cannot send it
        assert "This conversation has 1 earlier exchange: the cell and the call above send only" in p.code_text()
    finally:
        p.close()


def test_bad_text_is_shown_in_the_panel_and_blocks_send(session):
    from wcode_magic.notebook.panel import Panel

    p = Panel()
    try:
        p.controls.controls["seed"].widget.value = "abc"
        assert "seed" in p.error.value and "abc" in p.error.value
        assert "seed" not in session.params
        assert p.send("hello") is None
        assert p.response is None
        p.controls.controls["seed"].widget.value = "3"
        assert p.error.value == ""
        p.extra_body.value = "[1]"
        assert p.send("hello") is None
        assert "extra_body takes a JSON object" in p.error.value
    finally:
        p.close()


# -- streaming against the real local server ------------------------------------------------------------------


def _answer(p) -> str:
    """The answer as Markdown, once the turn has ended."""
    outputs = p.answer.outputs
    return outputs[0]["data"]["text/markdown"] if outputs else ""


def _streamed(p) -> int:
    """Characters of answer the live turn shows while it streams (plain text until it ends)."""
    import html
    import re

    return len(html.unescape(re.sub("<[^>]*>", "", p.turn.live.value)))


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_send_streams_thinking_then_answer_ending_with_the_exact_text(session, local_url):
    import wcode_magic as wm
    from wcode_magic.notebook.panel import Panel
    from wcode_magic.notebook.thinking import pre as _pre

    session.update(base_url=local_url, model="local/ngram-thinking")
    p = Panel()
    seen = []

    def look(_change):
        seen.append((len(p.thinking_text.value), _streamed(p)))

    p.turn.live.observe(look, names="value")
    p.thinking_text.observe(look, names="value")
    p.controls.controls["temperature"].widget.value = 0.8
    p.controls.controls["seed"].widget.value = "11"

    async def go():
        started = time.perf_counter()
        task = p.send("Tell me about the river.")
        assert task is not None and p.running and p.state == "waiting"
        await p.wait()
        return time.perf_counter() - started

    try:
        elapsed = _run(go())
        r = p.response
        assert p.state == "done" and r.complete
        assert _answer(p) == r.text and r.text
        assert r.reasoning and p.thinking_text.value == _pre(r.reasoning)
        assert seen[0][0] > 0 and seen[0][1] == 0  # the thinking was on screen before any answer
        assert p.thinking.selected_index is None  # collapsed once the answer came
        assert wm.last() is r
        assert r.request["temperature"] == 0.8 and r.request["seed"] == 11
        assert "top_p" not in r.request  # at its default: not sent
        assert p.updates <= 15 * elapsed + 2
        assert "done" in p.status.value and "tokens" in p.status.value and "first token" in p.status.value
        same = wm.chat("Tell me about the river.", model="local/ngram-thinking", temperature=0.8, seed=11)
        assert (same.text, same.reasoning) == (r.text, r.reasoning)
        assert p.messages == [{"role": "user", "content": "Tell me about the river."}, r.message]
        assert p.prompt.value == ""

        _run(go_again(p))
        assert len(p.response.request["messages"]) == 3  # the conversation continues
        p.new_conversation()
        assert p.messages == [] and _answer(p) == ""
    finally:
        p.close()


def test_an_answer_lost_to_thinking_says_why_in_the_panel(session, local_url):
    from wcode_magic.notebook.panel import Panel

    session.update(base_url=local_url, model="local/ngram-thinking")
    p = Panel()
    p.controls.controls["max_tokens"].widget.value = "4"
    try:
        _run(go_again(p))
        assert (p.response.text, p.response.finish_reason) == ("", "length")
        assert "the whole token budget (max_tokens=4) went to the thinking; raise max_tokens" in _answer(p)
        p.controls.controls["max_tokens"].widget.value = "200"
        _run(go_again(p))
        assert p.response.text and _answer(p) == p.response.text  # an answer: no note
    finally:
        p.close()


async def go_again(p):
    p.send("And then?")
    await p.wait()


def test_stop_mid_stream_keeps_the_partial_answer(session, local_url):
    import wcode_magic as wm
    from wcode_magic.notebook.panel import Panel

    session.update(base_url=local_url, model="local/ngram")
    p = Panel(headers=PACED)
    p.controls.controls["max_tokens"].widget.value = "100000"
    p.extra_body.value = '{"ignore_eos": true}'

    async def go():
        p.send("Keep talking.")
        while _streamed(p) < 200:
            await asyncio.sleep(0.02)
        clicked = time.perf_counter()
        p.stop_button.click()
        await p.wait()
        return time.perf_counter() - clicked

    try:
        took = _run(go())
        r = p.response
        assert took < 2.0  # a 20 s stream (paced): a Stop that did not work does not return in time
        assert p.state == "stopped" and r.stopped and not r.complete
        assert "stopped" in p.status.value
        assert _answer(p) == r.text and len(r.text) >= 200
        assert p.error.value == "", "a deliberate Stop is no error: nothing in the error area"
        assert p.turn.footer.value == p.status.value and "wm-state-stopped" in p.turn.footer.value
        assert r.usage.completion_tokens is None or r.usage.completion_tokens < 100000
        assert wm.last() is r
        assert p.messages[-1] == r.message  # the partial turn stays in the conversation
        assert not p.send_button.disabled and p.stop_button.disabled
    finally:
        p.close()


def test_stop_right_after_send_leaves_the_panel_ready(session, local_url):
    """Stop before the request's first step (both clicks queued while a cell was busy): the Send still ends."""
    from wcode_magic.notebook.panel import Panel

    session.update(base_url=local_url, model="local/ngram")
    p = Panel()

    async def go():
        p.send("hello")
        p.stop_button.click()
        await p.wait()

    try:
        _run(go())
        assert p.state == "stopped" and "stopped" in p.status.value
        assert not p.send_button.disabled and p.stop_button.disabled
        assert p.messages == []  # nothing arrived: the conversation is unchanged
        _run(go_again(p))
        assert p.state == "done" and p.response.complete  # and the next Send works
    finally:
        p.close()


@pytest.mark.parametrize(
    ("fault", "words", "partial"),
    [("status=401", "HTTP 401", False), ("error_after=30", "The stream broke", True)],
)
def test_errors_show_in_the_panel_with_the_partial_kept(session, local_url, fault, words, partial):
    from wcode_magic.notebook.panel import Panel

    session.update(base_url=local_url, model="local/ngram", max_retries=0)
    p = Panel(headers={"X-Wcode-Fault": fault})

    p.prompt.value = "Hello there."

    async def go():
        p.send()
        await p.wait()

    try:
        _run(go())
        assert p.state == "error"
        assert words in p.error.value
        assert f">{words_as_magics[words]}" in p.error.value  # worded as %%chat words it
        assert "Traceback" not in p.error.value
        assert bool(_answer(p)) == partial
        assert p.messages == []  # a failed turn is not part of the conversation
        assert p.prompt.value == "Hello there."  # kept, to send again
    finally:
        p.close()


words_as_magics = {"HTTP 401": "AuthenticationError: HTTP 401", "The stream broke": "StreamError: The stream broke"}


def test_warnings_of_a_send_show_in_the_panel_once(session, local_url):
    from wcode_magic.core.errors import WcodeWarning
    from wcode_magic.notebook.panel import Panel

    session.update(base_url=local_url, model="local/ngram")
    session.set_param("reasoning", {"enabled": True})  # `%wcode set`: this model has no thinking switch
    p = Panel()

    async def go():
        p.send("Hello.")
        await p.wait()

    try:
        for _ in range(2):  # every Send says it, once
            with warnings.catch_warnings(record=True) as leaked:
                warnings.simplefilter("always")
                _run(go())
            assert p.state == "done"
            assert p.error.value.count("local/ngram cannot switch its thinking") == 1
            assert not [w for w in leaked if issubclass(w.category, WcodeWarning)], "not printed as well"
        session.set_param("reasoning", None)
        _run(go())
        assert p.error.value == ""
    finally:
        p.close()


def test_a_wcode_model_picked_in_the_panel_leaves_the_bundled_local_server(session, local_url, monkeypatch):
    from wcode_magic.notebook.panel import Panel

    monkeypatch.setenv("WCODE_BASE_URL", "http://127.0.0.1:9/v1")  # a dead port standing in for wcode.net
    session.update(base_url=local_url, model="local/ngram", max_retries=0)
    p = Panel()

    async def go():
        p.send("Hello.")
        await p.wait()

    try:
        p.model_pick.value = "deepseek-r1"  # was sent to the local server, which answers 404
        _run(go())
        assert p.state == "error"
        assert "APIConnectionError: Could not reach http://127.0.0.1:9/v1" in p.error.value
        assert "base_url='http://127.0.0.1:9/v1'" in p.code_text("q")  # Show code says where it goes
    finally:
        p.close()


# -- a real kernel: the click is a comm message handled while the request runs as a task --------------------


def test_in_a_real_kernel_stop_is_handled_while_streaming(local_url):
    import nbformat
    from nbclient import NotebookClient

    cells = [
        "import asyncio, time, wcode_magic as wm\n"
        f"wm.configure(base_url={local_url!r}, model='local/ngram', max_tokens=100000)\n"
        f"p = wm.panel(prompt='Go on.', headers={PACED!r})\n"
        "p.extra_body.value = '{\"ignore_eos\": true}'\n"
        "p.send_button.click()\n"
        "p.state",
        "await asyncio.sleep(0.6)  # the task streams while this cell awaits\n"
        "t = time.perf_counter(); p.stop_button.click(); await p.wait()\n"
        "print(p.state, len(p.response.text) > 0, time.perf_counter() - t < 2.0)\n"
        "print(wm.last() is p.response, wm.last().stopped)",
        "print(p.answer.outputs[0]['data']['text/markdown'] == p.response.text)",
        # a warning of the request (this model has no thinking switch) shows in the panel, not on stderr
        "wm.configure(reasoning={'enabled': True}, max_tokens=5)\n"
        "q = wm.panel(prompt='Hi.')\n"
        "q.send_button.click(); await q.wait()\n"
        "print(q.state, q.error.value.count('local/ngram cannot switch its thinking'))",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    outs = [c.outputs for c in nb.cells]
    assert outs[0][0]["data"]["text/plain"] == "'waiting'"
    assert outs[1][0]["text"] == "stopped True True\nTrue True\n"
    assert outs[2][0]["text"] == "True\n"
    assert outs[3][0]["text"] == "done 1\n"
    assert all(o.get("name") != "stderr" for cell in outs for o in cell)  # the background task printed nothing


def test_show_code_for_the_bundled_local_model_names_no_port(session, local_url):
    """The bundled server's port means nothing in another notebook: the call leaves it out, the note says why."""
    from wcode_magic.notebook.panel import Panel

    session.update(base_url=local_url, model="local/ngram")
    p = Panel()
    try:
        text = p.code_text("hi")
    finally:
        p.close()
    call = text.split("```python")[1].split("```")[0]
    assert "base_url" not in call and "model='local/ngram'" in call
    assert "bundled local model" in text and "wm.configure(base_url=" not in text
    assert (
        codegen.show("hi", "m", base_url="http://127.0.0.1:8000/v1").count("base_url='http://127.0.0.1:8000/v1'") == 2
    )


def test_the_model_picker_says_what_a_base_model_is():
    """Every display says what Gemma 270M is (issue 15): the picker's entry too, not only the answer's footer."""
    from wcode_magic.core import catalog
    from wcode_magic.notebook.panel import model_label

    gemma = model_label(catalog.lookup("local/gemma-270m"))
    assert gemma.startswith("local/gemma-270m · ") and gemma.endswith(" · small base model, not a chat model")
    assert "chat model" not in model_label(catalog.lookup("local/ngram"))


# -- the schema box -----------------------------------------------------------------------------------------------
SPEC = "label: yes|no|unsure, reason: str"
JSON_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "n": {"type": "integer"}}}


def test_the_schema_box_maps_to_what_is_sent():
    assert controls.schema_value("  ") is None
    assert controls.schema_value(f" {SPEC} ") == SPEC
    assert controls.schema_value(" " + json.dumps(JSON_SCHEMA)) == JSON_SCHEMA
    with pytest.raises(InvalidParameterError, match="unknown type 'maybe'"):
        controls.schema_value("label: maybe")
    with pytest.raises(InvalidParameterError, match="not valid JSON"):
        controls.schema_value('{"type": ')
    with pytest.raises(InvalidParameterError, match="top level"):
        controls.schema_value('{"type": "array"}')


@pytest.mark.parametrize("box", [SPEC, json.dumps(JSON_SCHEMA)])
def test_show_code_with_a_schema_sends_what_send_sends(session, local_url, box):
    from wcode_magic.notebook.panel import Panel

    session.update(base_url=local_url, model="local/ngram")
    p = Panel()
    try:
        p.schema.value = box
        code = p.code_text("Is it good?")
        sent = controls.schema_value(box)
        assert "--schema " in code.split("```python")[0]
        assert _cell_request(code, {})["schema"] == sent  # the cell, read by the magics, sends the same schema
        python = code.split("```python\n", 1)[1].split("\n```", 1)[0]
        call = ast.parse(python).body[-1].value
        assert {k.arg: ast.literal_eval(k.value) for k in call.keywords}["schema"] == sent
        p.schema.value = ""
        assert "schema" not in p.code_text("Is it good?")
    finally:
        p.close()


def test_a_bad_schema_is_shown_at_once_and_blocks_send(session):
    from wcode_magic.notebook.panel import Panel

    p = Panel()
    try:
        p.schema.value = "label: maybe"
        assert "unknown type &#x27;maybe&#x27;" in p.error.value
        assert p.send("hello") is None and p.response is None
        p.toggle_code()
        assert p.code.layout.display == "none"
        p.schema.value = "label: yes|no"
        assert p.error.value == ""
    finally:
        p.close()


def test_send_with_a_schema_answers_json_of_that_shape(session, local_url):
    from wcode_magic.notebook.panel import Panel

    session.update(base_url=local_url, model="local/ngram")
    p = Panel()

    async def go():
        p.send("Is the soup good?")
        await p.wait()

    try:
        p.schema.value = SPEC
        _run(go())
        assert p.state == "done" and p.error.value == ""
        r = p.response
        assert r.request["response_format"]["type"] == "json_schema"
        assert sorted(r.parsed) == ["label", "reason"] and r.parsed["label"] in ("yes", "no", "unsure")
        assert json.loads(r.text) == r.parsed and r.text in _answer(p)
    finally:
        p.close()


@pytest.fixture
def refusing_server():
    from wire import SchemaRefusingServer

    from wcode_magic.core import schema as schemas

    schemas.REFUSALS.clear()
    server = SchemaRefusingServer()
    yield server
    server.stop()
    schemas.REFUSALS.clear()


def test_the_json_object_fallback_and_an_answer_that_does_not_fit_are_said_in_the_panel(session, refusing_server):
    from wcode_magic.notebook.panel import Panel

    session.update(base_url=refusing_server.base_url, model="qwen/qwen3-8b")
    p = Panel()

    async def go():
        p.send("Is it good?")
        await p.wait()

    try:
        p.schema.value = "label: yes|no|unsure, reason: str, score: float"
        for _ in range(2):  # every Send says it, the second one sent straight as json_object
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _run(go())
            assert p.state == "done"
            assert p.error.value.count("refused response_format json_schema") == 1
            assert p.response.parsed == {"label": "yes", "reason": "fine", "score": 0.5}
        assert [q["response_format"]["type"] for q in refusing_server.requests] == [
            "json_schema",
            "json_object",
            "json_object",
        ]
        refusing_server.pieces = ['{"label": "perhaps", "reason": "fine", "score": 1}']
        _run(go())
        assert p.state == "done" and "label: is &quot;perhaps&quot;, not one of" in p.error.value
    finally:
        p.close()


# -- the chat layout: transcript, live code, the route note, the heat map ---------------------------------------


def test_the_transcript_keeps_every_turn_and_only_the_live_one_changes(session, local_url):
    from wcode_magic.notebook.panel import Panel

    session.update(base_url=local_url, model="local/ngram-thinking")
    p = Panel()
    p.controls.controls["max_tokens"].widget.value = "60"
    try:
        _run(_send(p, "What is a river?"))
        first = p.turn
        first_answer = _answer(p)
        changed = []
        for widget in (first.question, first.thinking_text, first.live, first.footer):
            widget.observe(lambda c: changed.append(c["name"]), names="value")
        first.answer.observe(lambda c: changed.append("answer"), names="outputs")
        _run(_send(p, "And the sea?"))
        assert changed == [], "an earlier turn is never touched again"
        boxes = p.turns.children
        assert [b for b in boxes] == [first.box, p.turn.box] and p.turn is not first
        for turn, question in ((first, "What is a river?"), (p.turn, "And the sea?")):
            assert question in turn.question.value
            assert turn.thinking.titles[0].startswith("Thought for ") and turn.thinking_text.value
            assert turn.thinking.selected_index is None  # closed once the answer came
            assert turn.footer.value.count("done · first token") == 1 and "tokens" in turn.footer.value
        assert _answer(p) == p.response.text and first.answer.outputs[0]["data"]["text/markdown"] == first_answer
        assert len(p.messages) == 4
        p.new_conversation()
        assert len(p.turns.children) == 1 and p.turn.question.layout.display == "none"
    finally:
        p.close()


async def _send(p, prompt):
    p.send(prompt)
    await p.wait()


def test_the_reader_decides_whether_the_thinking_is_open(session, local_url):
    """Once the reader has toggled the thinking, the panel never opens or closes it again. The reader's click is
    a comm message handled on the loop between stream events, as this coroutine's change is."""
    from wcode_magic.notebook.panel import Panel

    session.update(base_url=local_url, model="local/ngram-thinking")
    session.set_param("reasoning", {"enabled": True, "max_tokens": 3000})  # long enough to click during it
    p = Panel()
    p.controls.controls["max_tokens"].widget.value = "80"
    p.controls.controls["seed"].widget.value = "1"  # the thinking leaves room for an answer (unseeded, once it did not)

    async def go():
        p.send("Tell me about stars.")
        while p.thinking.selected_index != 0:  # the panel opens it as the thinking streams
            await asyncio.sleep(0.002)
        assert p.state == "thinking"
        p.thinking.selected_index = None  # the reader closes it ...
        await asyncio.sleep(0)
        p.thinking.selected_index = 0  # ... and opens it again, to read along
        await p.wait()

    try:
        _run(go())
        assert p.response.text and p.thinking.titles[0].startswith("Thought for ")
        assert p.thinking.selected_index == 0, "the panel closed the thinking the reader had opened"
        session.set_param("reasoning", {"enabled": True, "max_tokens": 30})
        _run(_send(p, "More."))  # a new turn: the panel's own default again
        assert p.response.text and p.thinking.selected_index is None
    finally:
        p.close()


def test_show_code_follows_every_change_and_has_copy_and_insert(session, local_url):
    from wcode_magic.notebook.panel import Panel

    session.update(base_url=local_url, model="local/ngram")
    p = Panel()
    try:
        p.toggle_code()  # what the "Show code" button does
        assert p.code.layout.display is None
        assert "%%chat -m local/ngram" in p.code.value and "Your prompt here" in p.code.value
        assert p.code.value.count("wm-copy") == 2 and p.code.value.count("wm-insert") == 2  # each block
        assert "navigator.clipboard.writeText" in p.code.value and "notebook:insert-cell-below" in p.code.value
        p.controls.controls["temperature"].widget.value = 0.3
        assert "--temperature 0.3" in p.code.value and "temperature=0.3" in p.code.value
        p.prompt.value = "Why is the sky blue?"
        assert "Why is the sky blue?" in p.code.value
        p.system.value = "Be brief."
        assert "--system &quot;Be brief.&quot;" in p.code.value
        p.schema.value = "label: yes|no"
        assert "--schema" in p.code.value
        p.extra_body.value = '{"ignore_eos": true}'
        assert "ignore_eos" in p.code.value
        p.model_pick.value = "local/ngram-thinking"
        assert "-m local/ngram-thinking" in p.code.value
        session.set_param("seed", 5)  # `%wcode set seed=5` in another cell
        assert "--seed 5" in p.code.value
        p.extra_body.value = "[1]"
        assert "No code while this is not valid" in p.code.value and "extra_body" in p.code.value
        p.toggle_code()
        assert p.code.layout.display == "none"
    finally:
        p.close()


def test_the_base_url_note_says_where_the_model_really_goes(session, local_url, monkeypatch):
    from wcode_magic.notebook.panel import Panel

    monkeypatch.setenv("WCODE_BASE_URL", "http://127.0.0.1:9/v1")  # a dead port standing in for wcode.net
    session.update(base_url=local_url, model="local/ngram")
    p = Panel()
    try:
        assert (
            p.route_note.value
            == f"<span class='wm-note'>→ local/ngram goes to {local_url} (the bundled local model on this machine)</span>"
        )
        p.model_pick.value = "deepseek-r1"  # the box shows the local server, the request goes elsewhere
        assert "deepseek-r1 goes to http://127.0.0.1:9/v1 — not the box's server" in p.route_note.value
        assert p.base_url.placeholder == "auto: http://127.0.0.1:9/v1"
        p.base_url.value = "https://example.org/v1"
        assert "deepseek-r1 goes to https://example.org/v1</span>" in p.route_note.value
    finally:
        p.close()


def test_with_logprobs_the_finished_answer_shows_its_heat_map(session, local_url):
    from wcode_magic.notebook.panel import Panel

    session.update(base_url=local_url, model="local/ngram")
    p = Panel()
    p.controls.controls["max_tokens"].widget.value = "30"
    try:
        _run(_send(p, "Hello."))
        assert p.turn.tokens.value == ""  # no logprobs: no heat map
        p.controls.controls["top_logprobs"].widget.value = 3  # ticks logprobs too
        _run(_send(p, "Hello again."))
        view = p.turn.tokens.value
        assert "Token probabilities" in view and "wm-tk" in view
        assert view.count("<span") >= 10  # one coloured span per token
    finally:
        p.close()


def test_compare_mode_streams_the_picked_models_side_by_side_and_keeps_the_table(session, local_url):
    """Compare mode: Send asks every picked model at once, in columns inside the turn, with the panel's settings;
    the table equals wm.compare's for the same runs; the conversation is left as it was; Stop stops them all."""
    import wcode_magic as wm
    from wcode_magic.notebook.panel import Panel

    session.update(base_url=local_url, model="local/ngram")
    p = Panel()
    p.controls.controls["seed"].widget.value = "4"
    p.controls.controls["max_tokens"].widget.value = "400"  # room for the thinking model's answer too
    try:
        p.compare_button.value = True
        assert p.compare_pick.layout.display is None and p.compare_pick.value == ("local/ngram",)
        p.compare_pick.value = ("local/ngram", "local/ngram-thinking")
        # Show code follows the mode: a %%compare cell (which %%compare parses) and a wm.compare call
        code = p.code_text("Why is the sky blue?")
        cell = code.split("```\n", 2)[1].split("\n```", 1)[0]
        assert cell.startswith("%%compare -m local/ngram -m local/ngram-thinking ") and "--seed 4" in cell
        from wcode_magic.notebook.flags import parse_compare

        assert parse_compare(cell.splitlines()[0].removeprefix("%%compare")).models == [
            "local/ngram",
            "local/ngram-thinking",
        ]
        assert "wm.compare(" in code and "models=['local/ngram', 'local/ngram-thinking']" in code
        _run(_send(p, "Why is the sky blue?"))
        assert p.state == "done" and "2 runs · 2 done" in p.status.value
        view = p.compare_view
        assert view.widget in p.turn.box.children and p.messages == []
        df = p.compared
        same = wm.compare("Why is the sky blue?", models=["local/ngram", "local/ngram-thinking"], progress=False)
        assert df.model.tolist() == same.model.tolist() and df.text.tolist() == same.text.tolist()
        assert all(df.text.str.len() > 0)

        # Stop: every column stops, what arrived stays
        p.controls.controls["max_tokens"].widget.value = "100000"
        p.extra_body.value = '{"ignore_eos": true}'

        async def stop_mid_stream():
            p.send("Keep talking.")
            while (
                not p.compare_view
                or p.compare_view is view
                or not all(
                    c.response is not None and (c.response.text or c.response.reasoning) for c in p.compare_view.columns
                )
            ):
                await asyncio.sleep(0.01)
            p.stop_button.click()
            await p.wait()

        _run(stop_mid_stream())
        assert p.state == "stopped" and "2 stopped" in p.status.value and not p.error.value.strip()
        kept = p.compared.text.str.len() + p.compared.response.map(lambda r: len(r.reasoning))
        assert all(kept > 0) and p.compared.attrs["stopped"] == 2
        assert p.send_button.disabled is False and p.stop_button.disabled is True
    finally:
        p.close()
