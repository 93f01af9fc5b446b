"""Side by side: ``CompareView`` driven from code against the real local server, the ``%%compare`` options, and
``%%compare`` in a real kernel (columns shown, the DataFrame as the cell's result, bad flags refused before
anything is sent, an interrupt that keeps the partial answers)."""

from __future__ import annotations

import asyncio
import json

import pytest
from magics_kernel import Kernel

from wcode_magic.core.errors import InvalidParameterError
from wcode_magic.notebook import flags

# An answer that never ends, paced by the server (~200 tokens a second): streams that are surely running when a
# test looks at them or stops them.
ENDLESS = {"headers": {"X-Wcode-Fault": "endless"}, "max_tokens": 100_000}
PROMPT = "Tell me about the river and the stars."


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def _answer(column) -> str:
    outputs = column.answer.outputs
    return outputs[0]["data"]["text/markdown"] if outputs else ""


def _most_in_one_second(times: list[float]) -> int:
    """The most redraws that fell within any one-second window."""
    return max((sum(1 for u in times if t <= u < t + 1.0) for t in times), default=0)


@pytest.fixture
def local(session, local_url):
    session.update(base_url=local_url, model="local/ngram")
    return local_url


# -- the view, driven from code -------------------------------------------------------------------------------
def test_columns_stream_at_once_at_most_15_updates_a_second_and_stop_all_keeps_the_partials(local):
    from wcode_magic.notebook.compareview import CompareView

    view = CompareView(PROMPT, ["local/ngram", "local/ngram-thinking"], temperature=0.7, seed=5, **ENDLESS)
    assert not view.compact and view.per_row == 2
    assert "local/ngram-thinking" in view.columns[1].box.children[0].value
    grew: list[tuple[int, int]] = []  # (column, answer length) after every redraw, in order

    async def go():
        view.start()
        assert view.running and not view.stop_button.disabled
        for _ in range(40):  # 2 s of streaming, looking every 50 ms
            await asyncio.sleep(0.05)
            grew.append(tuple(len(c.response.text) if c.response else 0 for c in view.columns))
        view.stop()
        return await view

    df = _run(go())
    # both columns grew together: at the halfway look each had text, and each grew again after it
    half = grew[len(grew) // 2]
    assert all(n > 0 for n in half) and all(last > mid for last, mid in zip(grew[-1], half, strict=True))
    for column in view.columns:
        assert column.state == "stopped"
        r = column.response
        assert r is not None and r.status == "stopped" and len(r.text) > 100
        assert _answer(column) == r.text  # the exact partial text, whatever the throttle skipped
        assert "stopped" in column.footer.value and column.error.value == ""  # a stop is not an error
        assert column.updates >= 10 and _most_in_one_second(column.pushes) <= 15
    assert view.state == "stopped" and view.stop_button.disabled
    assert list(df["model"]) == ["local/ngram", "local/ngram-thinking"]
    assert list(df["complete"]) == [False, False] and df["error"].isna().all()
    assert [len(t) for t in df["text"]] == [len(c.response.text) for c in view.columns]
    assert df.attrs["stopped"] == 2 and df.attrs["interrupted"] is True


def test_stop_all_before_the_runs_began_ends_every_column_stopped(local):
    from wcode_magic.notebook.compareview import CompareView

    view = CompareView(PROMPT, ["local/ngram", "local/ngram-thinking"], **ENDLESS)

    async def go():
        view.start()
        view.stop()  # before the task's first step
        return await view

    df = _run(go())
    assert [c.state for c in view.columns] == ["stopped", "stopped"] and view.stop_button.disabled
    assert all("stopped" in c.footer.value for c in view.columns)
    assert list(df["complete"]) == [False, False] and df["error"].isna().all() and list(df["text"]) == ["", ""]


def test_thinking_opens_while_it_streams_folds_at_the_answer_and_respects_the_reader(local):
    from wcode_magic.notebook.compareview import CompareView

    kw = {"seed": 4, "max_tokens": 400, "reasoning": {"enabled": True, "max_tokens": 300}}
    folded = CompareView(PROMPT, "local/ngram-thinking", **kw)
    _run(folded.wait())
    column = folded.columns[0]
    assert column.response.reasoning and column.thinking.layout.display != "none"
    assert column.thinking.selected_index is None  # folded once the answer started
    assert column.thinking.get_title(0).startswith("Thought for ")
    assert column.thinking_text.value.endswith(f"{column.response.reasoning[-20:]}</pre>")

    kept = CompareView(PROMPT, "local/ngram-thinking", **kw)
    kept.columns[0].thinking.selected_index = 0  # the reader opened it: it stays open
    _run(kept.wait())
    assert kept.columns[0].user_chose_thinking and kept.columns[0].thinking.selected_index == 0

    plain = CompareView(PROMPT, "local/ngram", seed=4, max_tokens=40)  # a model that does not think
    _run(plain.wait())
    assert not plain.columns[0].response.reasoning and plain.columns[0].thinking.layout.display == "none"


def test_the_frame_is_what_wm_compare_returns_for_the_same_runs(local):
    import pandas as pd

    import wcode_magic as wm
    from wcode_magic.notebook.compareview import CompareView

    args = {"prompt": PROMPT, "models": ["local/ngram", "local/ngram-thinking"], "temperature": [0.3, 1.0]}
    fixed = {"seed": 11, "max_tokens": 80, "logprobs": True}
    view = CompareView(**args, **fixed)
    ours = _run(view.wait())
    theirs = wm.compare(**args, progress=False, **fixed)
    timing = ["latency_s", "ttft_s", "response"]
    pd.testing.assert_frame_equal(ours.drop(columns=timing), theirs.drop(columns=timing))
    assert list(ours.columns) == list(theirs.columns) and len(ours) == 4
    assert all(c.state == "done" and _answer(c) == c.response.text for c in view.columns)
    # the columns are titled by what differs between them: the temperature (the seed is the same for all)
    assert "temperature 0.3" in view.columns[0].box.children[0].value
    assert "seed" not in view.columns[0].box.children[0].value


def test_an_error_shows_in_its_own_column_only(local):
    from wcode_magic.notebook.compareview import CompareView

    view = CompareView(PROMPT, ["local/ngram", "no-such/model"], seed=2, max_tokens=40)
    df = _run(view.wait())
    good, bad = view.columns
    assert good.state == "done" and good.error.value == "" and _answer(good) == good.response.text
    assert bad.state == "error" and "404" in bad.error.value and "no-such/model" in bad.error.value
    assert "error" in bad.footer.value
    assert df["error"].isna().tolist() == [True, False]


def test_more_than_six_runs_become_a_compact_grid_three_to_a_row(local):
    from wcode_magic.notebook.compareview import COLUMNS_MAX, CompareView

    six = CompareView(PROMPT, "local/ngram", seed=list(range(COLUMNS_MAX)))
    assert not six.compact and six.per_row == 6
    assert six.grid.layout.grid_template_columns == "repeat(auto-fill, minmax(max(14em, calc((100% - 40px) / 6)), 1fr))"
    seven = CompareView(PROMPT, "local/ngram", seed=list(range(7)), max_tokens=20)
    assert seven.compact and "wm-compare-compact" in seven.grid._dom_classes
    assert seven.per_row == 3 and "/ 3)" in seven.grid.layout.grid_template_columns
    assert "seed 6" in seven.columns[6].box.children[0].value
    df = _run(seven.wait())
    assert len(df) == 7 and df["complete"].all()
    assert "7 runs · 7 done" in seven.status.value


def test_bad_values_are_refused_before_anything_is_sent(local):
    import wcode_magic as wm
    from wcode_magic.notebook.compareview import CompareView

    before = wm.last()
    with pytest.raises(InvalidParameterError) as info:
        CompareView(PROMPT, ["local/ngram", "local/ngram-thinking"], temperature=[0.5, 7])
    assert "temperature" in info.value.message and "7" in info.value.message
    with pytest.raises(InvalidParameterError, match="concurrency"):
        CompareView(PROMPT, "local/ngram", concurrency=0)
    assert wm.last() is before


# -- the options -----------------------------------------------------------------------------------------------
def test_compare_options_models_sweeps_and_request_flags():
    opts = flags.parse_compare(
        "-m r1,v3.1 -m qwen3 -p temperature=0.2,1.0 -p 'stop=[\"###\"]' --seed 7 --max-tokens 50 --logprobs 3 "
        "--system 'Be brief.' -n 2 --concurrency 4 -o df --header 'X-A: 1';"
    )
    assert opts.models == ["r1", "v3.1", "qwen3"]
    assert opts.grid == {"temperature": [0.2, 1.0], "stop": [["###"]]}
    assert opts.params == {"seed": 7, "max_tokens": 50, "logprobs": True, "top_logprobs": 3}
    assert (opts.system, opts.n, opts.concurrency, opts.out, opts.quiet) == ("Be brief.", 2, 4, "df", True)
    assert opts.headers == {"X-A": "1"}


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("--temperature 9", ["temperature", "9", "0"]),
        ("-p temperature=0.5,3", ["temperature", "3"]),
        ("-p temprature=1", ["temprature", "Did you mean temperature?"]),
        ("-p seed", ["-p 'seed'", "NAME=VALUE"]),
        ("-n 0", ["-n/--runs", "'0'", ">= 1"]),
        ("--tools f", ["Unknown option --tools"]),
        ("--max-tokns 5", ["Did you mean --max-tokens?"]),
    ],
)
def test_bad_compare_options_name_the_flag_the_value_and_what_is_allowed(line, said):
    with pytest.raises((flags.FlagError, InvalidParameterError)) as info:
        flags.parse_compare(line)
    for text in said:
        assert text in str(info.value)


