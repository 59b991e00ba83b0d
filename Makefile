# Jobsite: `make run` starts the whole platform, `make test` runs the suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean-var manage

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

# A manage.py command against a running `make run` (its embedded servers): from another
# terminal, e.g. make manage CMD="stripe_event payment_intent.succeeded --order 3"
manage: $(VENV)/.installed
	@test -f .var/run.env || { echo "make run is not running here (.var/run.env)"; exit 1; }
	set -a && . ./.var/run.env && set +a && $(BIN)/python manage.py $(CMD)

lint: $(VENV)/.installed
	$(BIN)/ruff check .

# The benchmark runs on its own database, Redis DB and namespace, never on make run's data.
BENCH_ENV := DEBUG=true \
	DATABASE_URL=$${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/jobsite_bench} \
	REDIS_URL=$${BENCH_REDIS_URL:-redis://127.0.0.1:6379/8} DRAMATIQ_NAMESPACE=jobsite-bench \
	DJANGO_SETTINGS_MODULE=config.settings_bench

bench: $(VENV)/.installed
	bash scripts/services.sh
	createdb -h 127.0.0.1 -U postgres jobsite_bench 2>/dev/null || true
	$(BENCH_ENV) $(BIN)/python manage.py migrate --no-input -v 0
	$(BENCH_ENV) $(BIN)/python manage.py benchjobs $(BENCH_ARGS)

clean-var:
	rm -rf .var
