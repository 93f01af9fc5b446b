"""The panel in a real browser: JupyterLab on 127.0.0.1 and headless Debian Chromium driven by Playwright.

What only a browser shows: widget updates really stream while no cell runs, the Stop click is handled in the
middle of a stream, and what the student sees equals what ``wm.chat`` gives for the same request. The local
model server runs in this process; JupyterLab and its kernel are real subprocesses. Screenshots go to
``tests/artifacts/``; the README's picture (``docs/panel.png``) is refreshed by ``test_browser_chat.py``.
"""

from __future__ import annotations

import hashlib
import time

import pytest
from browserlab import (
    ARTIFACTS,
    browser_page,
    cell,
    connect,
    lab,
    notebook,
    run_cell,
    wait_output,
    wait_text,
)

from wcode_magic.core import catalog
from wcode_magic.notebook.panel import model_label

pytestmark = pytest.mark.browser


PROMPT = "Tell me about the river and the stars."
TEMPERATURE = "0.3"
SEED = "7"
ANSWER_TOKENS = "12000"
THINKING_BUDGET = 20000  # the local model thinks ~0.75-1x its budget: long enough to watch it grow
STOP_TOKENS = "500000"
# the server paces the stream (the local model alone writes 7,000-40,000 tokens a second, machine by machine): the
# thinking and the answer then stream for seconds, long enough for the page to see each grow; the text is the same
PACE = {"X-Wcode-Fault": "pace=4000"}

# One look at the panel from the page: lengths of the newest turn's thinking and answer as rendered (plain text
# while it streams, Markdown once it ends), and the status.
LOOK = """() => {
  const turns = document.querySelectorAll('.wm-panel .wm-turn');
  const turn = turns[turns.length - 1];
  const thinking = turn.querySelector('.wm-thinking-text');
  const answer = turn.querySelector('.wm-answer .jp-RenderedMarkdown') || turn.querySelector('.wm-answer-text');
  const status = document.querySelector('.wm-panel .wm-status');
  return {thinking: thinking ? thinking.textContent.length : 0,
          answer: answer ? answer.textContent.length : 0,
          status: status ? status.textContent : ''};
}"""


def _notebook(local_url: str) -> dict:
    setup = (
        "import wcode_magic as wm\n"
        f"wm.configure(base_url={local_url!r}, model='local/ngram', "
        f"reasoning={{'enabled': True, 'max_tokens': {THINKING_BUDGET}}})\n"
        "print('kernel ready')"
    )
    show = f"wm.panel(headers={PACE!r})"
    compare = (
        "import hashlib\n"
        "from IPython.display import Markdown, display\n"
        "first = wm.last()\n"
        f"same = wm.chat({PROMPT!r}, model='local/ngram-thinking', temperature={TEMPERATURE}, seed={SEED}, "
        f"max_tokens={ANSWER_TOKENS}, extra_body={{'ignore_eos': True}})\n"
        "print('SAME', first.text == same.text, first.reasoning == same.reasoning, "
        "hashlib.sha256(same.reasoning.encode()).hexdigest())\n"
        "display(Markdown(same.text))"
    )
    check_stop = "r = wm.last()\nprint('LAST', r.status, len(r.text) > 0, r.request['max_tokens'])"

    return notebook(setup, show, compare, check_stop)


@pytest.fixture(scope="module")
def page(tmp_path_factory, local_url):
    root = tmp_path_factory.mktemp("lab")
    with (
        lab(root, {"panel.ipynb": _notebook(local_url)}) as url,
        browser_page(url + "/lab/tree/panel.ipynb", {"width": 1300, "height": 2200}) as pg,
    ):
        yield pg


def _state(look: dict) -> str:
    return look["status"].split(" · ")[0].strip()


def _watch(page, until: tuple[str, ...], timeout: float = 60) -> list[dict]:
    """Look at the panel every 20 ms until its state is one of ``until``."""
    looks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        look = page.evaluate(LOOK)
        looks.append(look)
        if _state(look) in until:
            return looks
        time.sleep(0.02)
    raise AssertionError(f"the panel never reached {until}; last look {looks[-1]}")


def _set_text(page, selector: str, value: str) -> None:
    box = page.locator(selector)
    box.fill(value)
    box.press("Enter")


