# The two commands a newcomer needs: `make run` and `make test`.
# Both create .venv from the lock file when it is missing or outdated.

PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test venv clean

$(STAMP): requirements/dev.lock pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --require-hashes -r requirements/dev.lock
	$(VENV)/bin/pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

## run: start leadd for development on 127.0.0.1:5057 and run a sample search
run: $(STAMP)
	$(VENV)/bin/python scripts/dev_run.py

## test: the whole test suite (systemd tests need root and systemd-nspawn, and skip otherwise)
test: $(STAMP)
	$(VENV)/bin/pytest

clean:
	rm -rf $(VENV) var
