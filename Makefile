# zeroshot-audio: `make run` (the main job on the bundled default data) and `make test`.
# The virtual environment lives in $(VENV) (default .venv); CI points VENV at a cache.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.zeroshot-audio-installed
# Offline by default: no telemetry prompt, no model-hub calls (the label encoder ships in a package).
export KEDRO_DISABLE_TELEMETRY := 1
export HF_HUB_OFFLINE := 1
export MPLBACKEND := Agg
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: install run test lint bench viz mlflow-ui clean

# `make run` and `make test` end by printing how long they took, install included (START is read
# when make starts). $(call timed,command,label) keeps the command's exit status.
START := $(shell date +%s)
timed = $(1); status=$$?; took=$$(( $$(date +%s) - $(START) )); \
	printf '\n%s took %d min %02d s\n' "$(2)" $$((took / 60)) $$((took % 60)); exit $$status

# The stamp alone is not proof: another clone sharing a cached environment re-points its editable
# install (and leaves this clone's stamp behind), so check where the package imports from, and
# re-point it here when it is elsewhere (no dependency is fetched).
install: $(STAMP)
	@$(BIN)/python -c "import pathlib, zeroshot_audio; assert pathlib.Path(zeroshot_audio.__file__).resolve().is_relative_to(pathlib.Path('$(CURDIR)').resolve())" 2>/dev/null \
		|| { echo "re-pointing the editable install at $(CURDIR)"; $(BIN)/python -m pip install --quiet --no-deps -e .; }

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (set PYTHON=...)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: install
	@$(call timed,$(BIN)/kedro run,make run)

# Headless Chromium for the 2 browser tests is installed where apt allows (.ci/install-chromium);
# elsewhere those 2 tests skip, naming the missing browser. Full-data tests need ../shared.
test: install
	@.ci/install-chromium
	@$(call timed,$(BIN)/python -m pytest --durations=25,make test)

lint: install
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/ruff format --check src tests benchmarks tools

bench: install
	$(BIN)/python benchmarks/bench_split.py

viz: install
	$(BIN)/kedro viz run

mlflow-ui: install
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db

clean:
	rm -rf data/02_intermediate/* data/03_primary/* data/04_feature/* data/05_model_input/* \
		data/06_models/* data/07_model_output/* data/08_reporting/* mlflow.db mlruns
	git checkout -- data
