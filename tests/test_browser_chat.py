"""The panel as a chat in a real browser: JupyterLab on 127.0.0.1, headless Debian Chromium, the local model.

At 1280x800 and 800x800 after Run All (the panel in the second cell): Send is inside the window without
scrolling; opening the settings and switching their tabs leaves Send where it was; two turns stream into the
transcript, which follows the stream until the reader scrolls up; Stop mid-stream reads "stopped" with no error;
"Show code" follows a change at once, Copy puts the code on the clipboard and Insert adds a cell holding it.
The screenshot of the two-turn conversation is ``tests/artifacts/panel-chat.png``; with
``WCODE_UPDATE_SCREENSHOT=1`` it also replaces ``docs/panel.png`` (the README shows it).
"""

from __future__ import annotations

import os
import shutil
import time

import pytest
from browserlab import (
    ARTIFACTS,
    ROOT,
    browser_page,
    cell,
    connect,
    dismiss_dialog,
    lab,
    notebook,
    use_theme,
    wait_text,
)

from wcode_magic.core import catalog
from wcode_magic.notebook.panel import model_label

pytestmark = pytest.mark.browser

VIEWPORTS = ({"width": 1280, "height": 800}, {"width": 800, "height": 800})
SEND = ".wm-panel .wm-send"


def _notebook(local_url: str) -> dict:
    setup = (
        "import wcode_magic as wm\n"
        f"wm.configure(base_url={local_url!r}, model='local/ngram-thinking', max_tokens=120, seed=3, "
        "reasoning={'enabled': True, 'max_tokens': 200})\n"
        "print('kernel ready')"
    )
    return notebook(setup, "p = wm.panel()\np")


@pytest.fixture(scope="module")
def page(tmp_path_factory, local_url):
    root = tmp_path_factory.mktemp("lab")
    with (
        lab(root, {"chat.ipynb": _notebook(local_url)}) as url,
        browser_page(url + "/lab/tree/chat.ipynb", VIEWPORTS[0], shot="chat-last-page.png") as pg,
    ):
        pg.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
        pg.locator(".jp-Notebook .jp-Cell").first.wait_for()
        pg.add_style_tag(content=".Toastify { display: none !important; }")  # JupyterLab's news prompt
        connect(pg)
        yield pg


def _run_all(page) -> None:
    dismiss_dialog(page)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    page.locator(SEND).wait_for()
    time.sleep(0.5)  # the notebook settles its scroll position after the outputs render


def _box(page, selector: str = SEND) -> dict:
    return page.locator(selector).bounding_box()


def _place(page) -> tuple[float, float]:
    """Send's place in the panel (JupyterLab may scroll the whole notebook by a few pixels when the document's
    length changes below the window; what the panel must not do is move Send inside itself)."""
    send, panel = _box(page), _box(page, ".wm-panel")
    return send["x"] - panel["x"], send["y"] - panel["y"]


def _inside(box: dict, viewport: dict) -> bool:
    return (
        box["y"] >= 0
        and box["x"] >= 0
        and box["y"] + box["height"] <= viewport["height"]
        and (box["x"] + box["width"] <= viewport["width"])
    )


def _state(page) -> str:
    return page.locator(".wm-panel .wm-status").inner_text().split(" · ")[0].strip()


