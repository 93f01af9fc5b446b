"""--schema on %%chat and %wcode, in a real kernel against the local model: a spec string, JSON Schema, or the name
of a class in the notebook; bad ones are one-line errors before anything is sent."""

from __future__ import annotations

import pytest
from magics_kernel import Kernel

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
