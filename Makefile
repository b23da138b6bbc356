# Two entry points on a fresh clone: `make demo` and `make test`. Both create the
# project-local virtual environment on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test benchmark train clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m serving.demo

test: $(STAMP)
	$(PY) -m pytest

benchmark: $(STAMP)
	$(PY) -m pytest -m benchmark

clean:
	rm -rf $(VENV) build *.egg-info
