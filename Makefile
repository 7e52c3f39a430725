# Two entry points (see README): `make demo` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip -q --disable-pip-version-check
RAW ?= ../shared/data/raw

.PHONY: demo test install clean

demo: install
	$(VENV)/bin/cumed demo --raw $(RAW)

# The Label Studio tests start a real server from its own venv (installed here, ~90 s once);
# LLaMA-Factory (its own venv, ~2 min, 6.6 GB) loads our exports in tests/training/test_llamafactory.py.
test: install labelstudio llamafactory
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

# LLaMA-Factory in its own venv (it pins its own torch/transformers: a CUDA torch, ~6.5 GB, that
# also runs on CPU); tests/training/test_llamafactory.py loads our llamafactory/llamafactory-rm
# exports with its loader ($CUMED_LF_VENV overrides the path for the test and here).
LF_VENV ?= $(or $(CUMED_LF_VENV),.venv-llamafactory)
LF_VERSION := 0.9.5
.PHONY: llamafactory
llamafactory: $(LF_VENV)/.cumed-llamafactory-$(LF_VERSION)

$(LF_VENV)/.cumed-llamafactory-$(LF_VERSION):
	$(PYTHON) -m venv $(LF_VENV)
	$(LF_VENV)/bin/python -m pip -q --disable-pip-version-check install --upgrade pip
	$(LF_VENV)/bin/python -m pip -q --disable-pip-version-check install llamafactory==$(LF_VERSION)
	touch $@
