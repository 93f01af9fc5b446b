"""Theme, fit and help measured on the rendered page: JupyterLab Light and Dark, 1280x800 and 800x800, Chromium.

One JupyterLab, one page: the notebook shows the panel (``logprobs=True, top_logprobs=5``), a token heat map and a
thinking ``%%chat``. While the ``%%chat`` thinking streams, its header is clicked to collapse it: one second (about
fifteen updates) later it must still be collapsed. Then, for each theme and width: every visible text inside the
panel, the heat map and the ``%%chat`` output has contrast >= 4.5:1 against its effective background (the first
opaque background up the tree, translucent layers composited); no button, label or tab truncates its text; no
control sticks out of the panel or overflows its own box; every slider track is >= 100 px; the ten heat-map steps
are distinct and readable; lines of the heat map break between words only. Screenshots: tests/artifacts/theme-*.png.
"""

from __future__ import annotations

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
    use_theme,
    wait_text,
)

pytestmark = pytest.mark.browser

# seconds of thinking to collapse it in, on any machine: the local model thinks 7,000-40,000 tokens a second as fast
# as it can, so the server paces it (X-Wcode-Fault: pace) to 3,000; it stops at a sentence after 3/4 of its budget
THINKING_TOKENS = 12000
THINKING_PACE = 3000
SIZES = ((1280, 800), (800, 800))

# JavaScript helpers shared by the measurements: colour parsing, compositing, WCAG contrast, visibility.
HELPERS = """
const parse = (c) => {
  const m = /rgba?\\(([^)]+)\\)/.exec(c || '');
  if (!m) return null;
  const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
  return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
};
const over = (top, bottom) => [0, 1, 2].map((i) => top[i] * top[3] + bottom[i] * (1 - top[3])).concat([1]);
const background = (el) => {
  const layers = [];
  for (let e = el; e; e = e.parentElement) {
    const c = parse(getComputedStyle(e).backgroundColor);
    if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
  }
  let bg = layers.length && layers[layers.length - 1][3] >= 1 ? layers.pop() : [255, 255, 255, 1];
  for (let i = layers.length - 1; i >= 0; i--) bg = over(layers[i], bg);
  return bg;
};
const lum = (c) => {
  const f = (v) => { v /= 255; return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
};
const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
const visible = (el) => {
  const r = el.getBoundingClientRect();
  if (!r.width || !r.height) return false;
  for (let e = el; e; e = e.parentElement) {
    const s = getComputedStyle(e);
    if (s.display === 'none' || s.visibility === 'hidden' || Number(s.opacity) === 0) return false;
  }
  return true;
};
// WCAG exempts inactive controls: a disabled Stop button need not pass.
const inactive = (el) => !!el.closest('[disabled], :disabled, .mod-disabled, .jupyter-widgets-disabled');
const describe = (el) => `${el.tagName.toLowerCase()}.${[...el.classList].join('.')} "${(el.innerText || el.value || '').trim().slice(0, 40)}"`;
const scope = (s) => s.startsWith('cell:')
  ? document.querySelectorAll('.jp-Notebook .jp-Cell')[Number(s.slice(5))].querySelector('.jp-Cell-outputArea')
  : document.querySelector(s);
"""

CONTRAST = (
    "(scopes) => {"
    + HELPERS
    + """
  const bad = []; let checked = 0;
  for (const s of scopes) {
    const root = scope(s);
    if (!root) { bad.push(['missing', s]); continue; }
    root.scrollIntoView();
    for (const el of [root, ...root.querySelectorAll('*')]) {
      if (['STYLE', 'SCRIPT', 'OPTION'].includes(el.tagName)) continue;
      const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.data.trim());
      const field = ['INPUT', 'TEXTAREA', 'SELECT'].includes(el.tagName) && (el.value || '').trim();
      if (!(own || field) || !visible(el) || inactive(el)) continue;
      const bg = background(el);
      let fg = parse(getComputedStyle(el).color);
      if (fg[3] < 1) fg = over(fg, bg);
      const r = ratio(fg, bg);
      checked += 1;
      if (r < 4.5) bad.push([s, describe(el), r.toFixed(2), fg.map(Math.round).join(','), bg.map(Math.round).join(',')]);
    }
  }
  return {checked, bad};
}"""
)

