# medconv: `make demo` and `make test` work from a clean clone with only Python installed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
MEDCONV := $(VENV)/bin/medconv
DEMO_DIR ?= demo-out
JOBS ?= auto

.PHONY: help demo test bench completions lint fuzz install install-test system-tools clean

help:  ## list the targets
	@echo "medconv make targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  %-14s %s\n", $$1, $$2}'

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@

$(VENV)/.installed-bench: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	@touch $@

# The package is installed editable, so its bytecode is not compiled at install time; a machine
# with PYTHONDONTWRITEBYTECODE set would then recompile every module on every call (~70 ms).
# compileall only rewrites what changed, and a stale .pyc is never used (Python checks mtimes).
BYTECODE = $(PY) -m compileall -q medconv

install: $(VENV)/.installed  ## create .venv and install medconv
	@$(BYTECODE)

install-test: $(VENV)/.installed-test

demo: $(VENV)/.installed  ## install, convert a real sample, show info and stats of the result
	@$(BYTECODE)
	@mkdir -p $(DEMO_DIR)
	@SRC=$$($(PY) -c "import nibabel, os; print(os.path.join(os.path.dirname(nibabel.__file__), 'tests', 'data', 'example4d.nii.gz'))"); \
	echo "+ medconv convert $$SRC $(DEMO_DIR)/example4d_ras.nii.gz --orient RAS --force"; \
	$(MEDCONV) convert "$$SRC" $(DEMO_DIR)/example4d_ras.nii.gz --orient RAS --force && \
	echo "+ medconv info $(DEMO_DIR)/example4d_ras.nii.gz" && $(MEDCONV) info $(DEMO_DIR)/example4d_ras.nii.gz && \
	if $(MEDCONV) stats --help >/dev/null 2>&1; then echo "+ medconv stats $(DEMO_DIR)/example4d_ras.nii.gz" && \
	$(MEDCONV) stats $(DEMO_DIR)/example4d_ras.nii.gz; fi && \
	echo "result: $(DEMO_DIR)/example4d_ras.nii.gz"

# Debian tools some tests and the benchmark drive (GNU parallel for the scale-out recipes, headless
# Chromium for the QC page, pigz/mrtrix3/plastimatch/gdcm as benchmark peers). Installed only where
# apt-get can (root on Debian); elsewhere the tests that need them skip and say why.
SYSTEM_TOOLS ?= parallel chromium
system-tools:  ## install the Debian tools the tests use, where apt-get is usable (root)
	@missing=""; for p in $(SYSTEM_TOOLS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "+ apt-get install$$missing"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing >/dev/null) \
		|| echo "note: could not install$$missing; the tests that need them skip"; \
	else echo "note:$$missing not installed (needs root and apt-get); the tests that need them skip"; fi

# The vendor DICOM corpora (real scanner exports, ~90 MB) are not in the repository: the tests that
# use them read MEDCONV_VENDOR_TESTDATA, which defaults to the project's shared data folder when a
# checkout has one beside it, and skip, saying so, otherwise.
VENDOR_TESTDATA ?= $(wildcard $(abspath ..)/shared/testdata/vendor)
VENDOR_ENV = $(if $(VENDOR_TESTDATA),MEDCONV_VENDOR_TESTDATA=$${MEDCONV_VENDOR_TESTDATA:-$(VENDOR_TESTDATA)})

test: $(VENV)/.installed-test system-tools  ## install the test extras and run the whole suite
	@$(BYTECODE)
	$(VENDOR_ENV) $(PY) -m pytest -q -n $(JOBS) tests

bench: SYSTEM_TOOLS = pigz mrtrix3 plastimatch libgdcm-tools
bench: $(VENV)/.installed-bench system-tools  ## time medconv beside its peers on the same fixtures (ratios)
	@$(BYTECODE)
	$(PY) bench/run.py

completions: $(VENV)/.installed  ## regenerate bash/zsh/fish completions from the CLI
	$(PY) -m medconv.completions completions

$(VENV)/.installed-lint: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[lint]'
	@touch $@

lint: $(VENV)/.installed-lint  ## ruff over the package, tests and bench (rules in pyproject.toml)
	$(VENV)/bin/ruff check medconv tests bench

SEED ?= 1
CALLS ?= 10000
fuzz: $(VENV)/.installed-test  ## longer fuzzing: every reader, then CALLS mutated calls of every command (SEED=N)
	MEDCONV_FUZZ_EXAMPLES=2000 MEDCONV_FUZZ_BUDGET=0 $(PY) -m pytest -q tests/fuzz
	PYTHONPATH=tests:tests/dicom nice $(PY) tests/fuzz/campaign.py --seed $(SEED) --calls $(CALLS) --all-seeds

clean:  ## remove build and demo outputs (keeps .venv)
	rm -rf $(DEMO_DIR) build *.egg-info .pytest_cache
