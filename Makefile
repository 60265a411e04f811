# Two entry points (see README): `make report` and `make test`.  Both set up .venv on first use.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.rvc_lab-installed
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup system report test bench live-bench live-soak clean

setup: $(STAMP) system

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip "setuptools<82" wheel
	# torch first, then its torchaudio twin (the order the registries need for this pair)
	$(BIN)/pip install -q torch==2.9.1
	$(BIN)/pip install -q torch==2.9.1 torchaudio==2.9.1
	$(BIN)/pip install -q -e ".[notebooks,dev,fairseq,live,export,ab]"
	# resemblyzer requires the source-only webrtcvad; the ab extra's webrtcvad-wheels is that module prebuilt
	$(BIN)/pip install -q --no-deps resemblyzer==0.1.4
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
	$(BIN)/python bench/speed_bench.py --out bench-out --backends onnx $(if $(UPSTREAM),--upstream-checkout $(UPSTREAM))
	$(if $(UPSTREAM),$(BIN)/python bench/offline_bench.py --upstream-checkout $(UPSTREAM) --out bench-out/offline)

# live conversion on a private JACK loop (bench/live_soak.py): 10 minutes for the no-late-block goal,
# 60 minutes for the stability soak; figures and tables in bench-out/live_*
live-bench: setup
	$(BIN)/python bench/live_soak.py --minutes 10 --out bench-out/live_bench

live-soak: setup
	$(BIN)/python bench/live_soak.py --minutes 60 --out bench-out/live_soak

clean:
	rm -rf $(VENV) .cache
