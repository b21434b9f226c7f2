# Two entry points on a fresh clone: `make run` (the demo pipeline) and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# pip skips compiling every installed module (--no-compile); each module is compiled once, on its first
# import, instead. That needs bytecode caching on, which some machines switch off for every process.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: run test test-fast test-cluster install bench clean chromium

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-compile -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

run: $(STAMP)
	dvc repro

test: $(STAMP) chromium
	python -m pytest

# The report test opens the Snakemake report in headless Chromium, from Debian's packages (root and apt).
chromium:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    export DEBIAN_FRONTEND=noninteractive; (apt-get install -y -q chromium || (apt-get update -q && apt-get install -y -q chromium)) >/dev/null; \
	  else echo "chromium is missing and cannot be installed here (needs root and apt-get): the report test will fail"; fi; }

# The unit tests alone (under a minute): everything but the tests marked `pipeline`.
test-fast: $(STAMP)
	python -m pytest -m "not pipeline"

# A live single-node Slurm started on this machine (root and apt-get: it installs Slurm and munge from
# Debian's packages), and the tiny K grid through workflow/profiles/slurm, compared with a local run.
test-cluster: $(STAMP)
	python tests/live_slurm.py

bench: $(STAMP)
	python bench/demo.py

clean:
	rm -rf data .snakemake
