"""The cost check in a real kernel: ``%wcode budget``, and a call over the cap asked about in the running cell
(answered on stdin, as JupyterLab's input box answers it), refused where no answer is possible (a notebook run by
nbclient), all against the local model answering under wcode ids (nothing is sent unless it is approved)."""

from __future__ import annotations

import json
import time

import pytest
from magics_kernel import CellRun, Kernel
from priced_server import PricedServer

pytestmark = pytest.mark.timeout(180)


def run(k: Kernel, code: str, **kw) -> CellRun:
    """``k.run``, again if ipykernel aborted it: a request that arrives right after a failed cell, before the kernel
    has stopped aborting its queue (stop_on_error), is answered "aborted" without running (no execute_input).
    Success is read from what the cell published (no error), not from the shell reply the harness reads next,
    which under load was seen to be the previous cell's."""
    for _ in range(5):
        result = k.run(code, **kw)
        if result.of("execute_input"):
            return result
        time.sleep(0.2)
    raise AssertionError(f"the kernel aborted {code!r} five times")


def ok(k: Kernel, code: str, **kw) -> CellRun:
    result = run(k, code, **kw)
    assert result.error is None, (code, result.error, result.stderr)
    return result


def value(k: Kernel, expr: str):
    return json.loads(ok(k, f"import json as _j; print(_j.dumps({expr}))").stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def priced():
    server = PricedServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def k(tmp_path_factory, priced):
    kernel = Kernel(str(tmp_path_factory.mktemp("budget-kernel")))
    ok(kernel, f"%load_ext wcode_magic\nimport wcode_magic as wm\nwm.configure(base_url={priced.base_url!r})")
    yield kernel
    kernel.close()


def test_budget_commands_set_show_and_remove_the_cap(k: Kernel) -> None:
    assert ok(k, "%wcode budget").stdout.startswith("No budget cap (¥0 spent this session)")
    assert ok(k, "%wcode budget 5").stdout.startswith("Budget ¥5: ¥0 spent, ¥5 left.")
    assert value(k, "wm.SESSION.budget") == 5.0
    bad = run(k, "%wcode budget -2")
    assert "budget=-2.0 is not allowed: budget takes an amount in CNY above 0" in bad.error["evalue"]
    assert ok(k, "%wcode budget off").stdout.startswith("No budget cap") and value(k, "wm.SESSION.budget") is None
    assert ok(k, "%wcode set budget=3").stdout.startswith("Set budget=3.0")
    assert "budget        ¥3 (%wcode budget shows what is left)" in ok(k, "%wcode config").stdout
    assert "warn_prompt_tokens" in ok(k, "%wcode help").stdout


def test_a_call_over_the_cap_asks_in_the_cell_and_is_sent_only_when_approved(k: Kernel, priced) -> None:
    ok(k, "%wcode budget 0.0001")
    cell = "%%chat -m r1 --max-tokens 20\nhi"
    before = priced.count
    refused = run(k, cell)  # no stdin (as nbclient runs it): nobody can answer, so it is refused
    assert "BudgetError" in refused.text() and "No one could approve it here" in refused.text()
    declined = run(k, cell, stdin="n")
    assert "Not sent: you declined" in declined.text() and priced.count == before
    sent = run(k, cell, stdin="y")
    assert sent.error is None and priced.count == before + 1 and priced.models[-1] == "deepseek-r1"
    # a plain (blocking) cell asks the same way
    sync = run(k, "r = wm.chat('hi', model='qwen3', max_tokens=20); print(r.cost > 0)", stdin="yes")
    assert sync.stdout.strip().endswith("True") and priced.count == before + 2
    assert value(k, "wm.SESSION.budget") == 0.0001  # approving one call does not raise the cap


def test_a_compare_over_the_cap_asks_once_for_all_its_runs(k: Kernel, priced) -> None:
    ok(k, "%wcode budget 0.0001")
    before = priced.count
    code = "df = wm.compare('hi', models=['r1', 'qwen3'], max_tokens=20, progress=False); print(df.error.isna().all())"
    result = run(k, code, stdin="y")
    assert result.stdout.startswith("Worst case: 2 runs") and result.stdout.strip().endswith("True")
    assert priced.count == before + 2


def test_a_compare_cell_over_the_cap_asks_before_its_columns_send_anything(k: Kernel, priced) -> None:
    ok(k, "%wcode budget 0.0001")
    cell = "%%compare -m r1 -m qwen3 --max-tokens 20 -o cmp\nhi"
    before = priced.count
    refused = run(k, cell)  # nobody can answer: refused, nothing sent
    assert "BudgetError" in refused.text() and priced.count == before
    sent = run(k, cell + "\n", stdin="y")
    assert "Worst case: 2 runs" in sent.stdout and sent.error is None
    assert value(k, "cmp.error.isna().all().item()") is True and priced.count == before + 2


def test_in_a_notebook_run_by_nbclient_a_call_over_the_cap_is_refused(priced) -> None:
    import nbformat
    from nbclient import NotebookClient

    cells = [
        f"import wcode_magic as wm\nwm.configure(base_url={priced.base_url!r}, budget=0.0001)",
        "try:\n    wm.chat('hi', model='r1', max_tokens=20)\nexcept wm.BudgetError as e:\n    print(e.message)",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    before = priced.count
    NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    text = nb.cells[1].outputs[0]["text"]
    assert text.startswith("Not sent: The worst case of this call is ¥") and "No one could approve it here" in text
    assert priced.count == before


def test_a_long_prompt_on_a_priced_model_is_asked_about_in_the_cell_once(k: Kernel, priced) -> None:
    ok(k, "%wcode budget off\n%wcode set warn_prompt_tokens=20")
    before = priced.count
    cell = "%%chat --new -m qwen3 --max-tokens 5\n" + "please read all of this " * 10
    declined = run(k, cell, stdin="n")
    assert "Not sent: you declined. This prompt is about 84 tokens (over warn_prompt_tokens=20)" in declined.text()
    assert priced.count == before
    asked = run(k, cell, stdin="y")
    assert asked.error is None and priced.count == before + 1
    again = run(k, "%%chat --max-tokens 5\nand more")  # the same conversation, longer: not asked again
    assert again.error is None and priced.count == before + 2
    ok(k, "%wcode unset warn_prompt_tokens")
