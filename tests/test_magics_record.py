"""Record and replay, and the cache, through the magics in real kernels: a notebook recorded on one kernel replays
strictly on another whose server is unreachable, every output the same; cache hits after a kernel restart."""

from __future__ import annotations

import json

import pytest
from magics_kernel import FAKE_KEY, Kernel

pytestmark = pytest.mark.timeout(180)

DEAD = "http://127.0.0.1:9/v1"  # nothing listens there: any request that went out would fail
CELL = "%%chat --seed 3 --max-tokens 120 --logprobs 3\nTell me about frogs"
FRAMES = "[wm.last().tokens().to_json(), wm.last().alternatives().to_json()]"


def test_a_notebook_recorded_on_one_kernel_replays_strictly_on_another(tmp_path) -> None:
    path = tmp_path / "lesson.jsonl"
    first = Kernel(str(tmp_path / "one"))
    try:
        first.ok("%load_ext wcode_magic\nimport wcode_magic as wm, os")
        first.ok("%wcode use local\nwm.configure(api_key=os.environ['WCODE_API_KEY'])")  # the key really goes out
        said = first.ok(f"%wcode record {path}").stdout
        assert f"Recording every exchange into {path}" in said
        recorded = first.ok(CELL)
        text, frames = first.value("wm.last().text"), first.value(FRAMES)
        first.ok("%wcode -- What is a pond?")
        pond = first.value("wm.last().text")
        assert "Stopped recording" in first.ok("%wcode record off").stdout
    finally:
        first.close()
    content = path.read_text()
    assert FAKE_KEY not in content and not [
        FAKE_KEY[i : i + 8] for i in range(len(FAKE_KEY) - 7) if FAKE_KEY[i : i + 8] in content
    ]
    assert len(content.splitlines()) == 3

    second = Kernel(str(tmp_path / "two"))
    try:
        second.ok("%load_ext wcode_magic\nimport wcode_magic as wm")
        second.ok(f"wm.configure(model='local/ngram-thinking', base_url={DEAD!r}, max_retries=0)")
        said = second.ok(f"%wcode replay {path} --strict").stdout
        assert "Replaying 2 exchanges" in said and "nothing is sent" in said
        replayed = second.ok(CELL)
        assert second.value("wm.last().replayed") is True
        assert second.value("wm.last().text") == text and second.value(FRAMES) == frames
        shown = replayed.last_display["text/markdown"]
        assert text.strip()[:40] in shown and "replayed (recorded " in shown
        assert recorded.last_display["text/markdown"].split("<sub>")[0] == shown.split("<sub>")[0]
        second.ok("%wcode -- What is a pond?")
        assert second.value("wm.last().text") == pond
        miss = second.run("%%chat --seed 4 --max-tokens 120 --logprobs 3\nTell me about frogs")
        assert miss.status == "error"
        assert (
            "ReplayMissError" in miss.error["traceback"][0]
            and "seed: recorded 3, asked 4" in miss.error["traceback"][0]
        )
        usage = second.value("wm.history().loc[:, ['replayed', 'cached']].astype(str).values.tolist()")
        assert [row[0] != "None" for row in usage] == [True, True]
        assert "Stopped replaying" in second.ok("%wcode replay off").stdout
    finally:
        second.close()


def test_the_cache_answers_after_a_kernel_restart(tmp_path) -> None:
    ask = "r = wm.chat('Cache me', model='local/ngram', max_tokens=12, seed=5)"
    first = Kernel(str(tmp_path))
    try:
        first.ok("%load_ext wcode_magic\nimport wcode_magic as wm\n%wcode use local\n%wcode set cache=on")
        first.ok(ask)
        text = first.value("r.text")
        assert first.value("r.cached") is False
    finally:
        first.close()
    again = Kernel(str(tmp_path))  # the same data folder: the same history
    try:
        again.ok("%load_ext wcode_magic\nimport wcode_magic as wm")
        again.ok(f"wm.configure(base_url={DEAD!r}, max_retries=0)\n%wcode set cache=on")
        again.ok(ask)
        assert again.value("[r.cached, r.text]") == [True, text]
        assert "cache         on" in again.ok("%wcode config").stdout
        usage = json.loads(
            again.ok("print(wm.history()['cached'].tolist().__repr__().replace('F', 'f').replace('T', 't'))").stdout
        )
        assert usage == [False, True]
    finally:
        again.close()


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("record", "%wcode record takes one file path"),
        ("record a.jsonl b.jsonl", "%wcode record takes one file path"),
        ("replay", "%wcode replay takes one file path"),
        ("replay x.jsonl --pace", "--pace takes instant or recorded"),
        ("replay x.jsonl --fast", "unknown option '--fast'"),
        ("replay /no/such/file.jsonl", "%wcode replay: There is no recording at /no/such/file.jsonl"),
        ("record /no/such/dir/r.jsonl", "%wcode record: Cannot record into"),
    ],
)
def test_record_and_replay_commands_refuse_what_they_do_not_take(line, said) -> None:
    from wcode_magic.notebook import commands
    from wcode_magic.notebook.run import CellError

    with pytest.raises(CellError, match=None) as e:
        commands.dispatch(line)
    assert said in str(e.value)


def test_replay_pace_option_and_off(tmp_path) -> None:
    from wcode_magic.analysis import recorder
    from wcode_magic.notebook import commands

    path = tmp_path / "r.jsonl"
    path.write_text('{"wcode_recording": 1}\n')
    assert "at recorded pace" in commands.dispatch(f"replay {path} --pace recorded")
    assert recorder.replaying() == (path, False, "recorded", 0)
    assert "Stopped replaying" in commands.dispatch("replay off")
    assert commands.dispatch("replay off") == "No replay was on." and recorder.replaying() is None
    with pytest.raises(Exception, match="pace takes 'instant' or 'recorded'"):
        commands.dispatch(f"replay {path} --pace=fast")
