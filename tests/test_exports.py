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
