# rarenet: `make demo` and `make test` set themselves up (virtualenv + install) on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
GRPC_TOOLS_VERSION := 1.85.1

.PHONY: all install lint types test test-all demo bench bench-method bench-national protos clean

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy's whole configuration is [tool.mypy] in pyproject.toml (strict on protos/, method/, auditor/).
types: $(STAMP)
	$(BIN)/mypy

# The fast lane, for every change: lint, types, and every test not marked slow.
test: lint types
	$(BIN)/python -m pytest -q -m "not slow"

# Everything (CI runs this): lint, types, and the whole suite, slow tests included.
test-all: lint types
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/python -m demo.run --out demo-report

bench: $(STAMP)
	$(BIN)/python -m bench.run

# The method's operating characteristics by simulation (false flags, power); tables in docs/method.md.
bench-method: $(STAMP)
	$(BIN)/python -m bench.bench_method

# A national network in one run (issue 17): 300, 1,000 and 3,000 labs x four quarters, then the
# summarize ratio, so every target of the issue is printed by one command.
bench-national: $(STAMP)
	$(BIN)/python -m bench.run national summarize

# Regenerates the committed Python code from protos/rarenet/v1/*.proto.
protos: $(STAMP)
	$(BIN)/python -m protos.generate

clean:
	rm -rf $(VENV) demo-report .pytest_cache build *.egg-info
