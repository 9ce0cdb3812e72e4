# BioNIC: two commands on a fresh machine: `make fit` (the main job) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?= data/fer2013
CONFIG ?= configs/bionic.yaml
SEEDS ?= 0 1 2
EPOCHS ?=
VARIANTS ?=
RUNS ?= runs
JOBS ?= 1
ARGS ?=
# pip is capped on the development machines; these are the builds that lie on their disk.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

.PHONY: help install fit test data connectome ablations sweep report rescore bench clean

help:
	@echo "make fit         train BioNIC ($(CONFIG)) on $(DATA); CONFIG=configs/baseline.yaml for the baseline"
	@echo "make test        run the test suite"
	@echo "make data        download FER-2013 into $(DATA) (needs Kaggle credentials)"
	@echo "make connectome  print the bundled column's groups and blocks, draw results/connectome.png"
	@echo "make ablations   every variant x SEEDS, then the report (EPOCHS= VARIANTS= RUNS= JOBS= ARGS=)"
	@echo "make sweep       create a W&B grid sweep over variant x seed"
	@echo "make report      tables and figures from $(RUNS)/ into results/"
	@echo "make rescore     test every committed checkpoint again on $(DATA): each must score its metrics.json"
	@echo "make bench       speed, memory, a full epoch, start-up and a short matrix, into bench.json"

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PINS) || $(PY) -m pip install -q torch torchvision
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

fit: install
	$(PY) -m bionic fit --config $(CONFIG) --data.root $(DATA) $(ARGS)

test: install
	$(PY) -m pytest tests

data:
	@if command -v kaggle >/dev/null && { [ -f ~/.kaggle/kaggle.json ] || [ -n "$$KAGGLE_KEY" ]; }; then \
		mkdir -p $(DATA) && kaggle datasets download -d msambare/fer2013 -p $(DATA) --unzip && ls $(DATA); \
	else \
		echo "FER-2013 needs a Kaggle download:"; \
		echo "  1. pip install kaggle; put your API token in ~/.kaggle/kaggle.json (kaggle.com > Settings > API)"; \
		echo "  2. make data   (or download https://www.kaggle.com/datasets/msambare/fer2013 by hand"; \
		echo "     and unzip it so that $(DATA)/train/<class>/*.jpg and $(DATA)/test/<class>/*.jpg exist;"; \
		echo "     the original fer2013.csv also works: put it at $(DATA)/fer2013.csv)"; \
	fi

connectome: install
	$(PY) -m bionic connectome stats --out results/connectome.png

# The matrix, then its report even when some runs failed (they are listed as missing);
# the exit status is the matrix's. VARIANTS (ablation file names) and SEEDS mean the same to
# both: only these; without VARIANTS the report expects the whole matrix (--matrix). The report
# goes to results/ for RUNS=runs, else to $(RUNS)/results, so a smoke matrix never overwrites
# the real one's report (REPORT= overrides).
ablations: install
	$(PY) -m bionic ablations --seeds $(SEEDS) $(if $(EPOCHS),--epochs $(EPOCHS)) $(if $(VARIANTS),--variants $(VARIANTS)) --runs $(RUNS) --jobs $(JOBS) -- --data.root $(DATA) $(ARGS); \
	status=$$?; \
	$(PY) -m bionic report $(RUNS) --out $(or $(REPORT),$(if $(filter runs,$(RUNS)),results,$(RUNS)/results)) --seeds $(SEEDS) $(if $(VARIANTS),--variants $(VARIANTS),--matrix) || status=$$?; \
	exit $$status

# The same matrix as a W&B grid sweep (needs `wandb login`); agents on any machine share it.
sweep: install
	$(PY) -m bionic.sweep --seeds $(SEEDS) $(if $(EPOCHS),--epochs $(EPOCHS)) $(if $(VARIANTS),--variants $(VARIANTS)) --runs $(RUNS) --out $(RUNS)/sweep.yaml -- --data.root $(DATA) $(ARGS)
	$(PY) -m wandb sweep $(RUNS)/sweep.yaml
	@echo "Start agents: on each machine, in this repository, run"
	@echo "  source $(VENV)/bin/activate && wandb agent <entity/project/sweep-id printed above>"
	@echo "Each agent runs the next variant x seed into $(RUNS)/ on its machine; gather them, then: make report"

report: install
	$(PY) -m bionic report $(RUNS) --out $(or $(REPORT),$(if $(filter runs,$(RUNS)),results,$(RUNS)/results)) --seeds $(SEEDS) $(if $(VARIANTS),--variants $(VARIANTS),--matrix)

# Every results/<study>/runs folder that holds a kept checkpoint (KEPT= names others).
KEPT ?= $(sort $(foreach c,$(wildcard results/*/runs/*/seed_*/best.ckpt),$(word 1,$(subst /runs/, ,$(c)))/runs))

rescore: install
	$(PY) -m bionic rescore $(KEPT) --data.root $(DATA) $(ARGS)

bench: install
	$(PY) -m bionic bench --data.root $(DATA) --full $(ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info