FIT = (
    "() => {"
    + HELPERS
    + """
  const panel = document.querySelector('.wm-panel');
  panel.scrollIntoView();
  const box = panel.getBoundingClientRect();
  const bad = []; const tracks = [];
  const out = panel.closest('.jp-OutputArea-output') || panel.parentElement;
  if (panel.getBoundingClientRect().right > out.getBoundingClientRect().right + 1) bad.push(['panel wider than its output']);
  for (const el of panel.querySelectorAll('.jupyter-button, .widget-label, .lm-TabBar-tabLabel, .widget-readout')) {
    if (visible(el) && el.scrollWidth > el.clientWidth + 1) bad.push(['truncated', describe(el), el.scrollWidth, el.clientWidth]);
  }
  for (const el of panel.querySelectorAll('.jupyter-widgets')) {
    if (!visible(el)) continue;
    const r = el.getBoundingClientRect();
    if (r.right > box.right + 1 || r.left < box.left - 1) bad.push(['outside the panel', describe(el), r.left, r.right, box.right]);
    const scrolls = ['auto', 'scroll'].includes(getComputedStyle(el).overflowX);
    if (!scrolls && el.scrollWidth > el.clientWidth + 1) bad.push(['overflows', describe(el), el.scrollWidth, el.clientWidth]);
    const scrollsY = ['auto', 'scroll'].includes(getComputedStyle(el).overflowY);
    if (!scrollsY && el.scrollHeight > el.clientHeight + 1) bad.push(['overflows downwards', describe(el), el.scrollHeight, el.clientHeight]);
  }
  const rows = [...panel.querySelectorAll('.widget-hbox')].filter(visible).map((el) => [el, el.getBoundingClientRect()]);
  for (const [a, ra] of rows) for (const [b, rb] of rows) {
    if (a === b || a.contains(b) || b.contains(a) || a.parentElement !== b.parentElement) continue;
    if (ra.top < rb.bottom - 1 && rb.top < ra.bottom - 1 && ra.left < rb.right - 1 && rb.left < ra.right - 1) bad.push(['rows overlap', describe(a), describe(b)]);
  }
  for (const el of panel.querySelectorAll('.widget-slider .slider-container')) {
    if (visible(el)) tracks.push(Math.round(el.getBoundingClientRect().width));
  }
  return {bad, tracks};
}"""
)

HEAT = (
    "() => {"
    + HELPERS
    + """
  const all = document.querySelectorAll('.wm-tk');
  const tk = all[all.length - 1];  // the heat-map cell's (the panel's answer has one too)
  tk.scrollIntoView();
  const steps = [];
  for (let i = 0; i < 10; i++) {
    const s = document.createElement('span'); s.className = 'b' + i; s.textContent = 'x'; tk.appendChild(s);
    const st = getComputedStyle(s);
    steps.push({bg: st.backgroundColor, ratio: ratio(parse(st.color), background(s))});
    s.remove();
  }
  // a line that starts mid-word: a letter or digit on both sides of the break
  const chars = [];
  const walker = document.createTreeWalker(tk, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const n = walker.currentNode;
    if (n.parentElement.closest('.wm-note, style')) continue;
    for (let i = 0; i < n.length; i++) {
      if (n.data[i] === '\\n') continue;
      const r = document.createRange(); r.setStart(n, i); r.setEnd(n, i + 1);
      const rect = r.getClientRects()[0];
      if (rect) chars.push([n.data[i], rect.top]);
    }
  }
  const word = /[\\p{L}\\p{N}]/u; let lines = 1; const midword = [];
  for (let i = 1; i < chars.length; i++) {
    if (chars[i][1] > chars[i - 1][1] + 4) {
      lines += 1;
      if (word.test(chars[i - 1][0]) && word.test(chars[i][0])) midword.push(chars.slice(Math.max(0, i - 8), i + 8).map((c) => c[0]).join(''));
    }
  }
  return {steps, lines, midword};
}"""
)

