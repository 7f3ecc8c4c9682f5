# The two commands a new user needs: `make demo` and `make test`. Both set up everything.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# A CPU build of torch lies on this machine's disk; an unpinned torch pulls a multi-GB CUDA
# build. Users with GPUs choose their own torch.
TORCH  ?= torch==2.13.0
BUNDLE := artifacts/bundles/all-MiniLM-L6-v2
# The shipped multimodal model (training/default_model) as a bundle: what `make demo` runs.
MM_BUNDLE := artifacts/bundles/umr-default
DATA := artifacts/data/emoji
STAMP  := $(VENV)/.umr-installed

.PHONY: install bundle mm-bundle demo test test-fast lint bench data model eval clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[export,train,serve,milvus,ray,bench,dev]"
	touch $@

# The text model (all-MiniLM-L6-v2) as a bundle, for the text tests and `umr bench text`.
bundle: $(BUNDLE)/umr.json

$(BUNDLE)/umr.json: | $(STAMP)
	$(BIN)/umr export --out $(BUNDLE)

# Re-exported whenever the shipped model changes.
mm-bundle: $(MM_BUNDLE)/umr.json

$(MM_BUNDLE)/umr.json: training/default_model/checkpoint.json training/default_model/trained.safetensors | $(STAMP)
	$(BIN)/umr export --checkpoint default --out $(MM_BUNDLE) --force

# The multimodal demo: text, image and text+image queries over the emoji test split.
demo: data mm-bundle
	$(BIN)/umr demo --bundle $(MM_BUNDLE) --data $(DATA)

test: bundle mm-bundle
	UMR_TEST_BUNDLE=$(BUNDLE) UMR_TEST_MM_BUNDLE=$(MM_BUNDLE) $(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not bundle"

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: bundle
	$(BIN)/umr bench text --bundle $(BUNDLE) --out artifacts/bench

# The multimodal model (issue 3): real emoji/icon data from npm, the default recipe, its eval.
data: $(DATA)/manifest.json

# Rebuilt (--force) when the record builder changes: its records feed training.
$(DATA)/manifest.json: training/data/emoji_tasks.py | $(STAMP)
	$(BIN)/umr data emoji --out $(DATA) --force

# Retrains the shipped default model and its score-fusion baseline (the default: 53 min in fp32
# on a 2-core AVX2 EPYC). The baseline shares the default's score-path `vision` stage, so it
# starts from the default run's checkpoint at that stage's end (`--start-from`; see README).
model: data
	$(BIN)/umr train default --out runs/default --publish training/default_model
	$(BIN)/umr train score-fusion --out runs/score-fusion \
		--start-from runs/default/stages/1-vision --publish training/baselines/score-fusion

eval: data
	$(BIN)/umr eval --data $(DATA)

clean:
	rm -rf $(VENV) artifacts build *.egg-info
