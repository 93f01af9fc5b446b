"""Where a key goes (issue 17, items 2 and 3): only over https unless to this machine, and a key given to
``configure`` only to its own server, never to a per-call base_url. One rule, ``keys.KEY_RULE``, stated verbatim in
the README and quoted by the refusal."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

import wcode_magic as wm
from wcode_magic.core.errors import InvalidParameterError
from wcode_magic.core.keys import KEY_RULE, is_loopback

KEY = "sk-test-ROUTING-0123456789abcdef"
README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_states_the_rule_verbatim():
    text = " ".join(README.read_text().split())  # line wrapping aside
    assert KEY_RULE in text


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8000/v1", True),
        ("http://127.8.9.10/v1", True),
        ("http://localhost:11434/v1", True),
        ("http://LOCALHOST./v1", True),
        ("http://api.localhost/v1", True),
        ("http://[::1]:8080/v1", True),
        ("http://[::ffff:127.0.0.1]/v1", True),
        ("http://wcode.net/api/gpt/v1", False),
        ("http://10.0.0.5:8000/v1", False),
        ("http://192.168.1.2/v1", False),
        ("http://[fe80::1]/v1", False),
        ("http://localhost.evil.com/v1", False),
        ("http://127.0.0.1.nip.io/v1", False),
    ],
)
def test_loopback_is_this_machine_only(url, loopback):
    assert is_loopback(url) is loopback


class Listener:
    """A TCP socket on every interface that only counts the connections made to it: proof nothing was sent."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("0.0.0.0", 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.stop = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()


def _lan_address() -> str:
    """This machine's address on a network (not loopback), or skip."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))  # no packet is sent: it only picks the outgoing interface
            address = s.getsockname()[0]
        except OSError:
            address = ""
    if not address or address.startswith("127."):
        pytest.skip("no non-loopback address on this machine")
    return address


@pytest.fixture
def lan():
    listener = Listener()
    yield f"http://{_lan_address()}:{listener.port}/v1", listener
    listener.stop = True
    listener.sock.close()


def test_the_listener_would_see_a_request(lan, session):
    url, listener = lan  # without a key the plain-http request is made: the proof below can fail
    with pytest.raises(wm.WcodeError):
        wm.chat("hi", base_url=url, model="m", stream=False, timeout=2)
    assert listener.accepted >= 1


@pytest.mark.parametrize("how", ["explicit", "configured", "configured-then-url"])
def test_a_key_is_never_sent_over_plain_http_to_another_machine(lan, session, how):
    url, listener = lan
    kw: dict = {"base_url": url, "model": "m", "stream": False}
    if how == "explicit":
        kw["api_key"] = KEY
    elif how == "configured":
        wm.configure(base_url=url, api_key=KEY)
        kw["base_url"] = None
    else:
        wm.configure(api_key=KEY)
        wm.configure(base_url=url)
        kw["base_url"] = None
    with pytest.raises(InvalidParameterError) as caught:
        wm.chat("hi", **kw)
    e = caught.value
    assert e.param == "base_url" and e.value == url and repr(url) in e.message
    assert "plain http" in e.message and "https://" in e.message and KEY_RULE in e.message
    assert KEY not in e.message
    assert listener.accepted == 0


@pytest.mark.parametrize("url", ["http://wcode.net/api/gpt/v1", "http://api.wcode.net/v1"])
def test_the_stored_key_is_not_sent_to_wcode_over_http(session, monkeypatch, url):
    monkeypatch.setenv("WCODE_API_KEY", KEY)
    with pytest.raises(InvalidParameterError, match="plain http") as caught:
        wm.chat("hi", base_url=url)
    assert caught.value.value == url and KEY not in caught.value.message


def test_a_key_over_http_to_this_machine_is_sent(replay, session):
    from wire import ask

    for url in (replay.base_url, replay.base_url.replace("127.0.0.1", "localhost")):
        ask(replay, "ark_r1", base_url=url, api_key=KEY)
        assert replay.headers[-1]["authorization"] == f"Bearer {KEY}"


def test_a_key_configured_without_a_server_stays_with_the_default_one(replay, session, monkeypatch):
    """configure(api_key=K) with no base_url: K is for the default server (WCODE_BASE_URL here, the replay
    server's 127.0.0.1 address); a per-call base_url elsewhere (its localhost address, another server) gets none."""
    from wire import ask

    monkeypatch.setenv("WCODE_BASE_URL", replay.base_url)
    wm.configure(api_key=KEY)
    ask(replay, "ark_r1", base_url=None, model="r1")
    assert replay.headers[-1]["authorization"] == f"Bearer {KEY}"
    other = replay.base_url.replace("127.0.0.1", "localhost")
    for per_call in (other, other + "/"):
        ask(replay, "ark_r1", base_url=per_call, model="some-model")
        assert "authorization" not in replay.headers[-1]
    ask(replay, "ark_r1", base_url=replay.base_url + "/", model="r1")  # the home server, however written
    assert replay.headers[-1]["authorization"] == f"Bearer {KEY}"


def test_a_key_configured_with_a_server_stays_there(replay, session):
    from wire import ask

    wm.configure(base_url=replay.base_url, api_key=KEY)
    other = replay.base_url.replace("127.0.0.1", "localhost")
    ask(replay, "ark_r1", base_url=other)
    assert "authorization" not in replay.headers[-1]
    ask(replay, "ark_r1", base_url=None)
    assert replay.headers[-1]["authorization"] == f"Bearer {KEY}"
