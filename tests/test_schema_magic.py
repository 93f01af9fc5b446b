"""--schema on %%chat and %wcode, in a real kernel against the local model: a spec string, JSON Schema, or the name
of a class in the notebook; bad ones are one-line errors before anything is sent."""

from __future__ import annotations

import pytest
from magics_kernel import Kernel
from wire import SchemaRefusingServer

from wcode_magic.notebook import flags

pytestmark = pytest.mark.timeout(120)


def test_the_flag_checks_specs_and_json_and_leaves_names_for_the_cell():
    assert flags.parse("--schema 'label: yes|no, reason: str'").schema == "label: yes|no, reason: str"
    assert flags.parse("--schema Verdict").schema == "Verdict"
    assert flags.parse("""--schema '{"type": "object", "properties": {"a": {"type": "string"}}}'""").schema
    opts, prompt = flags.parse_prompt_line("--schema 'label: yes|no, why: str' Is it good?")
    assert (opts.schema, prompt) == ("label: yes|no, why: str", "Is it good?")
    with pytest.raises(flags.FlagError, match="unknown type 'maybe'"):
        flags.parse("--schema 'label: maybe'")
    with pytest.raises(flags.FlagError, match="not valid JSON"):
        flags.parse("--schema '{\"type\": '")
    with pytest.raises(flags.FlagError, match="top level must be an object"):
        flags.parse("""--schema '{"type": "array"}'""")


@pytest.fixture(scope="module")
def k(tmp_path_factory):
    kernel = Kernel(str(tmp_path_factory.mktemp("schema-magic")))
    kernel.ok("%load_ext wcode_magic\nimport wcode_magic as wm\n%wcode use local")
    yield kernel
    kernel.close()


def _error_line(run) -> str:
    assert run.status == "error"
    tb = run.error["traceback"]
    assert len(tb) == 1 and "Traceback" not in tb[0], tb
    return tb[0]


def test_spec_string_in_a_cell(k):
    k.ok("%%chat -m local/ngram --new --schema 'label: yes|no, reason: str' --logprobs 5\nIs the soup good?")
    assert k.value("sorted(wm.last().parsed)") == ["label", "reason"]
    assert k.value("wm.last().request['response_format']['type']") == "json_schema"
    assert k.value("wm.last().field_probs()['path'].tolist()") == ["label", "reason"]


def test_a_class_of_the_notebook_by_name(k):
    k.ok(
        "from dataclasses import dataclass\nfrom typing import Literal\n\n@dataclass\nclass Verdict:\n"
        "    label: Literal['good', 'bad']\n    stars: int\n"
    )
    k.ok("%wcode -m local/ngram --schema Verdict -- Is it good?")
    assert k.value("type(wm.last().parsed).__name__") == "Verdict"
    assert "no variable 'Nope'" in _error_line(k.run("%%chat -m local/ngram --schema Nope\nq"))
    assert "unknown type 'maybe'" in _error_line(k.run("%%chat --schema 'label: maybe'\nq"))


# -- a server that refuses json_schema, over real HTTP --------------------------------------------------------------
@pytest.fixture(scope="module")
def refusing(tmp_path_factory):
    """A kernel whose server (WCODE_BASE_URL) refuses json_schema and answers json_object requests."""
    server = SchemaRefusingServer()
    kernel = Kernel(str(tmp_path_factory.mktemp("schema-refused")), extra_env={"WCODE_BASE_URL": server.base_url})
    kernel.ok("%load_ext wcode_magic\nimport wcode_magic as wm")
    yield kernel, server
    kernel.close()
    server.stop()


def _said(run) -> list[str]:
    return [line for line in run.stderr.splitlines() if "refused response_format json_schema" in line]


def test_a_cell_falls_back_to_json_object_said_once_per_model(refusing):
    k, server = refusing
    server.requests.clear()
    run = k.ok("%%chat -m qwen/qwen3-8b --schema 'label: yes|no|unsure, reason: str, score: float' -o r\nIs it good?")
    # the cell shows the answer, and says once where it came from: the cell, not asyncio's events.py
    assert '{"label": "yes", "reason": "fine", "score": 0.5}' in run.last_display["text/markdown"]
    said = _said(run)
    assert len(said) == 1 and said[0].startswith("%%chat:1: WcodeWarning: qwen/qwen3-8b at http://127.0.0.1:")
    assert "asyncio" not in run.stderr and "cell_async" not in run.stderr
    first, second = server.requests
    assert first["response_format"]["type"] == "json_schema" and first["structured_outputs"] is True
    assert second["response_format"] == {"type": "json_object"} and '"label"' in second["messages"][0]["content"]
    assert k.value("r.parsed") == {"label": "yes", "reason": "fine", "score": 0.5}
    assert k.value("wm.last() is r and r.parse_error is None")
    assert k.value("wm.last().request['response_format']") == {"type": "json_object"}

    # the same model again, now with a class of the notebook: silent, straight to json_object
    server.requests.clear()
    k.ok(
        "from dataclasses import dataclass\n\n@dataclass\nclass Verdict:\n    label: str\n    reason: str\n    score: float\n"
    )
    run = k.ok("%%chat -m qwen/qwen3-8b --schema Verdict\nAgain?")
    assert not _said(run) and [q["response_format"]["type"] for q in server.requests] == ["json_object"]
    assert k.value("[type(wm.last().parsed).__name__, wm.last().parsed.score]") == ["Verdict", 0.5]

    # another model is said once too, from the one-line magic
    run = k.ok("%wcode -m other/model --schema 'label: yes|no|unsure, reason: str, score: float' -- Once more")
    assert [s.split(" at ")[0] for s in _said(run)] == ["%wcode:1: WcodeWarning: other/model"]
    assert k.value("wm.last().parsed['label']") == "yes"


def test_an_answer_that_does_not_fit_shows_and_parsed_names_the_field(refusing):
    k, server = refusing
    server.pieces = ['```json\n{"label": "perhaps", "reason": 3}\n```']
    try:
        run = k.ok("%%chat -m qwen/qwen3-8b --schema 'label: yes|no|unsure, reason: str, score: float'\nWell?")
    finally:
        server.pieces = ['{"label": "yes"', ', "reason": "fine", "score": 0.5}']
    assert '"perhaps"' in run.last_display["text/markdown"] and not _said(run)
    failed = k.run("wm.last().parsed")
    assert failed.status == "error" and failed.error["ename"] == "SchemaError"
    assert k.value("wm.last().parse_error.partial.text").startswith("```json")
