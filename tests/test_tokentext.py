"""Token text reassembly from bytes: pure functions, byte-level fixtures."""

from __future__ import annotations

from wcode_magic.analysis.tokentext import char_offsets, texts_from, token_bytes


def entry(token: str, raw: bytes | None) -> dict:
    return {"token": token, "bytes": None if raw is None else list(raw)}


def token_texts(entries: list[dict]) -> list[str]:
    return texts_from([e["token"] for e in entries], [e.get("bytes") for e in entries])


def test_cjk_character_split_across_tokens_goes_to_the_completing_token():
    ni = "你".encode()  # e4 bd a0
    entries = [entry("\ufffd", ni[:2]), entry("\ufffd", ni[2:]), entry("好", "好".encode())]
    assert token_texts(entries) == ["", "你", "好"]


def test_emoji_across_four_byte_tokens():
    robot = "🤖".encode()
    entries = [entry("Hi ", b"Hi ")] + [entry("\ufffd", robot[i : i + 1]) for i in range(4)] + [entry("!", b"!")]
    texts = token_texts(entries)
    assert texts == ["Hi ", "", "", "", "🤖", "!"]
    assert "".join(texts) == "Hi 🤖!"


def test_escaped_fragments_without_bytes_are_unescaped():
    # OpenAI writes undecodable pieces as "bytes:\\xe4\\xbd"; llama.cpp as "\\xe4"
    entries = [entry("bytes:\\xe4\\xbd", None), entry("\\xa0", None), entry("!", None)]
    assert token_texts(entries) == ["", "你", "!"]
    assert token_bytes("bytes:\\xe4\\xbd", None) == b"\xe4\xbd"


def test_bytes_win_over_a_wrong_token_string():
    assert token_texts([entry("Ġthe", b" the")]) == [" the"]


def test_literal_backslash_x_text_is_kept_when_it_is_real_text():
    assert token_texts([entry("\\x41", b"\\x41")]) == ["\\x41"]
    assert token_bytes("a\\x41", None) == b"a\\x41"  # not a whole escaped fragment: plain text


def test_unfinished_character_at_the_end_becomes_a_replacement_character():
    assert token_texts([entry("a", b"a"), entry("\ufffd", b"\xe4\xbd")]) == ["a", "\ufffd"]


def test_plain_tokens_fast_path():
    entries = [{"token": "Hello"}, {"token": " world"}]
    assert token_texts(entries) == ["Hello", " world"]


def test_offsets_are_cumulative_when_pieces_make_the_text():
    assert char_offsets(["", "你", "好"], "你好") == ([0, 0, 1], [0, 1, 2])


def test_offsets_align_past_a_think_block_moved_out_of_the_answer():
    starts, ends = char_offsets(["<think>", "hmm", "</think>", "\n\n", "Yes", "."], "Yes.")
    assert starts == [None, None, None, None, 0, 3]
    assert ends == [None, None, None, None, 3, 4]


def test_no_tokens():
    assert token_texts([]) == [] and char_offsets([], "") == ([], [])
