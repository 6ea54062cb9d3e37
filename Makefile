# The two set-up commands of the README: `make demo` and `make test`. Both create the
# virtual environment on first use and install the project into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO ?= demo-data

.PHONY: demo test test-fast bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and exact: here 2.13.0 is a local CPU wheel; anything looser fetches CUDA builds (GBs).
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	rm -rf $(DEMO)
	$(BIN)/cgan-study data synth --out $(DEMO)
	$(BIN)/cgan-study data prepare $(DEMO)/fer2013.csv --out $(DEMO)/fer2013.npz
	$(BIN)/cgan-study data prepare $(DEMO)/images --out $(DEMO)/folders.npz --name fer2013-folders
	$(BIN)/cgan-study data fuse $(DEMO)/fer2013.npz $(DEMO)/folders.npz --out $(DEMO)/fuse.npz
	$(BIN)/cgan-study data info $(DEMO)/fuse.npz --grid $(DEMO)/fuse-grid.png

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

test-fast: $(VENV)/.installed
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/data_prep.py

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache
