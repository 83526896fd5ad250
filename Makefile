# The two entry points: `make reproduce` (set up + run every study on embedded data) and `make test`.
# Both create .venv when missing and install the pinned CPU build of torch first, so that no other
# package can pull a CUDA build.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
TORCH   := torch==2.13.0
STAMP   := $(VENV)/.genlab-installed
PRESET  ?= quick
OUT     ?= runs

.PHONY: setup reproduce test lint format clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet "$(TORCH)"
	echo "$(TORCH)" > $(VENV)/constraints.txt
	$(BIN)/pip install --quiet -c $(VENV)/constraints.txt -e ".[dev]"
	touch $(STAMP)

reproduce: $(STAMP)
	$(BIN)/genlab reproduce --preset $(PRESET) --out $(OUT) --executor process --workers 2

test: $(STAMP)
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) build dist src/*.egg-info
