"""How much the panel's live display costs: a 20,000-token answer through the panel vs ``wm.chat`` alone.

Runs in a real kernel (nbclient), so every widget update is a real comm message over ZeroMQ; the local model
server runs in its own process (``wcode-magic serve``), so the notebook client receiving the widget messages in
this process does not slow the server down. Target: the panel within 1.2x of ``wm.chat`` (and of ``await wm.achat``) on the
same server, with at most 15 widget updates a second -- counted twice: the panel's own push counter, and an
observer on each streamed widget's value. Prints the numbers; it is not a pass/fail test.

    .venv/bin/python benchmarks/panel_stream.py [--tokens 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

from kernel_runs import kernel_runs  # benchmarks/kernel_runs.py: the timings run in a real kernel

KERNEL_CODE = """
import asyncio, json, time
import wcode_magic as wm

wm.configure(base_url={url!r}, model='local/ngram')
wm.chat('warm up', max_tokens=50)  # connections and the n-gram tables, for both paths
PROMPT = 'Tell me a long story.'

def busiest(stamps):  # the most changes in any one-second window
    return max((sum(1 for u in stamps if s <= u < s + 1.0) for s in stamps), default=0)

async def via_chat(seed):
    t = time.perf_counter()
    text = wm.chat(PROMPT, max_tokens={tokens}, seed=seed, extra_body={{'ignore_eos': True}}).text
    return text, {{}}, time.perf_counter() - t

async def via_achat(seed):
    t = time.perf_counter()
    text = (await wm.achat(PROMPT, max_tokens={tokens}, seed=seed, extra_body={{'ignore_eos': True}})).text
    return text, {{}}, time.perf_counter() - t

async def via_panel(seed):
    p = wm.panel(prompt=PROMPT, max_tokens={tokens}, seed=seed)
    p.extra_body.value = '{{"ignore_eos": true}}'
    changes = {{'answer': [], 'thinking': [], 'status': []}}
    def counter(name):
        return lambda _change: changes[name].append(time.perf_counter())
    p.turn.live.observe(counter('answer'), names='value')  # streamed as text, then
    p.answer.observe(counter('answer'), names='outputs')  # once as Markdown
    p.thinking_text.observe(counter('thinking'), names='value')
    p.status.observe(counter('status'), names='value')
    display(p)
    await asyncio.sleep(0.5)  # let the widgets' comm_open messages go out: a user types before pressing Send
    t = time.perf_counter()
    p.send_button.click()
    await p.wait()
    seconds = time.perf_counter() - t
    assert p.state == 'done' and p.response.usage.completion_tokens == {tokens}, (p.state, p.error.value)
    text = p.answer.outputs[0]['data']['text/markdown']
    assert text == p.response.text
    p.close()
    wm.configure(max_tokens=None, seed=None)
    stats = dict(pushes=p.updates, **{{k: len(v) for k, v in changes.items()}},
                 busiest=max(busiest(v) for v in changes.values()))
    return text, stats, seconds

paths = [via_chat, via_achat, via_panel]
results = []
for run in range({repeat}):
    row = {{}}
    texts = set()
    for path in paths[run % 3:] + paths[:run % 3]:  # rotate the order: no path always goes first
        text, stats, seconds = await path(run + 1)
        row[path.__name__[4:] + '_s'] = seconds
        row.update(stats)
        texts.add(text)
    assert len(texts) == 1, 'the three paths must give the same text'
    results.append(row)
print(json.dumps(results))
"""


def _serve() -> tuple[subprocess.Popen, str]:
    """The local model server in a subprocess on a free port; returns it and its base URL once it answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "wcode_magic.cli", "serve", "--port", str(port)]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/models", timeout=1).read()
            return server, url
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise RuntimeError("the local server did not start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    server, url = _serve()
    try:
        runs = kernel_runs(KERNEL_CODE.format(url=url, tokens=args.tokens, repeat=args.repeat))
    finally:
        server.terminate()
        server.wait(10)

    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    chat_s, achat_s, panel_s = med("chat_s"), med("achat_s"), med("panel_s")
    print(f"{args.tokens:,}-token answer from the local server, median of {len(runs)} runs in a real kernel")
    print(f"  wm.chat          {chat_s:7.3f} s   ({args.tokens / chat_s:,.0f} tok/s)")
    print(f"  await wm.achat   {achat_s:7.3f} s")
    print(f"  panel            {panel_s:7.3f} s")
    print(f"  panel / wm.chat  {panel_s / chat_s:7.2f}x   (target <= 1.2x)")
    print(f"  panel / achat    {panel_s / achat_s:7.2f}x")
    for r in runs:
        secs = r["panel_s"]
        print(
            f"  run: {secs:.3f} s, {r['pushes']} pushes = {r['pushes'] / secs:.1f}/s; widget value changes: "
            f"answer {r['answer']} ({r['answer'] / secs:.1f}/s), thinking {r['thinking']}, "
            f"status {r['status']} ({r['status'] / secs:.1f}/s); most in any 1 s window: "
            f"{r['busiest']}   (target <= 15)"
        )


if __name__ == "__main__":
    main()
