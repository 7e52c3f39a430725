# Two entry points (see README): `make demo` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip -q --disable-pip-version-check
RAW ?= ../shared/data/raw

.PHONY: demo test install clean

demo: install
	$(VENV)/bin/cumed demo --raw $(RAW)

# The Label Studio tests start a real server from its own venv (installed here, ~90 s once).
test: install labelstudio
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

# Label Studio in its own venv (in .venv it would downgrade pyarrow); `cumed labelstudio start` and
# tests/annotation/test_labelstudio.py use it ($CUMED_LS_VENV overrides the path for both).
LS_VENV ?= $(or $(CUMED_LS_VENV),.venv-labelstudio)
LS_VERSION := 1.23.2
.PHONY: labelstudio
labelstudio: $(LS_VENV)/.cumed-label-studio-$(LS_VERSION)

$(LS_VENV)/.cumed-label-studio-$(LS_VERSION):
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip -q --disable-pip-version-check install label-studio==$(LS_VERSION)
	touch $@
