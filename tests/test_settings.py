"""Session settings: one declaration, one verdict at every door, and a refused value changes nothing.

The doors are ``wm.configure``, ``wm.SESSION.update``, plain assignment (``wm.SESSION.gap_timeout = ...``) and
``%wcode set NAME=VALUE`` (the value typed as text). Before the table each had its own copy of the rules and they
disagreed (``configure`` took ``gap_timeout=0.05`` and ``max_retries=20``; ``update`` took anything).
"""

from __future__ import annotations

import copy
import math
import shlex

import pytest

import wcode_magic as wm
from wcode_magic.core.errors import InvalidParameterError
from wcode_magic.core.settings import SESSION, SETTINGS
from wcode_magic.notebook import commands
from wcode_magic.notebook.run import CellError

CANDIDATES = {
    "seconds": [-1, 0, 0.05, 0.1, 5, 59.5, 300, 301, 3600, 3601, 1e300, math.nan, math.inf, True, None, "10"],
    "count": [-1, 0, 3, 10, 11, 1.5, 2.0, True, None, "3"],
    "bool": [True, False, None, 1, "maybe"],
    "url": ["not a url", "ftp://example.com/v1", "http://127.0.0.1:9/v1", "https://example.com/v1/", 123, None],
    "model": ["", "   ", "r1", "local/ngram", "some/other-model", 5, None],
    "text": ["be brief", "", ["be brief"], None],
    "cny": [-1, 0, 0.0001, 5, 1e6, 1e6 + 1, math.nan, math.inf, True, None, "5"],
}


def _cases():
    for name, spec in SETTINGS.items():
        if spec.kind == "key":
            continue
        for value in CANDIDATES[spec.kind]:
            yield pytest.param(name, value, id=f"{name}={value!r}")


def _verdict(door) -> str:
    try:
        door()
    except (InvalidParameterError, CellError) as e:
        return "refused: " + str(getattr(e, "message", e)).removeprefix("%wcode set: ")
    return "taken"


def _snapshot():
    return {k: copy.copy(v) for k, v in vars(SESSION).items() if k != "_listeners"}


def _text(kind: str, value) -> str | None:
    """How a user would type ``value`` after ``%wcode set NAME=``; None where no text says exactly this value (a
    cell is text: ``"10"`` typed is the number 10, ``1`` typed for history is "yes")."""
    if kind in ("seconds", "count", "cny"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return str(value) if ok else None
    if kind == "bool":
        return ("true" if value else "false") if isinstance(value, bool) else None
    return shlex.quote(value) if isinstance(value, str) and value.strip() else None


@pytest.mark.parametrize("name,value", list(_cases()))
def test_every_door_gives_one_verdict_and_a_refusal_changes_nothing(session, name, value):
    def assign():
        setattr(SESSION, name, value)

    doors = {
        "configure": lambda: wm.configure(**{name: value}),
        "update": lambda: SESSION.update(**{name: value}),
        "assignment": assign,
    }
    verdicts = {}
    for door_name, door in doors.items():
        before = _snapshot()
        verdicts[door_name] = _verdict(door)
        if verdicts[door_name] != "taken":
            assert _snapshot() == before, f"{door_name} refused {name}={value!r} but changed the session"
        for k, v in before.items():  # the next door starts from the same session
            object.__setattr__(SESSION, k, v)
    assert len(set(verdicts.values())) == 1, verdicts
    text = _text(SETTINGS[name].kind, value)
    if text is not None:
        before = _snapshot()
        cell = _verdict(lambda: commands.dispatch(f"set {name}={text}"))
        assert cell.startswith("refused") == verdicts["configure"].startswith("refused"), (cell, verdicts)
        if cell != "taken":
            assert _snapshot() == before


def test_a_refused_value_among_good_ones_changes_nothing(session):
    before = _snapshot()
    with pytest.raises(InvalidParameterError, match="max_retries=20"):
        wm.configure(temperature=0.3, gap_timeout=5, max_retries=20)
    with pytest.raises(CellError, match="retry_cap_s"):
        commands.dispatch("set temperature=0.3 gap_timeout=5 retry_cap_s=-1")
    assert _snapshot() == before


def test_the_refusal_names_the_setting_the_value_and_the_range(session):
    with pytest.raises(InvalidParameterError) as info:
        SESSION.update(gap_timeout=0.05)
    assert info.value.param == "gap_timeout" and info.value.value == 0.05
    assert (
        info.value.message == "gap_timeout=0.05 is not allowed: gap_timeout takes a number of seconds from 0.1 to 3600."
    )


def test_unknown_names_are_refused_with_the_nearest_one(session):
    with pytest.raises(InvalidParameterError, match="gap_timeout"):
        wm.configure(gap_timeot=5)
    with pytest.raises(InvalidParameterError):
        SESSION.update(_listeners=[])


def test_unset_goes_back_to_the_declared_default(session):
    commands.dispatch("set gap_timeout=5 history=off model=r1")
    assert (SESSION.gap_timeout, SESSION.history, SESSION.model) == (5.0, False, "deepseek-r1")
    commands.dispatch("unset gap_timeout history model")
    assert SESSION.gap_timeout == SETTINGS["gap_timeout"].default == 60.0
    assert SESSION.history is True and SESSION.model is None


def test_help_lists_every_cell_setting_from_the_table():
    text = commands.dispatch("help")
    for name, spec in SETTINGS.items():
        if spec.cell:
            assert f"{name}" in text and spec.allowed in text
    assert "api_key" not in text.split("these settings")[1].split("\n\n")[0]


def test_the_key_is_never_taken_from_a_cell_and_never_shown(session):
    with pytest.raises(CellError, match="%wcode key"):
        commands.dispatch("set api_key=sk-abcdefghijklmnop")
    with pytest.raises(InvalidParameterError) as info:
        wm.configure(api_key=42)
    assert "42" not in info.value.message
