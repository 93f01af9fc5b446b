"""How much the panel's live display costs: a 20,000-token answer through the panel vs ``wm.chat`` alone.

Runs in a real kernel (nbclient), so every widget update is a real comm message over ZeroMQ; the local model
server runs in this process. Target: the panel within 1.2x of ``wm.chat`` (and of ``await wm.achat``) on the
same server, with at most 15 widget updates a second -- counted twice: the panel's own push counter, and an
observer on each streamed widget's value. Prints the numbers; it is not a pass/fail test.

    .venv/bin/python benchmarks/panel_stream.py [--tokens 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics

import nbformat
from nbclient import NotebookClient

from wcode_magic import local

KERNEL_CODE = """
import asyncio, json, time
import wcode_magic as wm

wm.configure(base_url={url!r}, model='local/ngram')
wm.chat('warm up', max_tokens=50)  # connections and the n-gram tables, for both paths
ARGS = dict(max_tokens={tokens}, seed=1, extra_body={{'ignore_eos': True}})
PROMPT = 'Tell me a long story.'
results = []
for _ in range({repeat}):
    t = time.perf_counter()
    r = wm.chat(PROMPT, **ARGS)
    chat_s = time.perf_counter() - t

    t = time.perf_counter()
    ra = await wm.achat(PROMPT, **ARGS)
    achat_s = time.perf_counter() - t

    p = wm.panel(prompt=PROMPT, max_tokens={tokens}, seed=1)
    p.extra_body.value = '{{"ignore_eos": true}}'
    changes = {{'answer': [], 'thinking': [], 'status': []}}
    def counter(name):
        def count(_change):
            changes[name].append(time.perf_counter())
        return count
    p.answer.observe(counter('answer'), names='outputs')
    p.thinking_text.observe(counter('thinking'), names='value')
    p.status.observe(counter('status'), names='value')
    display(p)
    t = time.perf_counter()
    p.send_button.click()
    await p.wait()
    panel_s = time.perf_counter() - t
    assert p.state == 'done' and p.response.usage.completion_tokens == {tokens}, (p.state, p.error.value)
    assert p.answer.outputs[0]['data']['text/markdown'] == r.text == p.response.text
    def busiest(stamps):  # the most changes in any one-second window
        return max((sum(1 for u in stamps if s <= u < s + 1.0) for s in stamps), default=0)
    results.append(dict(chat_s=chat_s, achat_s=achat_s, panel_s=panel_s, pushes=p.updates,
                        **{{k: len(v) for k, v in changes.items()}},
                        busiest={{k: busiest(v) for k, v in changes.items()}}))
    p.close()
    wm.configure(max_tokens=None, seed=None)
print(json.dumps(results))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    url = local.start()
    code = KERNEL_CODE.format(url=url, tokens=args.tokens, repeat=args.repeat)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    NotebookClient(nb, timeout=600, kernel_name="python3").execute()
    stream = [o for o in nb.cells[0].outputs if o.get("name") == "stdout"]
    runs = json.loads(stream[-1]["text"].strip().splitlines()[-1])

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
            f"{max(r['busiest'].values())}   (target <= 15)"
        )


if __name__ == "__main__":
    main()
