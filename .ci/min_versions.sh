#!/usr/bin/env bash
# The minimum-versions run: every runtime dependency installed at exactly the lower bound pyproject.toml declares,
# then the tests of the spine, the client and the frames (no Jupyter front-end). A bound nothing installs at is a
# bound we do not keep: this run is what makes the declared minimums true (issue 11).
#
#   bash .ci/min_versions.sh        (PYTHON=python3.11 and MIN_VENV=.venv-min by default)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${MIN_VENV:-.venv-min}

# numpy is no dependency of ours, but pandas 2.0 and matplotlib 3.7 were built against numpy 1 and their metadata
# does not say so: beside numpy 2 they fail to import. The bounds are true with the numpy of their time, so this
# run pins numpy there rather than raising our bounds past what users with such environments have.
EXTRA=("numpy<2")

"$PYTHON" -m venv --clear "$VENV"
mapfile -t PINS < <("$VENV/bin/python" .ci/min_pins.py pyproject.toml)
echo "minimum versions: ${PINS[*]} ${EXTRA[*]}"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "${PINS[@]}" "${EXTRA[@]}" "pytest>=8" "pytest-timeout>=2.3"
"$VENV/bin/python" -m pip install -q --no-deps -e .
"$VENV/bin/python" -m pip check
# Each pin must have held (pip would say nothing if a later install had moved one).
"$VENV/bin/python" .ci/min_pins.py pyproject.toml --check

# -o addopts=: the project's pytest options name nbval, a test tool this run does not install.
"$VENV/bin/python" -m pytest -q -rs -p no:cacheprovider -o addopts= \
  tests/test_sse.py tests/test_stream.py tests/test_params.py tests/test_catalog.py \
  tests/test_client_wire.py tests/test_protocol_quirks.py tests/test_client_local.py \
  tests/test_frames.py tests/test_history.py
