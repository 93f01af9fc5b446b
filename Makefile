# The two commands a newcomer copies (README.md): `make demo` and `make test`.
# Both create .venv and install the package with its test tools on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: demo test test-min lint bench

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/wcode-magic demo

test: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

# every runtime dependency at its declared lower bound, in its own venv (.venv-min): the spine and client tests
test-min:
	bash .ci/min_versions.sh

bench: $(VENV)/.installed
	$(PY) benchmarks/stream_throughput.py
