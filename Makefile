# Selva: `make run` serves the demo on http://127.0.0.1:5000; `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
FLASK  := $(BIN)/flask --app wsgi
HOST   ?= 127.0.0.1
PORT   ?= 5000

.PHONY: install run worker migrate demo test test-fast bench typecheck lock clean

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

# Refresh constraints.txt: a fresh virtualenv with the newest versions pyproject.toml allows.
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --upgrade pip
	.venv-lock/bin/python -m pip install --quiet -e ".[dev]"
	{ sed -n '1,3p' constraints.txt; .venv-lock/bin/python -m pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf .venv-lock

install: $(VENV)/.installed

migrate: install
	$(FLASK) db upgrade

demo: migrate
	$(FLASK) ledger keygen --if-missing
	$(FLASK) demo load
	$(FLASK) demo kilograms

run: demo
	@echo "Serving Selva on http://$(HOST):$(PORT) with a worker (demo payments: no money moves)"
	@$(FLASK) worker & worker=$$!; \
	trap 'kill $$worker 2>/dev/null; wait $$worker 2>/dev/null' EXIT; trap 'exit 130' INT TERM; \
	$(FLASK) run --host $(HOST) --port $(PORT)

worker: migrate
	$(FLASK) worker

test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow" -x

bench: install
	$(BIN)/python -m benchmarks

typecheck: install
	$(BIN)/python -m mypy

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .hypothesis
