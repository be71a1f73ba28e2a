# Two entry points: `make demo` (the main job) and `make test`. Each installs what it needs.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3.10 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PACKAGES := sefm_interfaces sefm_policy sefm_reward sefm_trainer sefm_sim_bridge sefm
STAMP := $(VENV)/.installed
# The CPU build of torch 2.13.0 sits on local disk here; plain `torch` from PyPI pulls GBs of CUDA.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels)

# Every ROS process we start stays on loopback with its own domain.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export MUJOCO_GL ?= egl

.PHONY: install test lint demo bench clean

install: $(STAMP)

$(STAMP): constraints.txt requirements.txt $(foreach p,$(PACKAGES),src/$(p)/setup.py)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check $(FIND_LINKS) -c constraints.txt torch
	$(BIN)/python -m pip install -q --disable-pip-version-check $(FIND_LINKS) -c constraints.txt \
		-r requirements.txt $(foreach p,$(PACKAGES),-e src/$(p))
	touch $@

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python benchmarks/efm_bench.py
	$(BIN)/python benchmarks/sim_bench.py
	$(BIN)/python benchmarks/demonstrator_bench.py
	$(BIN)/python benchmarks/vision_probe.py

# Demonstrations -> Stage 1 (shipped checkpoint unless FROM_SCRATCH=1) -> Stage 2 on 2 ROS robots -> report.
demo: install
	$(BIN)/sefm demo --config config/demo.yaml $(if $(FROM_SCRATCH),--from-scratch)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
