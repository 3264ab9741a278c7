# mesobench — the two commands a newcomer needs:
#   make benchmark    run the quick experiment (cached CC18 tasks, 3 folds, every model) + report
#   make test         run the test suite
#   make test-fast    the tests not marked slow
#   make benchmark EXPERIMENT=nimo_synthetic   any experiment of conf/experiment/ (+ its report)
#   make report       regenerate results/<experiment>/ from mlflow.db without training anything
#   make parity       IMN on the diabetes folds against the IMN reference code's figures
# Both create .venv/ and install everything on first use.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# CPU build of torch (fast to install). For a CUDA build, e.g.:
#   make install TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0
# Offline OpenML cache: if OPENML_CACHE_DIR is unset and OPENML_CACHE_SRC exists, a writable copy
# is made in .cache/openml (openml-python writes beside its data; never point it at a read-only copy).
OPENML_CACHE_SRC ?= ../shared/openml-cache
# Figures of the reference implementations (fold by fold), compared with ours by `make parity`.
REFERENCE_DIR ?= ../shared/reference
EXPERIMENT ?= quick
JOBS ?= 2
ARGS ?=
PYTEST_ARGS ?=
# Test processes (pytest-xdist): auto = one per core, 0 = none. A module whose tests share a
# module-scoped fixture (a server, a cluster) runs in one process (xdist_group, --dist loadgroup).
TEST_WORKERS ?= auto
PYTEST := $(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup

ifeq ($(strip $(OPENML_CACHE_DIR)),)
ifneq ($(wildcard $(OPENML_CACHE_SRC)),)
export OPENML_CACHE_DIR := $(CURDIR)/.cache/openml
CACHE_PREREQ := $(CURDIR)/.cache/openml/.copied
endif
endif

.PHONY: install test test-fast benchmark report parity aggregate ui server lint format clean

$(VENV)/.installed: pyproject.toml
	@echo "Creating $(VENV) and installing mesobench with its dependencies (a few minutes the first time)..."
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --quiet --upgrade pip
	$(PY) -m pip install --quiet --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet --quiet -e ".[dev,server]"
	@touch $@

install: $(VENV)/.installed

$(CURDIR)/.cache/openml/.copied:
	@mkdir -p $(dir $@)
	cp -r $(OPENML_CACHE_SRC)/. $(dir $@)
	chmod -R u+w $(dir $@)
	@touch $@

test: install $(CACHE_PREREQ)
	$(PYTEST) $(PYTEST_ARGS)

test-fast: install $(CACHE_PREREQ)
	$(PYTEST) -m "not slow" -q $(PYTEST_ARGS)

benchmark: install $(CACHE_PREREQ)
	$(PY) -m mesobench.run -m +experiment=$(EXPERIMENT) hydra/launcher=joblib hydra.launcher.n_jobs=$(JOBS) $(ARGS)
	$(MAKE) report EXPERIMENT=$(EXPERIMENT)

# Regenerate results/$(EXPERIMENT)/ from mlflow.db (no training): tables, plots, summary MLflow run.
report: install
	$(PY) -m mesobench.aggregate +experiment=$(EXPERIMENT)

# IMN at the paper settings on the 10 diabetes folds, against the IMN reference code's figures
# (results/imn_parity/, with the variants of conf/model/variants/imn_*; ARGS adds runner
# overrides, e.g. ARGS="model=imn model.params.lr=0.001" for one more configuration).
parity: install $(CACHE_PREREQ)
	$(PY) -m mesobench.run -m +experiment=imn_parity hydra/launcher=joblib hydra.launcher.n_jobs=$(JOBS) $(ARGS)
	$(PY) -m mesobench.aggregate +experiment=imn_parity \
		parity.reference=$(REFERENCE_DIR)/imn_reference_diabetes.csv

aggregate: install
	$(PY) -m mesobench.aggregate $(ARGS)

ui: install
	$(PY) -m mesobench.store.ui --store sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port 5000

# A shared tracking server for many machines: PostgreSQL backend + MLflow on 127.0.0.1:5000
# (ARGS="--host 0.0.0.0" serves a cluster, with generated credentials: docs/slurm.md).
server: install
	$(PY) scripts/mlflow_server.py --dir $(CURDIR)/.cache/mlflow-server --port 5000 --pg-port 5433 $(ARGS)

lint: install
	$(VENV)/bin/ruff format --check src tests scripts
	$(VENV)/bin/ruff check src tests scripts

format: install
	$(VENV)/bin/ruff format src tests scripts
	$(VENV)/bin/ruff check --fix src tests scripts

clean:
	rm -rf outputs .pytest_cache .ruff_cache
