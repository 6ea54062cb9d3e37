# The two set-up commands of the README: `make demo` and `make test`. Both create the
# virtual environment on first use and install the project into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and exact: here 2.13.0 is a local CPU wheel; anything looser fetches CUDA builds (GBs).
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	rm -rf runs/studies/demo
	$(BIN)/cgan-study study run --config examples/demo.toml --name demo
	$(BIN)/cgan-study analyze runs/studies/demo

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

test-fast: $(VENV)/.installed
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/data_prep.py
	$(BIN)/python benchmarks/train_speed.py --quick

clean:
	rm -rf $(VENV) runs .pytest_cache
