"""The %wcode subcommands in-process: each checks its arguments, and where a call goes (route, use wcode/local).

The kernel-level behaviour (the line reaching the subcommand or the prompt path) is in test_magics.py.
"""

from __future__ import annotations

import pytest

from wcode_magic.core import catalog
from wcode_magic.core import session as wm_session
from wcode_magic.core.errors import ConfigurationError
from wcode_magic.core.settings import SESSION, WCODE_BASE_URL
from wcode_magic.notebook import commands, run
from wcode_magic.notebook.run import CellError


@pytest.mark.parametrize(
    ("line", "refusal"),
    [
        ("help me write a poem", "%wcode help takes no arguments."),
        ("use the force", "%wcode use takes one model id or alias"),
        ("use local the force", "%wcode use local takes at most one model"),
        ("use local qwen3", "%wcode use local takes a local model"),
        ("use wcode local", "local is a bundled local model, not a wcode.net one"),
        ("models are great", "%wcode models takes no arguments."),
        ("config files are hard", "%wcode config takes no arguments."),
        ("usage of commas", "%wcode usage takes no arguments."),
        ("panel discussion", "%wcode panel takes no arguments."),
        ("history of rome", "%wcode history takes at most one number."),
        ("history rome", "%wcode history N: 'rome' is not a number."),
        ("reset the router", "%wcode reset takes at most one conversation name"),
        ("set the table", "%wcode set: 'the' is not NAME=VALUE"),
        ("unset the alarm", "%wcode unset: 'the' is not a parameter or a setting"),
        ("help don't", "%wcode help: Cannot read the options"),
    ],
)
def test_a_prompt_starting_with_a_subcommand_word_is_refused_with_the_way_to_send_it(session, line, refusal):
    before = (session.model, session.base_url, dict(session.params))
    with pytest.raises(CellError) as info:
        commands.dispatch(line)
    message = info.value.message
    assert "\n" not in message
    assert message.startswith(refusal)
    assert message.endswith(f"To send it as a prompt instead: %wcode -- {line}")
    assert (session.model, session.base_url, dict(session.params)) == before  # nothing changed


def test_the_key_command_never_repeats_its_words(session):
    with pytest.raises(CellError) as info:
        commands.dispatch("key sk-pasted-on-the-line-0000")
    assert "sk-pasted" not in info.value.message
    assert info.value.message.endswith("%wcode -- key ...")


def test_unset_checks_every_name_before_unsetting_any(session):
    session.set_param("temperature", 0.3)
    with pytest.raises(CellError, match="'nonsense' is not a parameter"):
        commands.dispatch("unset temperature nonsense")
    assert session.params["temperature"] == 0.3
    assert commands.dispatch("unset temperature") == "Unset temperature."
    assert "temperature" not in session.params


@pytest.mark.parametrize(
    "line", ["help", "models", "config", "usage", "history 2", "reset", "reset side", "reset --all"]
)
def test_the_subcommands_still_run_with_what_they_take(session, line):
    commands.dispatch(line)


def test_use_takes_a_model_or_local_or_wcode(session, local_url):
    assert commands.dispatch("use local local-thinking-rc").startswith("Using the bundled local model")
    assert (session.model, session.base_url) == ("local/ngram-thinking-rc", local_url)
    assert commands.dispatch("use qwen3").startswith("Using wcode.net")  # the local server cannot serve it
    assert (session.model, session.base_url) == ("qwen/qwen3-8b", WCODE_BASE_URL)
    commands.dispatch("use some-org/unlisted-model")
    assert session.model == "some-org/unlisted-model"


def test_use_wcode_with_a_local_model_current_takes_the_default_wcode_model(session, local_url):
    wm_session.use_local()
    assert session.model == catalog.DEFAULT_LOCAL_MODEL
    said = commands.dispatch("use wcode")
    assert said == f"Using wcode.net ({WCODE_BASE_URL}), model {catalog.DEFAULT_MODEL}."
    assert (session.model, session.base_url) == (catalog.DEFAULT_MODEL, WCODE_BASE_URL)
    session.update(model="r1")
    commands.dispatch("use wcode")
    assert session.model == "deepseek-r1"  # a wcode model current is kept
    commands.dispatch("use wcode qwen3")
    assert session.model == "qwen/qwen3-8b"
    with pytest.raises(ConfigurationError, match="bundled local model"):
        wm_session.use_wcode("local")


