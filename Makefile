# Set-up is two commands: `make run` and `make test`. Both create .venv when missing.
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_CPU := torch==2.13.0

.PHONY: run test lint venv bench clean

$(STAMP): pyproject.toml
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	@# Without a CUDA driver take the CPU build of torch (on disk here); never a multi-GB CUDA wheel.
	if command -v nvidia-smi >/dev/null 2>&1; then $(VPY) -m pip install -q torch; \
	else $(VPY) -m pip install -q $(TORCH_CPU); fi
	$(VPY) -m pip install -q -e '.[dev]'
	@# Soft edges use pymatting, whose numba kernels compile on first import (about 2 min on 2 cores, then cached
	@# on disk): pay that once here rather than on a user's first cut-out.
	@echo "Compiling pymatting's kernels once (cached afterwards)..."
	$(VPY) -c "import pymatting"
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	@# Qt's X11 plugin needs system libraries a fresh Linux may lack: as root install them, else name the command.
	$(VPY) -m mos_studio.app.xcb_check --install
	$(VENV)/bin/mos-studio --cut resources/samples/sample.jpg

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VPY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(VPY) benchmarks/bench_cascade.py
	$(VPY) benchmarks/bench_metrics.py

clean:
	rm -rf $(VENV) build *.egg-info
