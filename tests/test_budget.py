"""The cost check before spending (core/budget.py): the worst-case estimate from the catalog's prices, and the
session's cap enforced before anything is sent, over real HTTP to the local model answering under wcode ids."""

from __future__ import annotations

import asyncio
import math
import warnings

import pytest
from priced_server import PricedServer

import wcode_magic as wm
from wcode_magic.core import budget, catalog
from wcode_magic.core.errors import BudgetError, WcodeWarning
from wcode_magic.notebook import commands

R1 = catalog.lookup("r1")
QWEN3 = catalog.lookup("qwen3")


@pytest.fixture(scope="module")
def priced():
    server = PricedServer()
    yield server
    server.stop()


def _body(model: str, content: str, **kw) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": content}], **kw}


# -- the estimate, pure --------------------------------------------------------------------------------------
def test_latin_text_counts_three_characters_a_token_and_cjk_one_token_a_character():
    assert budget.text_tokens("a" * 300) == 100
    assert budget.text_tokens("a" * 301) == 101
    assert budget.text_tokens("你好世界" * 50) == 200
    assert budget.text_tokens("猫 cat") == 1 + 2  # one wide character, then " cat" (4 ASCII) rounded up


def test_the_worst_case_is_prompt_times_input_price_plus_max_tokens_times_output_price():
    run = budget.run_cost(_body("r1", "x" * 3000, max_tokens=500))
    assert (run.model, run.prompt_tokens, run.max_tokens) == ("deepseek-r1", 4 + 1000, 500)
    assert (R1.price_in, R1.price_out) == (0.005, 0.0175)  # seeds/001, per 1,000 tokens
    assert run.cost == pytest.approx((1004 * 0.005 + 500 * 0.0175) / 1000)
    chinese = budget.run_cost(_body("r1", "你" * 3000, max_tokens=500))
    assert chinese.prompt_tokens == 4 + 3000 and chinese.cost > run.cost


def test_without_max_tokens_the_answer_may_fill_the_rest_of_the_context():
    run = budget.run_cost(_body("qwen3", "hello"))
    assert run.max_tokens == QWEN3.context - run.prompt_tokens
    assert run.cost == pytest.approx((run.prompt_tokens * QWEN3.price_in + run.max_tokens * QWEN3.price_out) / 1000)


def test_a_model_without_a_price_is_unknown_and_local_models_are_free(session):
    unknown = budget.estimate([_body("some/other-model", "hi", max_tokens=10)])
    assert unknown.runs[0].cost is None and unknown.unknown == ("some/other-model",) and not unknown.priced
    local = budget.estimate([_body("local/ngram", "hi" * 5000)])
    assert local.runs[0].cost == 0 and local.total == 0 and not local.priced
    session.update(budget=0.000001)  # neither is ever blocked by the cap
    assert budget.check(unknown) is unknown and budget.check(local) is local


def test_the_line_shows_each_priced_model_per_run_and_the_sum():
    bodies = [_body("r1", "hi", max_tokens=100)] * 2 + [_body("qwen3", "hi", max_tokens=100), _body("x/y", "hi")]
    line = budget.estimate(bodies).line()
    r1 = budget.run_cost(bodies[0]).cost
    total = 2 * r1 + budget.run_cost(bodies[2]).cost
    assert line.startswith(f"Worst case: 4 runs, up to {budget.yuan(total)} in all (deepseek-r1 up to ")
    assert f"{budget.yuan(r1)} per run × 2; qwen/qwen3-8b up to" in line
    assert "price unknown, not counted: x/y" in line


def test_amounts_read_as_yuan_with_their_significant_digits():
    assert [budget.yuan(x) for x in (0, 5, 10, 1.05, 0.5, 0.0042, 0.000375)] == [
        "¥0",
        "¥5",
        "¥10",
        "¥1.05",
        "¥0.5",
        "¥0.0042",
        "¥0.000375",
    ]


# -- the cap, over real HTTP ---------------------------------------------------------------------------------
def test_a_call_that_could_pass_the_cap_is_refused_before_anything_is_sent(session, priced):
    session.update(budget=budget.spent() + 0.01)
    before = priced.count
    with pytest.raises(BudgetError) as refused:
        wm.chat("hi", model="r1", base_url=priced.base_url)  # no max_tokens: up to 64K tokens of answer, ~¥1.1
    worst = budget.run_cost(_body("deepseek-r1", "hi")).cost
    message = refused.value.message
    assert f"The worst case of this call is {budget.yuan(worst)}" in message
    assert "only ¥0.01 of the session's" in message and "No one could approve it here" in message
    assert "wm.configure(budget=" in message and "%wcode budget off" in message
    with pytest.raises(BudgetError):
        asyncio.run(wm.achat("hi", model="r1", base_url=priced.base_url))
    assert priced.count == before  # nothing reached the server
    assert budget.reserved() == 0


