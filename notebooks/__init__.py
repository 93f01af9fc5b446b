"""Not a package to import: this file only gives ``notebooks/conftest.py`` its own module name
(``notebooks.conftest``), so pytest does not load it as a second top-level ``conftest`` module, which would
shadow the one the tests import names from (``from conftest import ...``)."""
