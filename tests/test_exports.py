"""``import wcode_magic as wm``: every lazy export is what it says, whatever was imported before.

Importing a submodule sets the package attribute of its name to the module, so an export named like a submodule
(``wm.panel`` and ``panel.py`` once) would become the module after ``import wcode_magic.panel``. Each order is
checked in a fresh interpreter, since one import changes the package for the rest of the process.
"""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import wcode_magic

CHECK = """
import types
import wcode_magic as wm
from wcode_magic import history, panel
from wcode_magic.analysis.history import history as history_function
from wcode_magic.notebook.panel import Panel, panel as panel_function

for name, function in (("history", history_function), ("panel", panel_function)):
    assert getattr(wm, name) is function, (name, getattr(wm, name))
    assert isinstance(getattr(wm, name), types.FunctionType)
assert history is history_function and panel is panel_function
assert len(wm.history()) == 0 and len(wm.history(3)) == 0
assert isinstance(wm.panel(), Panel)
print("ok")
"""

ORDERS = {
    "submodules first": "import wcode_magic.notebook.panel, wcode_magic.analysis.history\n",
    "exports first": "import wcode_magic as wm\nwm.panel, wm.history\nimport wcode_magic.notebook.panel\n"
    "import wcode_magic.analysis.history\n",
    "magics and client first": "import wcode_magic.notebook.commands, wcode_magic.core.client\n",
}


@pytest.mark.parametrize("first", list(ORDERS))
def test_wm_panel_and_wm_history_are_the_functions_in_any_import_order(first, tmp_path):
    env = {**os.environ, "WCODE_DATA_DIR": str(tmp_path)}
    script = ORDERS[first] + textwrap.dedent(CHECK)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.split() == ["ok"], done.stderr


def test_no_export_is_named_like_a_submodule():
    from wcode_magic import _EXPORTS, _SUBMODULES

    modules = {m.name for m in pkgutil.iter_modules(wcode_magic.__path__)}
    assert not (set(_EXPORTS) & modules), set(_EXPORTS) & modules
    assert set(_SUBMODULES) <= modules


def _type_checking_names() -> set[str]:
    """The names the ``if TYPE_CHECKING:`` block of wcode_magic/__init__.py imports (what type checkers see)."""
    import ast

    tree = ast.parse(Path(wcode_magic.__file__).read_text(encoding="utf-8"))
    block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING")
    return {a.asname or a.name for n in block.body if isinstance(n, ast.ImportFrom) for a in n.names}


def test_every_public_name_is_visible_to_type_checkers_and_resolves():
    from wcode_magic import _EXPORTS, _SUBMODULES

    public = set(_EXPORTS) | set(_SUBMODULES)
    assert _type_checking_names() == public
    assert set(wcode_magic.__all__) == public | {"__version__", "load_ipython_extension"}
    for name in wcode_magic.__all__:
        assert getattr(wcode_magic, name) is not None, name


def test_what_users_catch_or_receive_is_exported():
    """Raised at users (ConfigurationError) or handed to their callbacks (Event in on_event): importable."""
    from wcode_magic import ConfigurationError, Event, Settings, WcodeError
    from wcode_magic.core.stream import Event as StreamEvent

    assert issubclass(ConfigurationError, WcodeError) and Event is StreamEvent
    assert isinstance(wcode_magic.SESSION, Settings)


def test_a_misspelt_name_is_an_attribute_error_with_the_nearest_name():
    with pytest.raises(AttributeError, match="did you mean 'chat'"):
        wcode_magic.chta  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'frames'"):
        wcode_magic.frames  # noqa: B018  (a module of the analysis layer, not a public name)
    assert not hasattr(wcode_magic, "xyzzy")
