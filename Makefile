# The doors a person uses. Each target installs what it needs on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-nodeps.txt pyproject.toml | cksum | cut -d' ' -f1)
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install demo test bench export synth clean

install: $(STAMP)
	@scripts/system-deps.sh $(VENV)

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -c 'import nmpu_model; nmpu_model.warm_up()'
	rm -f $(VENV)/.installed-*
	touch $@

demo: install
	$(BIN)/nmpu run

test: install
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q -rs

bench: install
	$(BIN)/python benchmarks/bench_model.py

export: install
	$(BIN)/nmpu export -o build/nmpu.v

synth: install
	$(BIN)/nmpu synth --compare

clean:
	rm -rf build sim_build .pytest_cache
