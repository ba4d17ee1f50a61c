# mcsf — the two commands a new user needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export PYTHONPATH := $(CURDIR)/plugins:$(CURDIR)
SIZE ?= full

.PHONY: install demo test lint up bench sandbox constraints clean

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

# The emulators' own benchmarks (the scenario suite of issue 9 is still to land).
bench: install
	mkdir -p bench/results
	$(PY) bench/bench_sandbox_mailchimp.py --json bench/results/sandbox_mailchimp.json
	$(PY) bench/bench_sandbox_salesforce.py

sandbox: install
	$(PY) -m sandbox serve

constraints:
	$(PY) -m pip freeze --exclude-editable > constraints.txt

clean:
	rm -rf $(VENV) .sandbox-state .airflow .pytest_cache
