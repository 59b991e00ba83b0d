# Jobsite: `make run` starts the whole platform, `make test` runs the suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean-var

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,embedded]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/python scripts/run.py

test: $(VENV)/.installed
	bash scripts/services.sh
	$(BIN)/python -m pytest --cov --cov-report=term:skip-covered $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check .

bench: $(VENV)/.installed
	bash scripts/services.sh
	DEBUG=true $(BIN)/python manage.py benchjobs $(BENCH_ARGS)

clean-var:
	rm -rf .var
