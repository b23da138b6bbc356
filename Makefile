# Entry points on a fresh clone; each creates the project-local virtual environment on first use.
#   make demo        stream text from the shipped char_lstm through the embedded server, then, in a terminal, serve
#                    the model browser (its address printed) until Ctrl-C; run without a terminal it stops after the
#                    sample, so scripts and CI never hang on it
#   make test        lint, then the whole test suite: what CI runs (.ci/run); as root, installs Chromium first
#   make test-fast   the suite without the tests marked slow, on two workers: every package, under 90 s on 2 cores
#   make lint        ruff, configured in pyproject.toml
#   make benchmark   re-measure BENCHMARKS.md's figures (an hour or more on 2 cores), then regenerate the tables
#   make peers       re-measure the zoo against PyTorch and Keras's built-ins (peers_*.json, xla_flags.json; hours)
#   make quality     retrain and re-score every row of README's model table (hours), then regenerate the tables
#   make tables      regenerate README.md's and BENCHMARKS.md's tables from benchmarks/results/
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: demo test test-fast lint chromium benchmark peers quality tables clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# The bench extra (reservoirpy) on top of dev; redone whenever the dev install is.
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[dev,bench]'
	touch $(BENCH_STAMP)

demo: $(STAMP)
	$(PY) -m serving.demo $$([ -t 0 ] && echo --keep-serving)

lint: $(STAMP)
	$(PY) -m ruff check .

# tests/test_browser_page.py drives Debian's headless Chromium and its driver: installed here when missing. Without
# root or apt-get nothing is installed, and those tests are skipped with that reason (-rs prints it); a failed
# install stops `make test` rather than skip them quietly.
chromium:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then \
		true; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing chromium and chromium-driver for tests/test_browser_page.py"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else \
		echo "Not installing chromium and chromium-driver (needs root and apt-get):" \
			"tests/test_browser_page.py will be skipped. Install both, or run make test as root."; \
	fi

# Two workers, each file on one worker: module-scoped set-ups (servers, backend workers) then run once.
test: lint chromium
	$(PY) -m pytest -rfEs -n 2 --dist loadfile

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" -n 2

# Each command is the one BENCHMARKS.md quotes for its results file, with the settings that file records.
# The GPU figures (layers_jax_gpu.json, check_backend_jax_gpu.json) need a GPU and JAX: see BENCHMARKS.md.
benchmark: $(BENCH_STAMP)
	$(PY) -m benchmarks.layers --rounds 7
	$(PY) -m benchmarks.loop_ab --shape lstm 128 128 --shape elman 128 128 --shape lstm 32 128 \
		--shape lstm 128 512 --shape gru 128 128 --shape gru 32 128
	$(PY) -m benchmarks.serving
	$(PY) -m benchmarks.streaming --repeats 7
	$(PY) -m benchmarks.serving_load
	$(PY) -m benchmarks.serving_pieces
	$(PY) -m benchmarks.xla_step
	$(PY) -m benchmarks.esn --check-radius --dense-too
	$(PY) -m benchmarks.esn --units 400 1000 --dense-too --skip-nrmse84 --out benchmarks/results/esn_sizes.json
	$(PY) -m benchmarks.esn --validate
	$(PY) -m benchmarks.seq2seq
	$(PY) -m benchmarks.check_backend
	$(PY) -m benchmarks.tables --write

# The commands peers_tensorflow_cpu.json records for its parts (`parts_measured_by`), then xla_flags.json's.
peers: $(BENCH_STAMP)
	$(PY) -m benchmarks.peers --parts training memory peak --rounds 3 --keep-other-parts
	$(PY) -m benchmarks.peers --parts generation --rounds 25 --keep-other-parts
	$(PY) -m benchmarks.xla_flags
	$(PY) -m benchmarks.tables --write

quality: $(BENCH_STAMP)
	$(PY) -m benchmarks.quality
	$(PY) -m benchmarks.tables --write

tables: $(STAMP)
	$(PY) -m benchmarks.tables --write

clean:
	rm -rf $(VENV) build *.egg-info
