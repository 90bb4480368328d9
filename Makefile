# make run  : set up everything and open vol3d on the built-in demo study
# make test : set up everything and run the whole test suite (GUI tests under Xvfb)
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip

.PHONY: run test lint bench install-desktop clean sysdeps-run sysdeps-test

run: sysdeps-run $(VENV)/.installed
	$(VENV)/bin/vol3d --demo

test: sysdeps-test $(VENV)/.installed-test
	$(PY) -m ruff check vol3d_gui tests bench
	@# two processes: TensorFlow and Mesa llvmpipe cannot share one (see vol3d_gui/ml/service.py)
	$(PY) -m pytest -p no:cacheprovider --ignore=tests/ui $(PYTEST_ARGS)
	$(PY) -m pytest -p no:cacheprovider tests/ui $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(PY) -m ruff check vol3d_gui tests bench
	$(VENV)/bin/lint-imports

bench: $(VENV)/.installed-test
	$(PY) -m bench

sysdeps-run:
	@bash scripts/ensure-sysdeps.sh run

sysdeps-test:
	@bash scripts/ensure-sysdeps.sh test

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -e '.[test]'
	@touch $@ $(VENV)/.installed

install-desktop: $(VENV)/.installed
	bash scripts/install-desktop.sh "$(abspath $(VENV))/bin/vol3d"

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
