"""The SSE decoder (core/sse.py) on its own: pure, bytes in, events out, cut at every possible place."""

from __future__ import annotations

import pytest
import wire

from wcode_magic.core.sse import ServerSentEvent, SSEDecoder


def decode(*chunks: bytes) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    out = [ev for chunk in chunks for ev in decoder.feed(chunk)]
    return out + decoder.finish()


def datas(*chunks: bytes) -> list[str]:
    return [ev.data for ev in decode(*chunks)]


def cuts(raw: bytes, size: int) -> list[bytes]:
    return [raw[i : i + size] for i in range(0, len(raw), size)]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending(newline):
    raw = b"data: one\n\ndata: two\n\ndata: [DONE]\n\n".replace(b"\n", newline)
    assert datas(raw) == ["one", "two", "[DONE]"]


def test_mixed_line_endings_in_one_stream():
    assert datas(b"data: a\r\n\r\ndata: b\r\rdata: c\n\ndata: d\r\n\n") == ["a", "b", "c", "d"]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
@pytest.mark.parametrize("size", [1, 2, 3, 5, 64])
def test_cut_anywhere_gives_the_same_events(newline, size):
    """Every fixture from protocol.md, with each line ending, cut into reads of every small size: a \\r\\n split
    between two reads, a field name cut in half, a multi-byte character (Ark's Chinese) cut between its bytes."""
    for name, raw in wire.SSE_FIXTURES.items():
        raw = raw.replace(b"\n", newline)
        assert decode(*cuts(raw, size)) == decode(raw), (name, size)
        assert datas(raw)  # each fixture has events at all


def test_crlf_split_between_two_reads_is_one_line_end():
    """Were the \n after a read's closing \r taken for a line of its own, it would end the event early."""
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\ndata: b\r") == []
    assert decoder.feed(b"\n\r") == [ServerSentEvent("a\nb")]  # \r\n ended the line, the lone \r the event
    assert decoder.feed(b"\ndata: c\r\n\r\n") == [ServerSentEvent("c")]  # that \n belonged to the \r
    assert datas(*cuts(b"data: {\r\ndata: }\r\n\r\n", 1)) == ["{\n}"]


def test_a_lone_cr_at_the_end_of_a_read_is_not_held_back():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r\r") == [ServerSentEvent("a")]
    assert decoder.feed(b"data: b\r\r") == [ServerSentEvent("b")]


def test_comments_are_skipped():
    raw = b": OPENROUTER PROCESSING\n\n:keep-alive\n\ndata: x\n: inside an event\n\n"
    assert decode(raw) == [ServerSentEvent("x")]


@pytest.mark.parametrize(
    "line,data",
    [
        (b'data: {"a":1}', '{"a":1}'),
        (b'data:{"a":1}', '{"a":1}'),
        (b"data:  two spaces", " two spaces"),  # only one space is the separator
        (b"data:", ""),
        (b"data", ""),  # a field name alone: the value is empty
    ],
)
def test_data_with_and_without_the_space(line, data):
    assert datas(line + b"\n\n") == [data]


def test_multi_line_data_is_joined_with_newlines():
    raw = b'data: {"choices":\ndata: [1,\ndata:2]}\n\n'
    assert datas(raw) == ['{"choices":\n[1,\n2]}']


def test_event_id_and_retry_fields():
    raw = b"retry: 3000\nid: 7\nevent: ping\ndata: a\n\ndata: b\n\nid: 8\ndata: c\n\nretry: soon\nid: x\0y\ndata: d\n\n"
    assert decode(raw) == [
        ServerSentEvent("a", "ping", "7", 3000),
        ServerSentEvent("b", "message", "7", 3000),  # the event type resets; id and retry belong to the stream
        ServerSentEvent("c", "message", "8", 3000),
        ServerSentEvent("d", "message", "8", 3000),  # a retry that is no number and an id with NUL are ignored
    ]


def test_events_without_data_and_unknown_fields_are_not_dispatched():
    raw = b"event: ping\n\nid: 3\n\nfoo: bar\n\ndata: real\nfoo: bar\n\n"
    assert decode(raw) == [ServerSentEvent("real", id="3")]


@pytest.mark.parametrize("tail", [b"data: [DONE]", b"data: [DONE]\n", b"data: [DONE]\r\n", b"data: [DONE]\r"])
def test_final_event_without_blank_line_is_flushed_at_eof(tail):
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\n" + tail) == [ServerSentEvent("a")]
    assert decoder.finish() == [ServerSentEvent("[DONE]")]
    assert decoder.finish() == []  # nothing is dispatched twice


def test_a_cut_off_comment_or_blank_end_flushes_nothing():
    assert datas(b"data: a\n\n: keep") == ["a"]
    assert datas(b"") == []


def test_utf8_split_inside_a_character_and_a_leading_bom():
    raw = "\ufeffdata: 嗯，用户😀\n\n".encode()
    assert datas(*cuts(raw, 1)) == ["嗯，用户😀"]
    assert datas(b"data: \xff\n\n") == ["\ufffd"]  # undecodable bytes are replaced, as the standard says


def test_one_event_per_read_as_servers_write_them():
    """Whole events read one at a time (the decoder's quick path) give what the same bytes give in one read,
    also when a read before left something pending: a field, half a line, a \r."""
    events = [b"data: a\n\n", b"data: b\n\n", b"event: ping\n", b"data: c\n\n", b"data: d\n\n", b"data: e", b"\n\n"]
    events += [b"data: f\r", b"data: g\n\n", b"id: 9\n\n", b"data: h\n\n", b"data: x\ny\n\n", b"data: [DONE]\n\n"]
    assert decode(*events) == decode(b"".join(events))
    assert [e.data for e in decode(*events)] == ["a", "b", "c", "d", "e", "f\ng", "h", "x", "[DONE]"]
    assert decode(*events)[2].event == "ping" and decode(*events)[-1].id == "9"
