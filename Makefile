# Common commands. `make run` and `make test` are the two the README promises
# (contract section 1); both create .venv when it is missing.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test test-tools lint typecheck audit pytest fuzz-long reliability-long openapi bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "Python >= 3.11 is required ($(PYTHON) is older)"; exit 1; }
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
		rm -rf $(VENV); \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "python3-venv is missing: installing it with apt-get"; \
			apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null && $(PYTHON) -m venv $(VENV); \
		else \
			echo "cannot create a virtual environment: install python3-venv (Debian) and retry"; exit 1; \
		fi; }
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(BIN)/tumour-response serve

test: $(VENV)/.installed-test test-tools lint typecheck audit pytest

test-tools:
	bash tests/tools/install.sh

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

# Security checks (issue 8; README "Reliability"): bandit over service/ (waivers in
# pyproject [tool.bandit], each with its reason) and pip-audit over the environment.
audit: $(VENV)/.installed-test
	$(BIN)/bandit -q -ll -r service -c pyproject.toml
	$(BIN)/python tests/tools/pip_audit.py

# The suite on SQLite, then again on PostgreSQL (issue 6; tests/databases.py): each test in
# a schema of its own at TEST_POSTGRES_URL; those runs skip, saying why, when it is absent.
pytest: $(VENV)/.installed-test
	$(BIN)/pytest
	TEST_DATABASE=postgresql $(BIN)/pytest

# The long fuzzing tier (README "Reliability"): tens of thousands of generated inputs.
fuzz-long: $(VENV)/.installed-test
	$(BIN)/pytest -m long -p no:cacheprovider tests/fuzz

# The long tier of the fault and concurrency tests (README "Faults, concurrency and restarts").
reliability-long: $(VENV)/.installed-test
	$(BIN)/pytest -m long -p no:cacheprovider tests/e2e/test_faults.py tests/e2e/test_concurrency.py
	TEST_DATABASE=postgresql $(BIN)/pytest -m long -p no:cacheprovider \
		tests/e2e/test_faults.py tests/e2e/test_concurrency.py

openapi: $(VENV)/.installed-test
	$(BIN)/tumour-response openapi > openapi/openapi.json

# The benchmark of issue 7 (README "Performance"): a measurement, not a test.
bench: $(VENV)/.installed-test
	bash tests/tools/install.sh bench/apt-packages.txt
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
