PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The peers of `make bench`, pinned so that runs are comparable (NAME@VERSION: `==` would read as
# an assignment in a prerequisite list). Each gets its own virtualenv, .bench/venv-NAME.
BENCH_PEERS := segment-analytics-python@2.4.0 posthog@7.91.1 rudder-sdk-python@2.1.9 mixpanel@5.4.1
PEER_STAMPS := $(BENCH_PEERS:%=.bench/%.installed)

.PHONY: install test lint unit docs demo compat bench bench-quick profile clean

# Reinstall only when the project metadata changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,plan,flags]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check segment_clone tests examples benchmarks
	$(BIN)/ruff format --check segment_clone tests examples benchmarks
	$(BIN)/mypy segment_clone

# Three workers, a file each at a time: most tests wait on servers, subprocesses and real
# timeouts rather than compute, so this halves the wall time on two cores (267 s -> 136 s).
# Tests marked serial bound a stall in wall-clock time; they run alone, after the others.
unit: $(STAMP)
	$(BIN)/pytest -q -n 3 --dist loadfile -m "not serial"
	$(BIN)/pytest -q -m serial

# The documentation site, into site/. --strict: a broken link, anchor or reference fails.
# The examples in README.md and docs/ run in `make unit` (tests/test_docs_examples.py).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

test: lint docs unit

demo: $(STAMP)
	$(BIN)/python examples/demo.py

# analytics-python 2.4.0's tests, mixpanel 5.4.1's feature-flag tests and mixpanel-python's
# test_mixpanel.py against segment_clone (downloads them into .compat/); then the differential
# run: the same generated calls through both libraries and through us (installed into
# .compat/venv-upstream).
compat: $(STAMP)
	$(BIN)/python tests/compat/upstream.py
	$(BIN)/python tests/compat/mixpanel_flags.py
	$(BIN)/python tests/compat/mixpanel_suite.py
	$(BIN)/python tests/compat/differential.py

# A peer SDK in a virtualenv of its own, so that no two SDKs ever share an interpreter; a new pin
# makes a new stamp, which rebuilds the virtualenv from scratch (and drops the old pin's stamp).
.bench/%.installed:
	$(PY) -m venv --clear .bench/venv-$(firstword $(subst @, ,$*))
	.bench/venv-$(firstword $(subst @, ,$*))/bin/python -m pip install --quiet '$(subst @,==,$*)'
	rm -f .bench/$(firstword $(subst @, ,$*))@*.installed
	touch $@

# BENCH_ROUNDS=N (default 3) and BENCH_SOAK=1 (adds the 10-minute soak) are read from the
# environment. The full run writes benchmarks/results/ and the table of docs/performance.md.
bench: $(STAMP) $(PEER_STAMPS)
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/collector_bench.py --compare-plan --rounds 3 \
		--record benchmarks/results/collector-plan.md

bench-quick: $(STAMP) $(PEER_STAMPS)
	$(BIN)/python benchmarks/run.py --quick

profile: $(STAMP)
	$(BIN)/python benchmarks/profile_track.py
	$(BIN)/python benchmarks/profile_track.py --gzip

clean:
	rm -rf $(VENV) .bench .compat .mypy_cache .pytest_cache .ruff_cache *.egg-info site