# Help on hover: each control (its box, its label or its input) and each reset button carries a title; returns
# the ones without. Text views (HTML), the prompt box (its placeholder says what to do) and the action buttons
# need none.
HELP = """() => [...document.querySelectorAll('.wm-panel .widget-inline-hbox:not(.wm-prompt):not(.widget-html), .wm-panel .wm-reset')]
  .filter((el) => el.getBoundingClientRect().width > 0)
  .filter((el) => ![el, ...el.querySelectorAll('[title]')]
    .some((e) => (e.getAttribute('title') || '').trim().length > 10)
      && !(el.previousElementSibling && el.previousElementSibling.matches('.wm-name')
           && el.previousElementSibling.querySelector('[title]')))
  .map((el) => `${[...el.classList].filter((c) => c.startsWith('wm-')).join('.')} "${el.innerText.trim().slice(0, 30)}"`)"""

WRAP = """(sel) => [...document.querySelectorAll(sel)].map((el) => {
  const s = getComputedStyle(el); return [s.whiteSpace, s.wordBreak, s.overflowWrap];
})"""

COLLAPSE = """() => {
  const acc = document.querySelector('.wm-chat-thinking');
  if (!acc) return null;
  const c = acc.querySelector('.jupyter-widget-Collapse');
  const text = acc.querySelector('.wm-thinking-text');
  return {open: c.classList.contains('jupyter-widget-Collapse-open'), chars: text ? text.textContent.length : 0};
}"""


def _notebook(local_url: str) -> dict:
    setup = (
        "%load_ext wcode_magic\n"
        "import wcode_magic as wm\n"
        f"wm.configure(base_url={local_url!r}, model='local/ngram')\n"
        "print('kernel ready')"
    )
    heat = (
        "r = wm.chat('Tell me about the river and the stars.', model='local/ngram', logprobs=True, top_logprobs=5, max_tokens=300, seed=3,\n"
        "           extra_body={'ignore_eos': True})\n"
        "r.show_tokens()"
    )
    chat = (
        f"%%chat -m local/ngram-thinking --seed 1 --max-tokens {THINKING_TOKENS + 200} "
        f'--reasoning \'{{"enabled": true, "max_tokens": {THINKING_TOKENS}}}\' '
        f"--header 'X-Wcode-Fault: pace={THINKING_PACE}'\n"
        "Why do rivers bend?"
    )
    panel = (
        "wm.panel(model='local/ngram-thinking', logprobs=True, top_logprobs=5, max_tokens=150, seed=2,\n"
        "         prompt='Why is the sea salty?')"
    )
    compare = "%%compare -m local/ngram -m local/ngram-thinking --max-tokens 300 --seed 1;\nWhy do rivers bend?"
    return notebook(setup, panel, heat, chat, compare)


@pytest.fixture(scope="module")
def page(tmp_path_factory, local_url):
    root = tmp_path_factory.mktemp("lab")
    with (
        lab(root, {"theme.ipynb": _notebook(local_url)}, theme="light") as url,
        browser_page(url + "/lab/tree/theme.ipynb", {"width": 1280, "height": 800}, shot="theme-last.png") as pg,
    ):
        pg.add_style_tag(content=".Toastify { display: none !important; }")  # JupyterLab's news prompt
        yield pg


def _run_notebook(page) -> None:
    connect(page)
    run_cell(page, 1)
    page.locator(".wm-panel").wait_for()
    # one turn in the transcript (question, thinking, answer, heat map, footer) and the settings open: all measured
    page.locator(".wm-panel .wm-send").click()
    wait_text(page.locator(".wm-panel .wm-status"), "done", timeout=60)
    page.locator(".wm-panel .wm-settings-toggle").click()
    page.locator(".wm-panel .wm-settings .lm-TabBar-tab").first.wait_for()
    run_cell(page, 2)
    cell(page, 2).locator(".wm-tk").wait_for()


