# mcsf — the two commands a new user needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export PYTHONPATH := $(CURDIR)/plugins:$(CURDIR)
SIZE ?= full

.PHONY: install demo test lint up bench bench-emulators sandbox constraints clean

install: $(STAMP)

# Re-installs only when the pins change; a no-op run takes well under a second.
$(STAMP): requirements.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
	touch $(STAMP)

lint: install
	$(VENV)/bin/ruff check .

test: install lint
	bash scripts/install-browser.sh
	$(PY) -m pytest -n 2 --dist loadfile -q

demo: install
	$(PY) -m devtools.demo

up: install
	$(PY) -m devtools.demo --up

# The six scenarios against the peers (docs/benchmarks.md); `make bench SIZE=small` in about 5 minutes.
bench: install
	$(PY) -m bench --size $(SIZE)

# The emulators' own speed: a page of 1000 members, a 2000-row query page, a Bulk 2.0 upsert of 1M rows.
bench-emulators: install
	mkdir -p bench/results
	$(PY) bench/bench_sandbox_mailchimp.py --json bench/results/sandbox_mailchimp.json
	$(PY) bench/bench_sandbox_salesforce.py

sandbox: install
	$(PY) -m sandbox serve

constraints:
	$(PY) -m pip freeze --exclude-editable > constraints.txt

clean:
	rm -rf $(VENV) .sandbox-state .airflow .pytest_cache
