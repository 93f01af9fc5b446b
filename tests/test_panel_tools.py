"""wm.panel(tools=[...]): the tools listed, each step of the loop shown as it happens, Stop mid-loop, the
conversation keeping the tool messages; in-process against the real local server."""

from __future__ import annotations

import asyncio
import time

import pytest


def get_weather(city: str, days: int = 1) -> str:
    """The weather in a city.

    Args:
        city: The city's name.
    """
    time.sleep(0.2)
    return f"sunny in {city} for {days} days"


async def slow_lookup(word: str) -> str:
    """Look a word up, slowly."""
    await asyncio.sleep(30)
    return word


def _markdown(output) -> str:
    return output.outputs[0]["data"]["text/markdown"] if output.outputs else ""


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_the_panel_lists_its_tools_and_shows_each_step(session, local_url):
    import wcode_magic as wm

    session.update(base_url=local_url, model="local/ngram")
    p = wm.panel(tools=[get_weather, slow_lookup])
    seen: list[str] = []
    p.steps_view.observe(lambda _c: seen.append(_markdown(p.steps_view)), names="outputs")
    try:
        assert "Tools the model may call: 2" in p.tools_view.value
        assert "<code>get_weather(city, days)</code> — The weather in a city." in p.tools_view.value

        async def go():
            p.send("Use get_weather for 'Lima' in 2 days")
            await p.wait()

        _run(go())
        r = p.response
        assert p.state == "done" and r.text.startswith("get_weather returned sunny in Lima for 2 days.")
        call = 'get_weather({"city": "Lima", "days": 2})'
        assert any(call in m and "…" in m for m in seen), seen  # the call on screen while it ran
        final = _markdown(p.steps_view)
        assert "Step 1: get_weather" in final and "→ <code>sunny in Lima for 2 days</code>" in final
        assert "<details open>" not in final and _markdown(p.answer) == r.text
        assert [m["role"] for m in p.messages] == ["user", "assistant", "tool", "assistant"]
        assert wm.last() is r and r.turns.kind.tolist() == ["tool_call", "tool_result", "answer"]
    finally:
        p.close()


def test_stop_mid_loop_keeps_the_steps(session, local_url):
    import wcode_magic as wm

    session.update(base_url=local_url, model="local/ngram")
    p = wm.panel(tools=[slow_lookup])

    async def go():
        p.send("slow_lookup 'otter'")
        while "running" not in p.status.value:
            await asyncio.sleep(0.02)
        clicked = time.perf_counter()
        p.stop_button.click()
        await p.wait()
        return time.perf_counter() - clicked

    try:
        assert _run(go()) < 5.0  # the tool sleeps 30 s
        r = p.response
        assert p.state == "stopped" and r.status == "stopped" and r.turns.kind.tolist() == ["tool_call"]
        assert [m["role"] for m in p.messages] == ["user", "assistant", "tool"]
        assert p.messages[-1]["content"] == "Not run: the tool loop was stopped."
        assert wm.last() is r
    finally:
        p.close()


def test_bad_tools_are_refused_when_the_panel_is_made(session):
    import wcode_magic as wm
    from wcode_magic.core.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="each tool is a function"):
        wm.panel(tools=[42])


def test_show_code_names_the_tools_and_its_cell_parses_back(session, local_url):
    """The code the panel shows makes the same call: ``--tools`` in the cell (which %%chat reads back) and
    ``tools=[...]`` in the Python call; the functions are the notebook's own, by name."""
    import wcode_magic as wm
    from wcode_magic.notebook import flags

    session.update(base_url=local_url, model="local/ngram")
    p = wm.panel(tools=[get_weather, slow_lookup])
    try:
        code = p.code_text("Use get_weather for 'Lima'")
    finally:
        p.close()
    cell = code.split("```\n", 1)[1].split("\n```", 1)[0]
    line, prompt = cell.split("\n", 1)
    assert line.startswith("%%chat --tools get_weather,slow_lookup") and prompt == "Use get_weather for 'Lima'"
    assert flags.parse(line.removeprefix("%%chat")).tool_names == ["get_weather", "slow_lookup"]
    assert "    tools=[get_weather, slow_lookup],\n" in code


def interrupted(city: str) -> str:
    """Look a city up (the kernel is interrupted while it runs)."""
    raise KeyboardInterrupt


def test_an_interrupt_during_a_tool_reads_as_stopped_not_as_an_error(session, local_url):
    """A kernel interrupt that lands in a tool function stops the loop: "stopped", the steps kept, no error box."""
    import wcode_magic as wm

    session.update(base_url=local_url, model="local/ngram")
    p = wm.panel(tools=[interrupted])

    async def go():
        p.send("Use interrupted for 'Lima'")
        await p.wait()

    try:
        _run(go())
        assert p.state == "stopped" and p.error.value == ""
        assert "wm-state-stopped" in p.turn.footer.value
        assert [m["role"] for m in p.messages] == ["user", "assistant", "tool"]
    finally:
        p.close()
