# robo_stack: set-up, tests and the demo. See README.md.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTEST := $(PY) -m pytest

.PHONY: setup test test-slow test-all lint demo clean

setup:  ## create .venv, build msg/, install the project, check a Plan round trip over DDS
	bash scripts/setup.sh

test: setup  ## the default test run (excludes @pytest.mark.slow)
	bash scripts/run_tests.sh

test-slow: setup  ## only the long tests
	bash scripts/run_tests.sh -m slow

test-all: setup  ## every test
	bash scripts/run_tests.sh -m "slow or not slow"

lint: setup  ## ruff, and the import-linter layer contracts of pyproject.toml (also checked by make test)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

demo: setup  ## the main job: the closed-loop demo (INSTRUCTION=..., SEED=, FAMILY=, SPLIT=, BRAIN=)
	bash scripts/demo.sh

clean:  ## remove the venv and build trees
	rm -rf $(VENV) build