def test_without_a_widget_front_end_the_magic_is_wm_compare(local, capsys):
    from wcode_magic.notebook.comparerun import cell_sync

    df = cell_sync(None, "-m local/ngram -m local/ngram-thinking --seed 3 --max-tokens 30", "Name a river.")
    assert list(df["model"]) == ["local/ngram", "local/ngram-thinking"] and df["complete"].all()
    assert "compare" in capsys.readouterr().err  # tqdm's progress line
    quiet = cell_sync(None, "-m local/ngram --schema 'label: yes|no' --seed 1 --max-tokens 80;", "Is the sky blue?")
    assert quiet is None  # the trailing ; leaves the result out


def test_with_a_schema_the_frame_has_the_fields_as_wm_compare_gives_them(local):
    import wcode_magic as wm
    from wcode_magic.notebook.compareview import CompareView

    kw = {"schema": "label: yes|no", "seed": 1, "max_tokens": 80}
    ours = _run(CompareView("Is the sky blue?", ["local/ngram", "local/ngram-thinking"], **kw).wait())
    theirs = wm.compare("Is the sky blue?", ["local/ngram", "local/ngram-thinking"], progress=False, **kw)
    assert "label" in ours.columns and list(ours["label"]) == list(theirs["label"])
    assert list(ours["parsed"]) == list(theirs["parsed"])


