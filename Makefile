# riskd: `make run` and `make test` are all a newcomer needs (see README.md).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BUF    := .tools/node_modules/.bin/buf
ARGS   ?=

.PHONY: run test test-boundscheck lint proto proto-check bench clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m riskd_server.warm  # compile the numba kernels into their cache: the first start takes seconds
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/riskd serve $(ARGS)

test: $(STAMP)
	$(PY) -m pytest $(ARGS)

# The kernel, wire, single-order, servicer and fuzz tests again with numba's bounds checking on:
# an out-of-bounds index is then an IndexError, not a silent read. Its own numba cache: numba's
# on-disk cache does not key on the flag and would load the unchecked machine code.
BOUNDSCHECK_TESTS := tests/test_name_index.py tests/test_wire_fuzz.py tests/test_wire.py \
	tests/test_wire_schema.py tests/test_names.py tests/test_servicer.py tests/test_kernel_model.py \
	tests/test_bounds.py tests/test_engine_recovery.py tests/test_snapshot_engine.py \
	tests/test_sizing.py tests/test_sizer.py tests/test_var_kernel.py \
	tests/test_limit_scale.py tests/test_dynamic_limits.py tests/test_checkpoint.py tests/test_replay.py tests/test_journal.py \
	tests/test_limit_admin.py
test-boundscheck: $(STAMP)
	NUMBA_BOUNDSCHECK=1 NUMBA_CACHE_DIR=.numba-boundscheck $(PY) -m pytest $(BOUNDSCHECK_TESTS) $(ARGS)

$(BUF):
	mkdir -p .tools
	cd .tools && npm install --silent --no-audit --no-fund --prefix . @bufbuild/buf@1.75.0 >/dev/null

lint: $(STAMP) $(BUF)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy client/riskd_client server/riskd_server
	$(BUF) lint proto
	$(PY) scripts/gen_proto.py --check

proto: $(STAMP)
	$(PY) scripts/gen_proto.py

proto-check: $(STAMP)
	$(PY) scripts/gen_proto.py --check

bench: $(STAMP)
	$(PY) -m bench.run_all $(ARGS)

clean:
	rm -rf $(VENV) .tools .riskd .pytest_cache .numba-boundscheck
