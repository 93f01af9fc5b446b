"""Shared fixtures: an isolated user environment, the replay server, and the bundled local model server."""

from __future__ import annotations

import copy
import os
import tempfile

import pytest

# Isolate every test run from the developer's real key, history and config, before wcode_magic reads them.
_TMP = tempfile.mkdtemp(prefix="wcode-magic-tests-")
os.environ["WCODE_CONFIG_DIR"] = os.path.join(_TMP, "config")
os.environ["WCODE_DATA_DIR"] = os.path.join(_TMP, "data")
REAL_WCODE_KEY = os.environ.pop("WCODE_API_KEY", None)
os.environ.pop("WCODE_BASE_URL", None)
os.environ.pop("WCODE_MODEL", None)


@pytest.fixture
def session():
    """The session settings, restored after the test whatever it changed."""
    from wcode_magic.core.settings import SESSION

    saved = {k: copy.copy(v) for k, v in vars(SESSION).items() if k != "_listeners"}
    yield SESSION
    for k, v in saved.items():
        setattr(SESSION, k, v)


@pytest.fixture(scope="session")
def replay():
    from wire import ReplayServer

    server = ReplayServer()
    server.start()
    yield server
    server.stop()


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked ``browser`` need Debian's Chromium: skipped without it (the reason printed), failed under CI
    (browserlab.require_chromium), before their JupyterLab and page fixtures start."""
    if item.get_closest_marker("browser") is not None:
        from browserlab import require_chromium

        require_chromium()


@pytest.fixture(scope="session")
def local_url():
    """The bundled local model in test mode (fault injection on), on 127.0.0.1."""
    from wcode_magic import local

    return local.start(test_mode=True)


@pytest.fixture(scope="session")
def counted_local():
    """A fresh bundled local model server of its own (test mode) that counts every request it receives."""
    from wire import CountingServer

    server = CountingServer()
    yield server
    server.stop()


@pytest.fixture(params=["sync", "async"])
def transport(request):
    """Run a test through both transports: wm.chat (httpx.Client) and wm.achat (httpx.AsyncClient); ``wire.ask``
    follows it."""
    import wire

    wire.TRANSPORT[0] = request.param
    yield request.param
    wire.TRANSPORT[0] = "sync"