# -- %%compare in a real kernel --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def k(tmp_path_factory):
    kernel = Kernel(str(tmp_path_factory.mktemp("compare")))
    kernel.ok("%load_ext wcode_magic\nimport wcode_magic as wm")
    kernel.ok("%wcode use local")
    yield kernel
    kernel.close()


WIDGET = "application/vnd.jupyter.widget-view+json"


def test_compare_cell_shows_columns_and_returns_wm_compares_frame(k):
    run = k.ok("%%compare -m local/ngram -m local/ngram-thinking --seed 3 --max-tokens 60 -o df\nName a river.")
    assert any(WIDGET in d for d in run.displays)  # the side-by-side view
    assert "CompareView: 2 runs of local/ngram, local/ngram-thinking" in run.displays[0]["text/plain"]
    assert (
        run.result is not None
        and "<table" in run.result["text/html"]
        and "local/ngram-thinking" in run.result["text/html"]
    )
    same = k.value(
        "[df is _, list(df['model']), bool(df['complete'].all()), "
        "list(df['text']) == list(wm.compare('Name a river.', models=['local/ngram', 'local/ngram-thinking'], seed=3, "
        "max_tokens=60, progress=False)['text'])]"
    )
    assert same == [True, ["local/ngram", "local/ngram-thinking"], True, True]


def test_a_bad_flag_is_refused_before_anything_is_sent(k):
    k.ok("before = wm.last()")
    run = k.run("%%compare -m local/ngram --temperature 9\nName a river.")
    assert run.status == "error", (run.status, run.reply, run.stdout, run.stderr)
    message = run.error["evalue"] + "".join(run.error["traceback"])
    assert "%%compare" in message and "temperature" in message and "9" in message
    assert k.value("wm.last() is before") is True


def test_an_interrupt_stops_every_run_and_the_cell_still_returns_the_partials(k):
    line = (
        "%%compare -m local/ngram -m local/ngram-thinking --max-tokens 100000 --header 'X-Wcode-Fault: endless' -o part"
    )
    run = k.run(f"{line}\nName a river.", interrupt_when=_after(1.5))
    assert run.status == "ok", run.error
    assert run.result is not None and "<table" in run.result["text/html"]
    got = k.value(
        "[list(part['complete']), [r.status for r in part['response']], bool(part['error'].isna().all()), "
        "min(len(t) for t in part['text'])]"
    )
    assert got[:3] == [[False, False], ["stopped", "stopped"], True] and got[3] > 0


def _after(seconds: float):
    import time

    start = time.monotonic()
    return lambda _run: time.monotonic() - start > seconds


def test_the_key_never_shows(k):
    from magics_kernel import FAKE_KEY

    assert all(FAKE_KEY not in r.text() for r in k.runs)
    assert json.dumps([r.reply for r in k.runs]).count(FAKE_KEY) == 0