def _collapse_mid_stream(page) -> None:
    run_cell(page, 3)
    deadline = time.monotonic() + 60
    look = None
    while time.monotonic() < deadline:
        look = page.evaluate(COLLAPSE)
        if look and look["open"] and look["chars"] > 200:
            break
        time.sleep(0.05)
    assert look and look["open"], f"the thinking never streamed open: {look}"
    page.locator(".wm-chat-thinking .jupyter-widget-Collapse-header").click()
    before = page.evaluate(COLLAPSE)
    assert before and not before["open"], "the click collapsed it"
    time.sleep(1.0)
    after = page.evaluate(COLLAPSE)
    assert after is not None, "the thinking finished within the second: raise THINKING_TOKENS or lower the pace"
    assert after["chars"] > before["chars"], "updates kept arriving"
    assert not after["open"], "the reader's collapse was undone by an update"
    # the footer: the stream is done, the output static (the cell's own output area: the live one nests others)
    wait_text(cell(page, 3).locator(".jp-Cell-outputArea"), "tokens", timeout=90)
    details = cell(page, 3).locator("details")
    assert details.count() == 1 and details.evaluate("d => d.open") is False, "the static view keeps it closed"


def _measure(page, theme: str, width: int, height: int) -> None:
    page.set_viewport_size({"width": width, "height": height})
    time.sleep(0.5)
    # a refusal and an invalid box, so error colours are on screen too
    seed = page.locator(".wm-panel .wm-param-seed input")
    seed.fill("abc")
    seed.press("Enter")
    page.locator(".wm-panel .wm-invalid").wait_for()
    where = f"{theme} {width}x{height}"
    page.screenshot(path=str(ARTIFACTS / f"theme-{theme}-{width}.png"))
    page.locator(".wm-panel").screenshot(path=str(ARTIFACTS / f"theme-{theme}-{width}-panel.png"))

    tabs = page.locator(".wm-panel .lm-TabBar-tab")
    for i in range(max(1, tabs.count())):
        if tabs.count():
            tabs.nth(i).click()
        fit = page.evaluate(FIT)
        assert not fit["bad"], f"{where}, tab {i}: {fit['bad']}"
        assert all(t >= 100 for t in fit["tracks"]), f"{where}, tab {i}: slider tracks {fit['tracks']}"
        assert page.evaluate(HELP) == [], f"{where}, tab {i}: controls without help"
        contrast = page.evaluate(CONTRAST, [".wm-panel"])
        assert contrast["checked"] > 10 and not contrast["bad"], f"{where}, tab {i}: {contrast['bad']}"
    if tabs.count():
        tabs.first.click()

    contrast = page.evaluate(CONTRAST, [".wm-tk", "cell:3", "cell:4"])  # heat map, %%chat, %%compare columns
    assert contrast["checked"] > 20 and not contrast["bad"], f"{where}: {contrast['bad']}"
    heat = page.evaluate(HEAT)
    assert len({s["bg"] for s in heat["steps"]}) == 10, f"{where}: heat steps not distinct: {heat['steps']}"
    assert all(s["ratio"] >= 4.5 for s in heat["steps"]), f"{where}: {heat['steps']}"
    assert heat["lines"] > 2 and not heat["midword"], f"{where}: lines broken mid-word: {heat['midword']}"
    cell(page, 2).locator(".wm-tk").screenshot(path=str(ARTIFACTS / f"theme-{theme}-{width}-heatmap.png"))
    seed.fill("")
    seed.press("Enter")


def test_theme_fit_and_the_readers_choice(page):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    _run_notebook(page)
    _collapse_mid_stream(page)

    # words wrap whole in the panel's thinking text and the heat map (a long word may still break)
    styles = page.evaluate(
        "() => { const p = document.createElement('pre'); p.className = 'wm-thinking-text';"
        " document.querySelector('.wm-panel').appendChild(p); const s = getComputedStyle(p);"
        " const out = [s.whiteSpace, s.wordBreak, s.overflowWrap]; p.remove(); return out; }"
    )
    assert styles == ["pre-wrap", "normal", "break-word"], styles
    run_cell(page, 4)  # %%compare: two finished columns (header, thinking, answer, footer) measured below too
    wait_text(cell(page, 4).locator(".wm-compare-status-text"), "2 done", timeout=60)
    wraps = page.evaluate(WRAP, ".wm-tk")  # the cell's heat map and the panel's
    assert len(wraps) == 2 and all(w == ["pre-wrap", "normal", "break-word"] for w in wraps), wraps

    for theme in ("light", "dark"):
        use_theme(page, theme)
        for width, height in SIZES:
            _measure(page, theme, width, height)
