"""The pure parts of the magics: live rendering, code extraction, terminal streaming, conversations, results."""

from __future__ import annotations

import io

import pytest

from wcode_magic.core.conversations import Conversations
from wcode_magic.core.response import Response
from wcode_magic.notebook import flags, live, run


def response(reasoning: str = "", text: str = "", *, finish: bool = True, why: str = "stop", **request) -> Response:
    r = Response({"model": "local/ngram-thinking", "messages": [], **request})
    if reasoning:
        r.feed({"choices": [{"index": 0, "delta": {"reasoning": reasoning}}]})
    if text:
        r.feed({"choices": [{"index": 0, "delta": {"content": text}}]})
    if finish:
        r.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": why}]})
        r.finish(complete=True)
    return r


def test_thinking_open_while_it_streams_then_closed() -> None:
    thinking = live.render_markdown("step one\nstep two", "", "f", streaming=True)
    assert thinking.startswith("<details open><summary>Thinking…</summary>")
    assert "> step one\n> step two" in thinking
    answering = live.render_markdown("step one", "The answer", "f", streaming=True)
    assert answering.startswith("<details><summary>Thinking (2 words)</summary>")
    assert "The answer" in answering and answering.endswith("<sub>f</sub>")


def test_open_code_fence_is_closed_while_streaming_only() -> None:
    half = "Here:\n```python\nprint(1"
    assert live.render_markdown("", half, "", streaming=True).count("```") == 2
    assert live.render_markdown("", half, "", streaming=False).count("```") == 1


def test_footer_is_escaped() -> None:
    assert "&lt;b&gt;" in live.render_markdown("", "x", "<b>", streaming=False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Use this:\n```python\nx = 1\n```\nand\n```\ny = 2\n```", ("python", "x = 1\n\ny = 2\n")),
        ("no fence at all\n", ("", "no fence at all")),
        ("```js\nlet a\n", ("js", "let a\n")),  # a stopped stream with an open block
    ],
)
def test_code_blocks(text: str, expected: tuple[str, str]) -> None:
    assert live.code_blocks(text) == expected


def test_terminal_view_streams_deltas() -> None:
    out = io.StringIO()
    view = live.TerminalView(out)
    view.begin("local/ngram-thinking")
    r = response("think", "", finish=False)
    view.update(r)
    r.feed({"choices": [{"index": 0, "delta": {"content": "Ans"}}]})
    view.update(r)
    r.feed({"choices": [{"index": 0, "delta": {"content": "wer"}}]})
    r.finish(complete=True)
    view.finish(r)
    assert out.getvalue().startswith(
        "[local/ngram-thinking]\n[thinking]\nthink\n[answer]\nAnswer\nlocal/ngram-thinking"
    )


def test_conversation_adds_whole_exchanges_only() -> None:
    convs = Conversations()
    conv = convs.get()
    assert not conv.add("q1", response("", ""))  # nothing arrived: no half exchange
    assert conv.messages == []
    partial = response("", "part", finish=False)
    partial.finish(complete=False, stopped=True)
    assert conv.add("q1", partial)
    assert conv.request("q2") == [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "part"},
        {"role": "user", "content": "q2"},
    ]
    assert convs.get("other").messages == []
    assert convs.reset() and not convs.reset()


def test_parse_json_bare_or_fenced() -> None:
    assert run.parse_json('{"a": [1, 2]}') == {"a": [1, 2]}
    assert run.parse_json('Sure:\n```json\n{"a b": 1}\n```') == {"a b": 1}
    with pytest.raises(run.CellError, match="not valid JSON"):
        run.parse_json("no json here")


class _Shell:
    def __init__(self) -> None:
        self.user_ns: dict = {}
        self.next_input: str | None = None

    def set_next_input(self, text: str, replace: bool = False) -> None:
        self.next_input = text


class _View:
    def begin(self, model: str) -> None: ...
    def update(self, response: Response) -> None: ...
    def finish(self, response: Response | None, note: str | None = None) -> None:
        self.finished = response

    def result(self, value: object) -> object:
        self.shown = value
        return None


@pytest.mark.parametrize(
    ("line", "text", "expected"),
    [
        ("--format json -o r", '{"k": [1, 2]}', {"k": [1, 2]}),
        ("--format text", "plain *text*", "plain *text*"),
        ("--insert", "```python\nx = 1\n```", "x = 1\n"),
    ],
)
def test_results_by_format(line: str, text: str, expected: object) -> None:
    shell, view = _Shell(), _View()
    call = run.prepare(shell, flags.parse(line), "q", conversation=True)
    assert run.finished(shell, call, view, response("", text)) is None
    value = view.shown  # the view shows the result in place of the live output
    assert value == expected
    if "-o r" in line:
        assert shell.user_ns["r"].text == text
    if "--insert" in line:
        assert shell.next_input == "x = 1"
        assert isinstance(value, live.CodeText) and value._repr_markdown_() == "```python\nx = 1\n```"


def test_semicolon_returns_nothing_and_keeps_the_view() -> None:
    shell, view = _Shell(), _View()
    call = run.prepare(shell, flags.parse(";"), "q", conversation=False)
    assert run.finished(shell, call, view, response("", "a")) is None
    assert not hasattr(view, "shown")


SPENT = "the whole token budget (max_tokens=8) went to the thinking; raise max_tokens, lower the effort, or switch"


def test_an_answer_lost_to_thinking_says_why_wherever_it_is_shown() -> None:
    r = response("hmm, let me think", "", why="length", max_tokens=8)
    assert r.no_answer_reason().startswith(SPENT)
    assert SPENT in r._repr_markdown_() and "(no answer text)" not in r._repr_markdown_()
    final = live.render_markdown(r.reasoning, "", "f", streaming=False, no_answer=r.no_answer_reason())
    assert SPENT in final
    assert SPENT in live.render_plain(r.reasoning, "", "f", r.no_answer_reason())
    out = io.StringIO()
    term = live.TerminalView(out)
    term.begin("m")
    term.finish(r)
    assert f"(no answer: {SPENT}" in out.getvalue()
    no_budget = response("", "", why="length")
    no_budget.feed(
        {
            "choices": [],
            "usage": {"prompt_tokens": 1, "completion_tokens": 4, "completion_tokens_details": {"reasoning_tokens": 4}},
        }
    )
    assert "the server's token limit went to the thinking" in no_budget.no_answer_reason()  # thinking not sent


@pytest.mark.parametrize(
    ("reasoning", "text", "why"),
    [("thought", "an answer", "length"), ("thought", "", "stop"), ("", "", "length"), ("", "", "stop")],
)
def test_no_reason_is_made_up_for_other_answers(reasoning: str, text: str, why: str) -> None:
    assert response(reasoning, text, why=why, max_tokens=8).no_answer_reason() is None


@pytest.mark.parametrize("fmt", ["--format text", "--format code"])
def test_an_answer_lost_to_thinking_keeps_the_final_view_in_every_format(fmt: str) -> None:
    shell, view = _Shell(), _View()
    call = run.prepare(shell, flags.parse(fmt), "q", conversation=False)
    assert run.finished(shell, call, view, response("thinking", "", why="length", max_tokens=8)) is None
    assert not hasattr(view, "shown"), "the final view, which says why, stays"


def test_an_answer_lost_to_thinking_fails_a_json_cell_saying_why() -> None:
    call = run.prepare(_Shell(), flags.parse("--format json"), "q", conversation=False)
    with pytest.raises(run.CellError, match=r"no answer to read: the whole token budget \(max_tokens=8\)"):
        run.finished(_Shell(), call, _View(), response("thinking", "", why="length", max_tokens=8))
