# Two entry points (see README): `make demo` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip -q --disable-pip-version-check
RAW ?= ../shared/data/raw

.PHONY: demo test install clean

demo: install
	$(VENV)/bin/cumed demo --raw $(RAW)

test: install
	$(PY) -m pytest -q

install: $(VENV)/.installed

# torch first: the CPU wheel, so the rest does not pull a CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install torch==2.13.0
	$(PIP) install -e ".[all]"
	touch $@

clean:
	rm -rf $(VENV) .cache store
