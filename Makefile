# salewatch: two commands for users (`make demo`, `make test`), the rest for developers.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STACK := $(PY) stack/devstack.py

.PHONY: demo test lint unit stack-up stack-down stack-status venv clean pictures

venv: $(VENV)/.installed

# Reinstall when the dependency list changes; a no-op otherwise.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

stack-up: venv
	$(STACK) up

# devstack.py is stdlib-only: stopping needs no venv (so `make clean` works without one).
stack-down:
	$(PYTHON) stack/devstack.py down

stack-status: venv
	$(STACK) status

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

unit: venv
	$(PY) -m pytest -m "not integration"

## The main job: local stack, a worker and simulated Double 11 traffic.
demo: stack-up
	$(PY) stack/demo.py

## The README's pictures: the live view (docs/warroom-top.txt) and the review's charts.
pictures: stack-up
	$(PY) stack/pictures.py

## The whole suite, setting up whatever is missing.
test: stack-up lint
	$(PY) -m pytest

clean: stack-down
	rm -rf $(VENV) .stack