def test_a_call_within_the_cap_is_sent_and_its_cost_counts_as_spent(session, priced):
    spent = budget.spent()
    session.update(budget=spent + 1)
    r = wm.chat("hi", model="r1", base_url=priced.base_url, max_tokens=20)
    assert priced.models[-1] == "deepseek-r1" and r.cost > 0
    assert budget.spent() == pytest.approx(spent + r.cost) and budget.reserved() == 0
    shown = commands.dispatch("budget")
    assert shown.startswith(f"Budget {budget.yuan(spent + 1)}: {budget.yuan(budget.spent())} spent")
    # what is left is now less than another call's worst case: refused
    session.update(budget=budget.spent() + r.cost / 100)
    with pytest.raises(BudgetError, match="The worst case of this call"):
        wm.chat("hi", model="r1", base_url=priced.base_url, max_tokens=20)


def test_calls_sent_at_once_hold_their_worst_case_so_they_cannot_each_spend_the_rest(session, priced):
    worst = budget.run_cost(_body("deepseek-r1", "hi", max_tokens=20)).cost
    session.update(budget=budget.spent() + 1.5 * worst)
    before = priced.count

    async def both():
        return await asyncio.gather(
            *(wm.achat("hi", model="r1", base_url=priced.base_url, max_tokens=20) for _ in range(2)),
            return_exceptions=True,
        )

    results = asyncio.run(both())
    assert sum(isinstance(r, BudgetError) for r in results) == 1 and priced.count == before + 1
    assert budget.reserved() == 0


def test_a_cached_answer_costs_nothing_and_is_never_blocked(session, priced):
    session.update(budget=None)
    first = wm.chat("cache me", model="r1", base_url=priced.base_url, max_tokens=10, seed=1, cache=True)
    session.update(budget=budget.spent() + 0.0000001)
    before = priced.count
    again = wm.chat("cache me", model="r1", base_url=priced.base_url, max_tokens=10, seed=1, cache=True)
    assert again.cached and again.text == first.text and priced.count == before


def test_compare_prints_the_worst_case_first_and_a_sweep_over_the_cap_sends_nothing(session, priced, capsys):
    session.update(budget=budget.spent() + 0.0001)
    before = priced.count
    with pytest.raises(BudgetError, match=r"this compare \(2 runs\)"):
        wm.compare("hi", models=["r1", "qwen3"], base_url=priced.base_url, max_tokens=20, progress=False)
    assert priced.count == before
    printed = capsys.readouterr().out
    worst = budget.estimate([_body("deepseek-r1", "hi", max_tokens=20), _body("qwen/qwen3-8b", "hi", max_tokens=20)])
    assert printed == worst.line() + "\n" and printed.startswith("Worst case: 2 runs, up to")

    session.update(budget=budget.spent() + 1)
    df = wm.compare("hi", models=["r1", "qwen3"], base_url=priced.base_url, max_tokens=20, progress=False)
    assert capsys.readouterr().out.startswith("Worst case: 2 runs")
    assert df.error.isna().all() and (df.cost > 0).all() and priced.count == before + 2
    assert budget.reserved() == 0


def test_batch_prints_the_worst_case_and_local_sweeps_print_nothing(session, priced, local_url, capsys):
    session.update(budget=None)
    df = wm.batch(["a", "b", "c"], model="qwen3", base_url=priced.base_url, max_tokens=5, progress=False)
    assert capsys.readouterr().out.startswith("Worst case: 3 runs, up to") and len(df) == 3
    wm.batch(["a", "b"], model="local/ngram", base_url=local_url, max_tokens=5, progress=False)
    assert capsys.readouterr().out == ""


def test_a_long_conversation_warns_once_with_its_size_and_cost(session, priced, local_url):
    session.update(warn_prompt_tokens=50, budget=None)
    history = [{"role": "user", "content": "tell me " * 60}, {"role": "assistant", "content": "ok"}]
    with pytest.warns(WcodeWarning, match=r"This prompt is about \d+ tokens \(over warn_prompt_tokens=50\)") as w:
        wm.chat([*history, {"role": "user", "content": "more"}], model="r1", base_url=priced.base_url, max_tokens=5)
    assert "on deepseek-r1, up to ¥" in str(w[0].message)  # a script cannot be asked: warned, and sent
    with warnings.catch_warnings():
        warnings.simplefilter("error", WcodeWarning)  # the same conversation, one turn on: not again
        wm.chat([*history, {"role": "user", "content": "again"}], model="r1", base_url=priced.base_url, max_tokens=5)
    with pytest.warns(WcodeWarning, match="on local/ngram, up to ¥0"):  # free models are warned about too
        wm.chat([*history, {"role": "user", "content": "x"}], model="local/ngram", base_url=local_url, max_tokens=5)


def test_the_budget_setting_takes_an_amount_above_zero_or_off(session):
    wm.configure(budget=5)
    assert session.budget == 5.0 and math.isclose(budget.left(), 5 - budget.spent())
    assert commands.dispatch("budget off").startswith("No budget cap") and session.budget is None
    assert commands.dispatch("budget ¥2.5").startswith("Budget ¥2.5:") and session.budget == 2.5
    for bad in (0, -1, float("nan"), "5"):
        with pytest.raises(wm.InvalidParameterError, match="budget takes an amount in CNY above 0"):
            wm.configure(budget=bad)
    assert session.budget == 2.5
    assert "budget" in commands.dispatch("help") and "warn_prompt_tokens" in commands.dispatch("help")


