"""How the test suite runs these notebooks: nbval executes each one in its own kernel (``pytest -q``).

The kernels always run offline on the bundled local model, whatever the developer's environment holds: no
``WCODE_API_KEY`` and fresh config and data directories (so no stored key and no personal history), the same
environment as ``wcode-magic demo --save``, which wrote the outputs the checked cells are compared with. nbval
starts a notebook's kernel while setting up its first cell, from ``os.environ``; the variables are changed for that
setup only, so nothing else in the test process (such as the wcode.net smoke tests' key) is affected.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from wcode_magic.demo import offline_env

_HOMES = tempfile.TemporaryDirectory(prefix="wcode-notebooks-")


def pytest_configure(config: pytest.Config) -> None:
    """A relative ``--nbval-sanitize-with`` (as in pyproject.toml) is relative to the project, not the cwd."""
    path = getattr(config.option, "nbval_sanitize_with", None)
    if path and not os.path.isabs(path):
        config.option.nbval_sanitize_with = str(config.rootpath / path)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    home = Path(_HOMES.name) / Path(str(item.path)).stem  # one per notebook: its own history
    wanted = offline_env(os.environ, home)
    saved = dict(os.environ)
    for name in set(os.environ) - set(wanted):
        del os.environ[name]
    os.environ.update(wanted)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
