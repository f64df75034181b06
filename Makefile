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

test: $(BIN)/pytest
	$(BIN)/pytest

lint: $(BIN)/pytest
	$(BIN)/ruff check .