def test_outside_a_notebook_cell_nobody_can_answer_and_the_buttons_answer_for_a_background_task():
    from wcode_magic.notebook import spend

    assert spend.ask("Send anyway?") is None  # pytest's process is no IPython cell: the check refuses

    async def click(which: str) -> bool:
        shown = []
        task = asyncio.ensure_future(spend.ask_with_buttons("Worst case ¥1, ¥0.5 left. Send anyway?", shown.append))
        while not spend.SpendButtons.waiting:
            await asyncio.sleep(0.01)
        label, row = shown[0].children
        send, cancel = row.children
        (send if which == "send" else cancel).click()
        answer = await task
        assert send.disabled and cancel.disabled and spend.SpendButtons.waiting == []
        assert label.value.startswith("Sent: " if answer else "Not sent: ")
        return answer

    assert asyncio.run(click("send")) is True
    assert asyncio.run(click("cancel")) is False


def test_a_front_end_that_asks_itself_gets_one_question_for_the_cap_and_a_long_priced_prompt(session, priced):
    session.update(budget=None, warn_prompt_tokens=100)
    short, long = _body("qwen3", "hi", max_tokens=5), _body("qwen3", "question " * 60, max_tokens=5)
    assert budget.question([short]) is None
    asked = budget.question([long])
    assert asked.startswith("This prompt is about 184 tokens (over warn_prompt_tokens=100) on qwen/qwen3-8b")
    assert budget.question([long]) is None  # said once for this conversation
    assert budget.question([_body("local/ngram", "question " * 60)]) is None  # free: nothing to ask
    session.update(budget=budget.spent() + 0.000001)
    assert budget.question([short], "this send").startswith("The worst case of this send is ¥")
    before = priced.count
    with budget.covered():  # approved by the front-end's own question: the client does not ask again
        wm.chat("hi", model="qwen3", base_url=priced.base_url, max_tokens=5)
    assert priced.count == before + 1 and budget.reserved() == 0


def test_with_the_cache_on_a_sweep_sends_only_what_fits_and_cached_runs_are_never_blocked(session, priced, capsys):
    session.update(budget=None)
    kw = {"model": "qwen3", "base_url": priced.base_url, "max_tokens": 5, "seed": 2, "cache": True, "progress": False}
    wm.batch(["sweep cached"], **kw)
    session.update(budget=budget.spent() + 0.0000001)
    before = priced.count
    df = wm.batch(["sweep cached", "sweep new"], **kw)
    assert "Runs answered from a recording or the cache cost nothing." in capsys.readouterr().out
    assert df.response[0].cached and not isinstance(df.error[0], str)
    assert df.error[1].startswith("BudgetError: Not sent: The worst case of this call") and priced.count == before


# -- the panel asks with buttons in its turn --------------------------------------------------------------
async def _answer_the_question(p, which: str, question: str) -> None:
    """Send in panel ``p``, wait for the cost question in its turn, click "send" or "don't", wait for the end."""
    from wcode_magic.notebook import spend

    p.send("hi")
    while not spend.SpendButtons.waiting:
        await asyncio.sleep(0.01)
    assert p.state == "asking" and spend.SpendButtons.waiting[0] in p.turn.box.children
    label, row = spend.SpendButtons.waiting[0].children
    assert question in label.value
    send, dont = row.children
    (send if which == "send" else dont).click()
    await p.wait()


def test_the_panel_asks_in_the_turn_and_sends_only_after_send_anyway(session, priced):
    from wcode_magic.notebook.panel import Panel

    session.update(base_url=priced.base_url, model="qwen3", budget=budget.spent() + 0.0000001)
    p = Panel()
    p.controls.controls["max_tokens"].widget.value = "20"

    def answer(which: str) -> None:
        asyncio.run(_answer_the_question(p, which, "The worst case of this send is ¥"))

    try:
        before = priced.count
        answer("dont")
        assert p.state == "not sent" and priced.count == before and p.messages == []
        assert "Not sent: you declined." in p.error.value and "wm-error-text" not in p.error.value
        answer("send")
        assert p.state == "done" and priced.count == before + 1 and p.response.cost > 0
        assert budget.reserved() == 0
    finally:
        p.close()


def test_the_panels_compare_mode_asks_once_for_all_its_runs(session, priced):
    from wcode_magic.notebook.panel import Panel

    session.update(base_url=priced.base_url, model="qwen3", budget=budget.spent() + 0.0000001)
    p = Panel()
    p.controls.controls["max_tokens"].widget.value = "20"
    p.compare_button.value = True
    p.compare_pick.value = (QWEN3.id, R1.id)

    def answer(which: str) -> None:
        asyncio.run(_answer_the_question(p, which, "The worst case of this compare is ¥"))

    try:
        before = priced.count
        answer("dont")
        assert p.state == "not sent" and priced.count == before
        answer("send")
        assert p.state == "done" and priced.count == before + 2 and p.compared.error.isna().all()
        assert budget.reserved() == 0
    finally:
        p.close()