def _wait_state(page, states: tuple[str, ...], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = _state(page)
        if state in states:
            return state
        time.sleep(0.05)
    raise AssertionError(f"the panel never reached {states}; it says {_state(page)!r}")


def _asked(page) -> int:
    """Questions in the transcript (the empty turn of a new conversation shows none)."""
    return page.locator(".wm-panel .wm-turn .wm-user:visible").count()


def _send(page, prompt: str | None = None) -> None:
    """Send (the prompt, if given) and wait until the new turn shows in the transcript."""
    asked = _asked(page)
    if prompt is not None:
        page.locator(".wm-panel .wm-prompt textarea").fill(prompt)
    page.locator(SEND).click()
    deadline = time.monotonic() + 20
    while _asked(page) == asked:
        assert time.monotonic() < deadline, "Send added no turn to the transcript"
        time.sleep(0.05)


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("viewport", VIEWPORTS, ids=lambda v: f"{v['width']}x{v['height']}")
def test_send_stays_in_view_and_in_place(page, viewport, theme):
    use_theme(page, theme)
    page.set_viewport_size(viewport)
    _run_all(page)
    send = _box(page)
    assert _inside(send, viewport), f"Send at {send} is outside the {viewport} window after Run All"
    place = _place(page)
    toggle = page.locator(".wm-panel .wm-settings-toggle")
    toggle.click()
    page.locator(".wm-panel .wm-settings .lm-TabBar-tab").first.wait_for()
    assert _place(page) == place, "opening the settings moved Send"
    # Where the cell is wide enough the settings sit beside the chat, and every tab leaves Send in the window; in a
    # narrow cell they sit below it, so reaching a tab scrolls the page, but Send still keeps its place in the panel.
    beside = _box(page, ".wm-panel .wm-settings")["y"] < send["y"]
    assert beside or viewport["width"] < 1000, f"at {viewport} the settings should sit beside the chat"
    for tab in page.locator(".wm-panel .wm-settings .lm-TabBar-tab").all():
        tab.click()
        assert _place(page) == place, f"the {tab.inner_text()} tab moved Send"
        if beside:
            assert _inside(_box(page), viewport), f"the {tab.inner_text()} tab put Send out of the window"
    for selector in (".wm-panel .wm-model select", ".wm-panel .wm-settings .lm-TabBar-tab"):
        box = _box(page, selector + " >> nth=0")
        assert box["x"] + box["width"] <= viewport["width"], f"{selector} overflows the window"
    toggle.click()
    assert _place(page) == place, "closing the settings moved Send"
    page.locator(".wm-panel .wm-show-code").click()
    page.locator(".wm-panel .wm-code .wm-code-text").first.wait_for()
    assert _place(page) == place, "showing the code moved Send"
    wide = page.locator(".wm-panel .wm-chat").evaluate("e => [e.scrollWidth, e.clientWidth]")
    assert wide[0] <= wide[1], f"the chat column overflows its width with the code shown: {wide}"
    page.locator(".wm-panel .wm-show-code").click()


def test_compare_mode_streams_the_picked_models_side_by_side(page):
    """The panel's Compare: two models picked in the list, one Send, two columns in the turn that grow together,
    then the status counts both done."""
    use_theme(page, "light")
    page.set_viewport_size(VIEWPORTS[0])
    _run_all(page)
    place = _place(page)
    page.locator(".wm-panel .wm-compare-toggle").click()
    assert _place(page) == place, "the Compare list moved Send"
    labels = [model_label(catalog.lookup(m)) for m in ("local/ngram", "local/ngram-thinking")]
    page.locator(".wm-panel .wm-compare-pick select").select_option(label=labels)
    _send(page, "Why do rivers bend?")
    columns = page.locator(".wm-panel .wm-turn").last.locator(".wm-compare-col")
    columns.nth(1).wait_for()
    assert columns.count() == 2
    assert _wait_state(page, ("done", "stopped", "error")) == "done"
    assert "2 runs · 2 done" in page.locator(".wm-panel .wm-status").inner_text()
    heads = [columns.nth(i).locator(".wm-compare-head").inner_text() for i in range(2)]
    assert heads[0].startswith("local/ngram") and heads[1].startswith("local/ngram-thinking"), heads
    for i in range(2):
        wait_text(columns.nth(i).locator(".wm-compare-foot"), "tokens")
    assert not columns.nth(0).locator(".wm-compare-thinking").is_visible(), "local/ngram does not think"
    assert columns.nth(1).locator(".wm-compare-thinking").inner_text().startswith("Thought for")
    page.locator(".wm-panel").screenshot(path=str(ARTIFACTS / "panel-compare.png"))
    page.locator(".wm-panel .wm-compare-toggle").click()  # back to the chat


def test_a_conversation_show_code_copy_insert_and_stop(page, local_url):
    use_theme(page, "light")  # the README's picture
    viewport = VIEWPORTS[0]
    page.set_viewport_size(viewport)
    _run_all(page)

    # "Show code" follows a change made after it was opened, and the model's route shows beside the base URL.
    page.locator(".wm-panel .wm-show-code").click()
    code = page.locator(".wm-panel .wm-code")
    assert "--temperature" not in code.inner_text()
    page.locator(".wm-panel .wm-settings-toggle").click()
    assert page.locator(".wm-panel .wm-route").inner_text() == f"→ local/ngram-thinking goes to {local_url}"
    readout = page.locator(".wm-panel .wm-param-temperature .widget-readout")
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("0.3")
    page.keyboard.press("Enter")
    wait_text(code, "--temperature 0.3")
    page.locator(".wm-panel .wm-prompt textarea").fill("What is a river?")
    wait_text(code, "What is a river?")
    cell_code = page.locator(".wm-panel .wm-code .wm-code-text").first.text_content()
    assert cell_code.startswith("%%chat") and cell_code.endswith("What is a river?")

    page.locator(".wm-panel .wm-copy").first.click()
    wait_text(page.locator(".wm-panel .wm-copy").first, "Copied")
    assert page.evaluate("navigator.clipboard.readText()") == cell_code

    cells = page.locator(".jp-Notebook .jp-Cell").count()
    page.locator(".wm-panel .wm-insert").first.click()
    deadline = time.monotonic() + 10
    while page.locator(".jp-Notebook .jp-Cell").count() == cells and time.monotonic() < deadline:
        time.sleep(0.05)
    inserted = cell(page, 2).locator(".cm-content")
    assert inserted.inner_text().replace("\u200b", "") == cell_code, "Insert must add the code below the panel"
    page.locator(".wm-panel .wm-show-code").click()
    page.locator(".wm-panel .wm-settings-toggle").click()

    # Two turns with thinking: both stay in the transcript, the thinking under "Thought for N s".
    _send(page)
    _wait_state(page, ("done",))
    _send(page, "And the sea?")
    _wait_state(page, ("done",))
    turns = page.locator(".wm-panel .wm-turn")
    assert turns.count() == 2
    assert turns.nth(0).locator(".wm-user").inner_text() == "What is a river?"
    assert turns.nth(1).locator(".wm-user").inner_text() == "And the sea?"
    for i in range(2):
        assert turns.nth(i).locator(".wm-thinking").inner_text().startswith("Thought for ")
        assert turns.nth(i).locator(".wm-answer .jp-RenderedMarkdown").inner_text().strip()
        assert "done" in turns.nth(i).locator(".wm-footer").inner_text()
    assert _inside(_box(page), viewport), "Send left the window after two turns"
    turns.nth(1).locator(".wm-thinking").get_by_text("Thought for").click()  # the reader opens a thinking
    turns.nth(1).locator(".wm-thinking-text").wait_for()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "panel-chat.png"
    page.locator(".wm-panel").screenshot(path=str(shot))
    if os.environ.get("WCODE_UPDATE_SCREENSHOT"):  # refresh the README's picture only when asked
        shutil.copyfile(shot, ROOT / "docs" / "panel.png")

    # A long answer: the transcript follows it, then stops following once the reader scrolls up; Stop is neutral.
    page.locator(".wm-panel .wm-settings-toggle").click()
    page.locator(".wm-panel .lm-TabBar-tab", has_text="advanced").click()
    page.locator(".wm-panel .wm-extra-body textarea").fill('{"ignore_eos": true}')
    page.locator(".wm-panel .lm-TabBar-tab", has_text="sampling").click()
    page.locator(".wm-panel .wm-param-max_tokens input").fill("500000")
    page.locator(".wm-panel .wm-param-max_tokens input").press("Enter")
    page.locator(".wm-panel .wm-settings-toggle").click()
    _send(page, "Keep going.")
    _wait_state(page, ("answering",))
    transcript = page.locator(".wm-panel .wm-transcript")
    grown = transcript.evaluate("e => e.scrollHeight")
    deadline = time.monotonic() + 10
    while transcript.evaluate("e => e.scrollHeight") < grown + 400 and time.monotonic() < deadline:
        time.sleep(0.05)
    pinned = transcript.evaluate("e => Math.abs(e.scrollHeight - e.clientHeight - Math.abs(e.scrollTop))")
    assert transcript.evaluate("e => e.scrollTop") > -2, "the transcript must stay at the bottom while it streams"
    assert pinned > 0, "the transcript must have scrolled content"
    transcript.hover()
    page.mouse.wheel(0, -300)
    time.sleep(0.2)
    first = page.locator(".wm-panel .wm-turn").nth(2).locator(".wm-user")
    before = first.bounding_box()["y"]
    time.sleep(1.0)
    assert abs(first.bounding_box()["y"] - before) < 2, "scrolled up: the text read must stay where it is"
    page.locator(".wm-panel .wm-stop").click()
    assert _wait_state(page, ("stopped", "done", "error"), timeout=20) == "stopped"
    assert page.locator(".wm-panel .wm-error").inner_text().strip() == ""
    # (the footer is its own widget: its update may arrive a moment after the status line's)
    footer = wait_text(page.locator(".wm-panel .wm-turn").nth(2).locator(".wm-footer"), "stopped")
    assert footer.startswith("stopped") and "kept" in footer