def test_panel_streams_in_the_browser_and_stops_mid_stream(page):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator(".jp-Notebook .jp-Cell").first.wait_for()
    connect(page)
    run_cell(page, 1)
    panel = page.locator(".wm-panel")
    panel.wait_for()
    page.locator(".wm-panel .wm-settings-toggle").click()  # the settings start closed

    # Model, temperature slider (its editable readout), seed, answer length, extra body, prompt.
    thinking_model = model_label(catalog.lookup("local/ngram-thinking"))
    page.locator(".wm-panel .wm-model select").select_option(label=thinking_model)
    readout = page.locator(".wm-panel .wm-param-temperature .widget-readout")
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(TEMPERATURE)
    page.keyboard.press("Enter")
    _set_text(page, ".wm-panel .wm-param-seed input", SEED)
    _set_text(page, ".wm-panel .wm-param-max_tokens input", ANSWER_TOKENS)
    page.locator(".wm-panel .lm-TabBar-tab", has_text="advanced").click()
    page.locator(".wm-panel .wm-extra-body textarea").fill('{"ignore_eos": true}')
    page.locator(".wm-panel .wm-prompt textarea").fill(PROMPT)
    page.locator(".wm-panel .lm-TabBar-tab", has_text="sampling").click()
    row = page.locator(".wm-panel .wm-param-temperature").locator("xpath=..")
    assert "sent" in row.inner_text()  # the slider moved off its default, so it will be sent

    page.locator(".wm-panel .wm-show-code").click()
    code = wait_text(page.locator(".wm-panel .wm-code"), "wm.chat(")
    assert f"--temperature {TEMPERATURE}" in code and f"--seed {SEED}" in code
    assert f"temperature={TEMPERATURE}" in code and f"seed={SEED}" in code
    page.locator(".wm-panel .wm-show-code").click()

    page.locator(".wm-panel .wm-send").click()
    looks = _watch(page, ("done", "error", "stopped"))
    thinking_growth = sorted({lk["thinking"] for lk in looks if lk["thinking"] and not lk["answer"]})
    assert len(thinking_growth) >= 2, f"thinking did not grow across two looks: {looks[:40]}"
    answer_growth = sorted({lk["answer"] for lk in looks if lk["answer"]})
    assert len(answer_growth) >= 2, f"the answer did not grow across two looks: {looks[-30:]}"
    first_answer = next(i for i, lk in enumerate(looks) if lk["answer"])
    assert all(not lk["answer"] for lk in looks[:first_answer])  # thinking came first
    assert _state(looks[-1]) == "done"
    page.add_style_tag(content=".Toastify { display: none !important; }")  # JupyterLab's news prompt
    page.locator(".wm-panel .wm-thinking").get_by_text("Thought for").click()  # show the collapsed thinking too
    panel.screenshot(path=str(ARTIFACTS / "panel-done.png"))

    # The same request through wm.chat gives the same text: compare the rendered text of both, and the thinking.
    run_cell(page, 2)
    said = wait_output(page, 2, "SAME")
    words = said.split("SAME", 1)[1].split()
    assert words[:2] == ["True", "True"], said
    thinking_dom = page.locator(".wm-panel .wm-thinking-text").text_content()
    assert hashlib.sha256(thinking_dom.encode()).hexdigest() == words[2]
    shown = page.locator(".wm-panel .wm-answer .jp-RenderedMarkdown").text_content()
    expected = cell(page, 2).locator(".jp-RenderedMarkdown").last.text_content()
    assert shown == expected and len(shown) > 1000

    # Stop mid-stream: a long answer, Stop once it is flowing; the status says stopped and the text stays.
    _set_text(page, ".wm-panel .wm-param-max_tokens input", STOP_TOKENS)
    page.locator(".wm-panel .wm-prompt textarea").fill("Keep going.")
    page.locator(".wm-panel .wm-send").click()
    _watch(page, ("waiting", "thinking", "answering"))  # the previous "done" is still shown for a moment
    looks = _watch(page, ("answering", "done", "error"))
    assert _state(looks[-1]) == "answering"
    page.locator(".wm-panel .wm-stop").click()
    looks = _watch(page, ("stopped", "done", "error"), timeout=20)
    assert _state(looks[-1]) == "stopped", looks[-1]
    page.screenshot(path=str(ARTIFACTS / "panel-stopped-page.png"), full_page=True)
    panel.screenshot(path=str(ARTIFACTS / "panel-stopped.png"))
    kept = page.evaluate(LOOK)["answer"]
    time.sleep(1.0)
    after = page.evaluate(LOOK)
    assert after["answer"] == kept and kept > 0, "the partial text must stay, and nothing more arrive"
    assert "kept" in after["status"]
    run_cell(page, 3)
    said = wait_output(page, 3, "LAST")
    assert f"LAST stopped True {STOP_TOKENS}" in said
