# The two commands a new machine needs: `make test` and `make run`. Each creates .venv with a
# Python >= 3.11 when it is missing and installs the project into it.
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && echo $$p && break; done)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_DIR ?= var/run
LISTEN ?= 127.0.0.1:8082
PROXY_PORT ?= 8080

.PHONY: test run lint install clean demo-reset bench bench-memory

# Editable in "compat" mode (a plain path in a .pth): setuptools' default editable finder costs
# every Python start ~15 ms, which per-run Python hooks would pay on each run.
$(STAMP): pyproject.toml Makefile
	@test -n "$(PYTHON)" || { echo "make: no Python >= 3.11 found; run: make PYTHON=/path/to/python3.11"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]' --config-settings editable_mode=compat
	@touch $(STAMP)

install: $(STAMP)

# The package as users install it: the wheel built from a clean build folder (setuptools would
# reuse files a stale one holds), installed non-editable in a venv of its own, where
# tests/test_installed.py runs hooks through it.
WHEEL_VENV ?= $(VENV)-wheel
WHEEL_DIR := var/wheel/$(notdir $(VENV))
WHEEL_STAMP := $(WHEEL_VENV)/.installed
$(WHEEL_STAMP): $(STAMP) $(shell git ls-files addon control_api 2>/dev/null)
	rm -rf build $(WHEEL_DIR)
	$(BIN)/python -m pip wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation -w $(WHEEL_DIR) .
	rm -rf build
	@test -x $(WHEEL_VENV)/bin/python || $(BIN)/python -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install --quiet --disable-pip-version-check $(WHEEL_DIR)/*.whl
	$(WHEEL_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps $(WHEEL_DIR)/*.whl
	@touch $(WHEEL_STAMP)

test: $(STAMP) $(WHEEL_STAMP)
	PROXY_HOOKS_WHEEL_VENV=$(abspath $(WHEEL_VENV)) $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check addon control_api tests configs bench
	$(BIN)/mypy

# The demo works on a copy of configs/ so that API writes never touch the tracked files.
$(RUN_DIR)/demo.json:
	mkdir -p $(RUN_DIR)
	cp -R configs/. $(RUN_DIR)/

demo-reset:
	rm -rf $(RUN_DIR)

# The proxy on 127.0.0.1:$(PROXY_PORT), its control API on $(LISTEN), and the demo services.
run: $(STAMP) $(RUN_DIR)/demo.json
	@$(BIN)/python configs/demo_upstream.py 9001 9002 $(PROXY_PORT) & upstream=$$!; \
	trap 'kill $$upstream 2>/dev/null' EXIT INT TERM; \
	echo "Hooks: $(RUN_DIR) (a copy of configs/; make demo-reset restores it). API: http://$(LISTEN)/api/v1/containers/demo/proxy/hooks"; \
	$(BIN)/proxy-hooks run --config $(RUN_DIR) --listen-port $(PROXY_PORT) --api $(LISTEN) --events $(RUN_DIR)/events.db

# Prints the README's tables: mitmdump pinned to a CPU of its own, every configuration against
# bare mitmdump, interleaved over rounds (see bench/run.py; BENCH_ARGS="--help" for the options).
bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# mitmdump's memory for one large upload through a hooked path (see bench/memory.py).
bench-memory: $(STAMP)
	$(BIN)/python bench/memory.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(WHEEL_VENV) var .pytest_cache .mypy_cache .ruff_cache *.egg-info
