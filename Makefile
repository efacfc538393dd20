# Selva: `make run` serves the demo on http://127.0.0.1:5000; `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
FLASK  := $(BIN)/flask --app wsgi
HOST   ?= 127.0.0.1
PORT   ?= 5000

.PHONY: install run migrate demo test test-fast bench typecheck clean

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

migrate: install
	$(FLASK) db upgrade

demo: migrate
	$(FLASK) ledger keygen --if-missing
	$(FLASK) demo load
	$(FLASK) demo kilograms

run: demo
	@echo "Serving Selva on http://$(HOST):$(PORT) (demo payments: no money moves)"
	$(FLASK) run --host $(HOST) --port $(PORT)

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
