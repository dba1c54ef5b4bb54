# The two commands of the README: `make demo` and `make test`. Both need only Python >= 3.11.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# An extra requirement to pin, e.g. DJANGO="Django>=6.1,<6.2" (CI tests both supported series).
DJANGO ?=
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
# FEEDBACK_QUEUE=django_tasks: the suite on django.tasks instead of django-q2 (tests/settings.py),
# django-q2 out of INSTALLED_APPS and its own tests (marker django_q) deselected; CI's third run.
FEEDBACK_QUEUE ?=
export FEEDBACK_QUEUE

.PHONY: demo test lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]' $(if $(DJANGO),"$(DJANGO)")
	touch $@

# The whole suite on SQLite (the embedded default); then, when DATABASE_URL and REDIS_URL are
# set, the whole suite again on PostgreSQL with the Redis broker, where tests that need those
# services must run (FEEDBACK_REQUIRE_SERVICES turns a missing service into a failure).
test: $(VENV)/.installed
	env -u DATABASE_URL -u REDIS_URL $(PY) -m pytest -m "not postgres and not redis" $(PYTEST_ARGS)
	@if [ -n "$$DATABASE_URL" ]; then \
		echo "== again on $${DATABASE_URL%%:*} with REDIS_URL=$${REDIS_URL:-unset}, queue $${FEEDBACK_QUEUE:-django_q}"; \
		FEEDBACK_REQUIRE_SERVICES=1 $(PY) -m pytest $(PYTEST_ARGS); \
	else \
		echo "PostgreSQL and Redis tests not run: set DATABASE_URL and REDIS_URL to run them."; \
	fi

# Migrate, seed 30 days of history once, then serve the admin, run a django-q2 cluster and
# (FAKES=1, the default) the local provider fakes that the real twilio/aws_sms/chime backends
# talk to, until Ctrl-C stops them all. FAKES=0 keeps only the locmem provider. The processes run
# with DEBUG=1 (unless DEBUG is set) and the fakes' URLs for PORT and FAKES_PORT; the demo prints
# a command that sends a message through the Twilio fake with those URLs.
FAKES ?= 1
FAKES_PORT ?= 8765
demo: $(VENV)/.installed
	$(PY) manage.py migrate --no-input
	$(PY) manage.py feedback_demo --if-empty --superuser
	$(PY) example_project/run_demo.py --host $(HOST) --port $(PORT) --fakes-port $(FAKES_PORT) \
		$(if $(filter 0,$(FAKES)),--no-fakes)

# Python sources only: ruff would also reformat the examples in the Markdown docs.
LINT_PATHS := feedback_app tests example_project manage.py $(wildcard bench)
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(PY) manage.py makemigrations --check --dry-run

# Benchmarks against baselines measured in the same run, on PostgreSQL (docs/benchmarks.md).
# Each creates and drops its own database on the DATABASE_URL server, prints a table and writes
# build/bench/<name>.json; then one summary of every ratio with its target beside it (exit 1 if
# one is not met). QUICK=1: smaller sizes.
QUICK ?=
BENCHMARKS := confirm_path http_confirm expiry provider_reporting ingest webhooks dashboard guard purge
bench: $(VENV)/.installed
	@case "$$DATABASE_URL" in postgres://*|postgresql://*) ;; \
		*) echo "make bench: set DATABASE_URL=postgres://... (the figures are PostgreSQL's)" >&2; \
		exit 1;; esac
	@for name in $(BENCHMARKS); do \
		BENCH_QUICK=$(QUICK) $(PY) -m bench.$$name || exit 1; \
	done
	@$(PY) -m bench.summary $(BENCHMARKS)

clean:
	rm -rf $(VENV) build db.sqlite3 db.sqlite3-wal db.sqlite3-shm