def test_auto_without_a_key_then_use_wcode(session, local_url, monkeypatch):
    monkeypatch.delenv("WCODE_API_KEY", raising=False)
    session.update(model=None, base_url=None)
    assert "bundled local model" in wm_session.auto()
    assert session.model.startswith("local/")
    commands.dispatch("use wcode")
    assert (session.model, session.base_url) == (catalog.DEFAULT_MODEL, WCODE_BASE_URL)


# -- route: which server one call goes to ----------------------------------------------------------------------


def test_a_wcode_model_chosen_per_call_leaves_the_bundled_local_server(session, local_url):
    session.update(base_url=local_url, model="local/ngram")
    assert SESSION.route("deepseek-r1") == WCODE_BASE_URL
    assert SESSION.route("local/ngram") is None  # already there
    assert SESSION.route("some-org/unlisted-model") is None  # unknown: the session's server may know it
    call = run.prepare(None, run.flags.parse("-m r1"), "q", conversation=False)
    assert "base_url" not in call.kwargs and call.model == "deepseek-r1"  # the client routes it, as for wm.chat
    assert SESSION.resolve_base_url(None, call.model) == WCODE_BASE_URL


def test_a_wcode_base_url_override_is_where_routed_wcode_calls_go(session, local_url, monkeypatch):
    monkeypatch.setenv("WCODE_BASE_URL", "http://127.0.0.1:9/v1/")
    session.update(base_url=local_url)
    assert SESSION.route("qwen3-8b") == "http://127.0.0.1:9/v1"


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/v1", "http://localhost:11434/v1", "https://proxy.example/v1"])
def test_a_server_the_user_configured_gets_wcode_models_as_asked(session, url):
    session.update(base_url=url)
    assert SESSION.route("deepseek-r1") is None


def test_a_local_model_goes_to_the_bundled_server_unless_the_session_is_on_this_machine(session, local_url):
    session.update(base_url="https://proxy.example/v1")
    assert SESSION.route("local/ngram") == local_url
    session.update(base_url="http://127.0.0.1:8000/v1")  # perhaps `wcode-magic serve` in another process
    assert SESSION.route("local/ngram") is None
    session.update(base_url=None)
    assert SESSION.route("local/ngram") is None  # the client picks the local server by model anyway


@pytest.mark.parametrize("url", ["http://a..b/v1", "http://[::1/v1", "ftp://example.com/v1", "not a url"])
def test_set_base_url_is_checked_when_set(session, url):
    before = session.base_url
    with pytest.raises(CellError, match=r"%wcode set: .*base_url"):
        commands.dispatch(f"set base_url={url}")
    assert session.base_url == before
    assert commands.dispatch("set base_url=http://127.0.0.1:8000/v1").startswith("Set")
    assert session.base_url == "http://127.0.0.1:8000/v1"


def test_config_says_where_a_configured_key_goes(session):
    import wcode_magic as wm

    wm.configure(base_url="http://127.0.0.1:8000/v1", api_key="sk-test-configured-0000000000")
    wm_session.use_wcode()
    text = commands.dispatch("config")
    assert "sent to http://127.0.0.1:8000/v1 only" in text and "sk-test-configured" not in text


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("use local", "none needed: the bundled local model takes no key (for wcode.net models: %wcode key)"),
        ("use local/ngram", "none needed: the bundled local model takes no key"),
        ("set model=local/ngram-thinking", "none needed: the bundled local model takes no key"),
        (
            "set base_url=http://127.0.0.1:8000/v1",
            "none sent to http://127.0.0.1:8000/v1 (if it needs one: wm.configure",
        ),
        ("set base_url=https://example.org/v1", "none sent to https://example.org/v1"),
        ("use wcode", "none (set one with %wcode key, or use the local model: %wcode use local)"),
    ],
)
def test_config_without_a_key_suggests_one_only_where_it_would_go(session, monkeypatch, setup, expected):
    monkeypatch.delenv("WCODE_API_KEY", raising=False)
    commands.dispatch(setup)
    key_row = next(line for line in commands.dispatch("config").splitlines() if line.startswith("key "))
    assert key_row.split(None, 1)[1].startswith(expected)
