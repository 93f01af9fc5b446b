"""``%%compare`` in a real browser: JupyterLab on 127.0.0.1 at 1280x800, headless Debian Chromium via Playwright.

What only a browser shows: the three columns really grow at the same time on the page (their rendered lengths are
sampled every 20 ms), at most 15 redraws a second each, and a click on Stop all is handled while the cell is still
awaiting its runs (the streams never end by themselves: the local server's ``endless`` fault), leaving the partial
answers in place, marked stopped, and the DataFrame as the cell's result. The mid-stream screenshot goes to
``tests/artifacts/compare.png``, the stopped view to ``compare-end.png``.
"""

from __future__ import annotations

import itertools
import time

import pytest
from browserlab import ARTIFACTS, browser_page, cell, connect, lab, notebook, run_cell, wait_output, wait_text

pytestmark = pytest.mark.browser

COMPARE = (
    "%%compare -m local/ngram-thinking -p temperature=0.3,0.7,1.0 --effort low --max-tokens 100000 "
    "--header 'X-Wcode-Fault: endless' -o df\n"
    "Tell me about the river and the stars."
)
# One look at the view: each column's rendered answer length, its footer, and the view's status line.
LOOK = """() => Array.from(document.querySelectorAll('.wm-compare .wm-compare-col')).map((col) => {
  const answer = col.querySelector('.wm-compare-answer');
  const foot = col.querySelector('.wm-compare-foot');
  const error = col.querySelector('.wm-compare-error');
  return {answer: answer ? answer.textContent.length : 0, foot: foot ? foot.textContent : '',
          error: error ? error.textContent : '',
          overflows: answer ? answer.scrollHeight > answer.clientHeight + 4 : false,
          following: answer ? Math.abs(answer.scrollTop) < 4 : false};
})"""


# Whether the view fits its box: every column inside the view, none narrower than useful, no label or text
# cut off (an element whose content is wider than its box, bar the scrolling answer areas).
FIT = """() => {
  const view = document.querySelector('.wm-compare').getBoundingClientRect();
  const cols = Array.from(document.querySelectorAll('.wm-compare .wm-compare-col')).map((c) => c.getBoundingClientRect());
  const clipped = Array.from(document.querySelectorAll(
      '.wm-compare .wm-compare-stop, .wm-compare .wm-compare-head, .wm-compare .wm-compare-foot, .wm-compare .wm-compare-status'))
    .filter((e) => e.scrollWidth > e.clientWidth + 1).map((e) => e.className + ': ' + e.textContent);
  return {columns: cols.length, narrowest: Math.min(...cols.map((c) => c.width)),
          inside: cols.every((c) => c.left >= view.left - 1 && c.right <= view.right + 1), clipped};
}"""


def _notebook(local_url: str) -> dict:
    setup = (
        "%load_ext wcode_magic\nimport wcode_magic as wm\n"
        f"wm.configure(base_url={local_url!r}, model='local/ngram')\nprint('kernel ready')"
    )
    check = "print('FRAME', list(df['complete']), sorted({r.status for r in df['response']}), df['error'].isna().all())"
    return notebook(setup, COMPARE, check)


@pytest.fixture(scope="module")
def page(tmp_path_factory, local_url):
    root = tmp_path_factory.mktemp("lab")
    with (
        lab(root, {"compare.ipynb": _notebook(local_url)}) as url,
        browser_page(url + "/lab/tree/compare.ipynb", {"width": 1280, "height": 800}, shot="compare-end.png") as pg,
    ):
        yield pg


def _watch(page, seconds: float) -> list[tuple[float, list[int]]]:
    """(time, answer lengths) every 20 ms for ``seconds``."""
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        samples.append((time.monotonic(), [c["answer"] for c in page.evaluate(LOOK)]))
        time.sleep(0.02)
    return samples


def _cell_output(page, i: int, needle: str, timeout: float = 20) -> str:
    """The cell's own output area once it contains ``needle`` (the view's Output widgets have output areas too,
    so ``browserlab.wait_output`` would match several)."""
    return wait_text(cell(page, i).locator(".jp-Cell-outputArea"), needle, timeout)


def test_three_columns_stream_at_once_and_stop_all_stops_them_mid_stream(page):
    page.locator(".jp-Notebook .jp-Cell").first.wait_for()
    connect(page)
    run_cell(page, 1)
    cols = page.locator(".wm-compare .wm-compare-col")
    deadline = time.monotonic() + 60
    while cols.count() < 3 or min(c["answer"] for c in page.evaluate(LOOK)) == 0:
        assert time.monotonic() < deadline, f"the columns never started: {page.evaluate(LOOK)}"
        time.sleep(0.05)
    assert cols.count() == 3
    heads = [cols.nth(i).locator(".wm-compare-head").inner_text() for i in range(3)]
    assert all("local/ngram-thinking" in h for h in heads) and "temperature 0.7" in heads[1]

    samples = _watch(page, 2.0)
    # concurrently: in every quarter of the 2 s each of the three columns grew
    start = samples[0][0]
    for quarter in range(4):
        window = [s for t, s in samples if start + quarter * 0.5 <= t < start + (quarter + 1) * 0.5]
        grew = [window[-1][i] > window[0][i] for i in range(3)]
        assert all(grew), f"quarter {quarter}: columns grew {grew}"
    # at most 15 redraws a second per column: the rendered length changes no more often than that
    for i in range(3):
        changes = sum(1 for a, b in itertools.pairwise(samples) if b[1][i] != a[1][i])
        assert 10 <= changes <= 2 * 15 + 1, f"column {i} changed {changes} times in 2 s"

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "compare.png"))  # mid-stream

    # each answer box is bounded and follows its stream: scrolled to its growing end
    deadline = time.monotonic() + 15
    looks = page.evaluate(LOOK)
    while not all(c["overflows"] for c in looks):
        assert time.monotonic() < deadline, f"the answers never filled their boxes: {looks}"
        time.sleep(0.1)
        looks = page.evaluate(LOOK)
    time.sleep(0.5)  # it grew on
    looks = page.evaluate(LOOK)
    assert all(c["following"] for c in looks), looks

    page.locator(".wm-compare .wm-compare-stop").click()
    clicked = time.monotonic()
    _cell_output(page, 1, "complete")  # the DataFrame: the cell returned after the click
    assert time.monotonic() - clicked < 10
    # the status line was set before the cell returned; on a busy machine the browser may draw it a moment later
    _cell_output(page, 1, "3 runs · 3 stopped", timeout=5)
    stopped = page.evaluate(LOOK)
    assert all(c["answer"] > 0 and c["foot"].startswith("stopped") and not c["error"] for c in stopped), stopped
    time.sleep(1.0)
    assert [c["answer"] for c in page.evaluate(LOOK)] == [c["answer"] for c in stopped]  # nothing grows after

    run_cell(page, 2)
    assert "FRAME [False, False, False] ['stopped'] True" in wait_output(page, 2, "FRAME")

    # at 800 px wide (the file browser open) the columns wrap rather than shrink, and nothing overflows its box
    page.set_viewport_size({"width": 800, "height": 800})
    time.sleep(0.5)
    fit = page.evaluate(FIT)
    assert fit["columns"] == 3 and fit["inside"] and fit["narrowest"] >= 170, fit
    assert not fit["clipped"], fit
    cell(page, 1).scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "compare-800.png"))
