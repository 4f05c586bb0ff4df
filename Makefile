PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PEER_SDK := segment-analytics-python==2.4.0
PEER_VENV := .bench/peer-venv
PEER_STAMP := $(PEER_VENV)/.installed-2.4.0

.PHONY: install test lint unit demo compat bench bench-quick profile clean

# Reinstall only when the project metadata changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,plan]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check segment_clone tests examples benchmarks
	$(BIN)/ruff format --check segment_clone tests examples benchmarks
	$(BIN)/mypy segment_clone

unit: $(STAMP)
	$(BIN)/pytest -q

test: lint unit

demo: $(STAMP)
	$(BIN)/python examples/demo.py

# analytics-python 2.4.0's own tests against segment_clone (downloads the wheel into .compat/).
compat: $(STAMP)
	$(BIN)/python tests/compat/upstream.py

# The reference SDK lives in its own virtualenv so that the two never share an interpreter.
$(PEER_STAMP):
	test -x $(PEER_VENV)/bin/python || $(PY) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/python -m pip install --quiet '$(PEER_SDK)'
	touch $(PEER_STAMP)

# BENCH_ROUNDS=N (default 5) and BENCH_QUICK=1 are read from the environment.
bench: $(STAMP) $(PEER_STAMP)
	$(BIN)/python benchmarks/run.py --peer-python $(PEER_VENV)/bin/python
	$(BIN)/python benchmarks/collector_bench.py --compare-plan --rounds 3

bench-quick: $(STAMP) $(PEER_STAMP)
	$(BIN)/python benchmarks/run.py --peer-python $(PEER_VENV)/bin/python --quick

profile: $(STAMP)
	$(BIN)/python benchmarks/profile_track.py
	$(BIN)/python benchmarks/profile_track.py --gzip

clean:
	rm -rf $(VENV) .bench .compat .mypy_cache .pytest_cache .ruff_cache *.egg-info
