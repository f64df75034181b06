# The two set-up commands of the README, each working from a fresh clone:
#   make scorecard   install, then run the scorecard on the shipped toy model and its random
#                    twin -> reports/scorecard.html
#   make test        install, then run every test (what CI runs)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: scorecard test lint install

$(BIN)/pytest: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned: the CPU build on these machines; a range would pull a CUDA build.
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e ".[test]"
	touch $@

install: $(BIN)/pytest

scorecard: $(BIN)/pytest
	$(BIN)/pytest criteria -m toy --html=reports/scorecard.html --self-contained-html

# Two xdist workers, one model per worker (--dist loadgroup, docs/SCALING.md): SmolLM2's chain
# runs on one while the other takes everything else; results do not depend on it.
test: $(BIN)/pytest
	$(BIN)/pytest -n 2 --dist loadgroup

lint: $(BIN)/pytest
	$(BIN)/ruff check .
