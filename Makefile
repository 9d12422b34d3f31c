# salewatch: two commands for users (`make demo`, `make test`), the rest for developers.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STACK := $(PY) stack/devstack.py

.PHONY: demo test lint unit stack-up stack-down stack-status venv lock clean pictures

venv: $(VENV)/.installed

# Reinstall when the dependency list changes; a no-op otherwise. Every package, pip and
# setuptools included, comes pinned with its hashes from the lock file; then the project
# itself from its source, without fetching anything more.
$(VENV)/.installed: pyproject.toml requirements-dev.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --require-hashes -r requirements-dev.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

LOCK := $(VENV)/bin/pip-compile -q --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links

## After changing dependencies in pyproject.toml: the lock files (the image installs
## requirements.lock, `make venv` and CI requirements-dev.lock).
lock: venv
	$(LOCK) --output-file requirements.lock pyproject.toml
	$(LOCK) --extra dev --extra rocksdb --output-file requirements-dev.lock pyproject.toml
	# dev pulls in salewatch[rocksdb]: the project is installed from its source, not locked
	sed -i '/^# WARNING: pip install will require/,/^    # via salewatch (pyproject.toml)$$/d' \
		requirements-dev.lock

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

## The README's pictures: the live view (docs/warroom-top.txt), the war room's panels
## drawn from Prometheus (docs/dashboards/) and the review's charts (docs/review/).
pictures: stack-up
	$(PY) stack/pictures.py

## The whole suite, setting up whatever is missing.
test: stack-up lint
	$(PY) -m pytest

clean: stack-down
	rm -rf $(VENV) .stack
