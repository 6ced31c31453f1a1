# The README's two commands: `make run` and `make test`. Both create the environment on first use.
SHELL := /bin/bash
VENV ?= .venv
STAMP := $(VENV)/.installed
# Extra flags for `make run`, e.g. make run ARGS="--split random".
ARGS ?=
export PYTHON

SERVE_VENV ?= .venv-serve
SERVE_STAMP := $(SERVE_VENV)/.installed

.PHONY: run serve test test-fast lint format docs lock engines engines-if-possible bench bench-distributed bench-predict bench-serve bench-quality bench-history bench-metadata bench-fuzz clean

run: $(STAMP)
	$(VENV)/bin/fraud-pipeline run $(ARGS)

# The model server for what `make run` pushed (TF Serving's REST API on port 8501), in its own environment
# (requirements-serve.lock: KServe and TensorFlow, no TFX), set up on first use. E.g. make serve ARGS="--port 9000".
serve: $(STAMP) $(SERVE_STAMP)
	$(VENV)/bin/fraud-pipeline serve $(ARGS)

$(SERVE_STAMP): requirements-serve.lock setup.py scripts/bootstrap-serve-venv $(STAMP)
	scripts/bootstrap-serve-venv $(SERVE_VENV)
	touch $@

# Two workers (these machines have 2 cores; a pipeline run keeps about one busy): the tests of one shared run
# are one group on one worker (tests/conftest.py). TEST_WORKERS=0 runs them in this process, one after another.
TEST_WORKERS ?= 2
test: $(STAMP) $(SERVE_STAMP) lint engines-if-possible
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadgroup --durations=15

# The fast tier: everything but the end-to-end pipeline runs (@pytest.mark.e2e), the comparisons with TFX's own
# Beam executors (@pytest.mark.against_tfx, a Beam pipeline each) and the unit tests of over about 5 s
# (@pytest.mark.slow), on the same workers.
test-fast: $(STAMP) $(SERVE_STAMP) lint
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadgroup -m "not e2e and not against_tfx and not slow"

# The real engines the cluster tests run on (Apache Flink and Spark, Beam's job servers for them, Beam's Go boot),
# fetched from PyPI, Maven Central and the Go module proxy into ~/.cache/fraud-pipeline/engines (once per machine;
# FRAUD_PIPELINE_ENGINES moves it). Needs java, mvn and go. `make test` tries it and, where it fails, the engine
# tests skip saying why (.ci/run makes them fail instead: FRAUD_PIPELINE_REQUIRE_ENGINES=1).
engines: $(STAMP)
	$(VENV)/bin/python -m tests.beam_cluster fetch

engines-if-possible: $(STAMP)
	-$(VENV)/bin/python -m tests.beam_cluster fetch

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The documentation site into site/ (the test suite builds it too, with --strict).
docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

$(STAMP): requirements.lock setup.py scripts/bootstrap-venv
	scripts/bootstrap-venv $(VENV)
	touch $@

# Re-resolves the dependency set from setup.py and pins it again (needs the package registry).
lock: $(STAMP)
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	{ echo "# The whole resolved dependency set, pinned (pip freeze of a working install on Python 3.10), pip and"; \
	  echo "# setuptools included (the venv is made without ensurepip's). Regenerate with: make lock"; \
	  $(VENV)/bin/python -m pip freeze --all --exclude-editable; } > requirements.lock

bench: $(STAMP)
	$(VENV)/bin/python bench/bench_pipeline.py $(BENCH_ARGS)

# The Beam components on the direct runner, on Flink with 1 and 2 TaskManagers and on Spark (the full past file).
bench-distributed: $(STAMP) engines
	$(VENV)/bin/python bench/distributed.py --spark --boot-reference $(BENCH_ARGS)

# fraud-pipeline predict against the same model on in-memory rows; MODEL=output/serving/N (default: the newest).
MODEL ?= $(shell ls -d output/serving/[0-9]* 2>/dev/null | sort -t/ -k3 -n | tail -1)
bench-predict: $(STAMP)
	$(VENV)/bin/python bench/predict.py --model $(MODEL) $(BENCH_ARGS)

# The model server against the signature called in-process: single-row latency, 8 clients, swaps under load.
bench-serve: $(STAMP) $(SERVE_STAMP)
	$(VENV)/bin/python bench/serve.py $(BENCH_ARGS)

# Model quality on later data: time folds x seeds, the pipeline's Trainer against XGBoost (bench-only dependencies,
# requirements-bench.txt). E.g. make bench-quality BENCH_ARGS="--variants default,wide --tune 10 --tfdf"; the README
# section "Model quality on later data" has the invocations behind its tables.
bench-quality: $(STAMP)
	$(VENV)/bin/python -m pip install --quiet -r requirements-bench.txt
	$(VENV)/bin/python bench/quality.py $(BENCH_ARGS)

# The history windows' lift on the simulated log: the pipeline with and without them, beside a plain script on the
# same examples (PR-AUC, ROC AUC, card precision@100 a day). E.g. make bench-history BENCH_ARGS="--days 60".
bench-history: $(STAMP)
	$(VENV)/bin/python bench/history_lift.py $(BENCH_ARGS)

# ML Metadata on PostgreSQL against SQLite: the sample's run and cached re-run, and history over a few hundred runs.
bench-metadata: $(STAMP)
	$(VENV)/bin/python bench/metadata.py $(BENCH_ARGS)

# The fuzzer of the CSV contract's readers for a fixed time (BENCH_ARGS="--seconds 600"): executions and findings.
bench-fuzz: $(STAMP)
	$(VENV)/bin/python bench/fuzz.py $(BENCH_ARGS)

clean:
	rm -rf output .pytest_cache site
