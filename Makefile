# `make demo` and `make test` each do all the set-up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast bench clean static

# Browser libraries of `cnnlab serve` (onnxruntime-web, uPlot): from npm with the lockfile,
# copied into the Python package so the app works with no internet and no CDN.
VENDOR := cnnlab/web/static/vendor
VENDOR_STAMP := $(VENDOR)/.installed
ORT := frontend/node_modules/onnxruntime-web
$(VENDOR_STAMP): frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --ignore-scripts
	mkdir -p $(VENDOR)
	cp $(ORT)/dist/ort.wasm.min.js $(ORT)/dist/ort-wasm-simd-threaded.mjs $(ORT)/dist/ort-wasm-simd-threaded.wasm $(VENDOR)/
	cp $(ORT)/package.json $(VENDOR)/onnxruntime-web.package.json  # MIT; the package ships no LICENSE file
	cp frontend/node_modules/uplot/dist/uPlot.iife.min.js frontend/node_modules/uplot/dist/uPlot.min.css $(VENDOR)/
	cp frontend/node_modules/uplot/LICENSE $(VENDOR)/LICENSE.uplot
	touch $(VENDOR_STAMP)

static: $(VENDOR_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch pinned: 2.13.0 is this machine's CPU build; a looser pin pulls the CUDA wheels.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/cnnlab train lenet5

test: $(STAMP) $(VENDOR_STAMP)
	$(PY) -m pytest -q --durations=20

test-fast: $(STAMP) $(VENDOR_STAMP)
	$(PY) -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) .pytest_cache frontend/node_modules $(VENDOR)
