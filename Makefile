# Two entry points (see README): `make report` and `make test`.  Both set up .venv on first use.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.rvc_lab-installed
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup system report test bench clean

setup: $(STAMP) system

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip "setuptools<82" wheel
	# torch first, then its torchaudio twin (the order the registries need for this pair)
	$(BIN)/pip install -q torch==2.9.1
	$(BIN)/pip install -q torch==2.9.1 torchaudio==2.9.1
	$(BIN)/pip install -q -e ".[notebooks,dev,fairseq]"
	touch $(STAMP)

system:
	bash scripts/system-packages.sh

report: setup
	$(BIN)/rvc-lab report

test: setup
	$(BIN)/python -m pytest

# make bench [UPSTREAM=/path/to/upstream/checkout]: per-stage stream timings, then the speed bench
bench: setup
	$(BIN)/python bench/stream_bench.py
	$(BIN)/python bench/speed_bench.py --out bench-out $(if $(UPSTREAM),--upstream-checkout $(UPSTREAM))

clean:
	rm -rf $(VENV) .cache
