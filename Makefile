# One entry point for people and CI. Needs only python3 (3.11+), pip and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
CHECKOV_VENV := .tools/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-stamp
POLICY_VENV := .tools/policy
POLICY_STAMP := $(POLICY_VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: serve test lint format model bench plan plans clean

$(STAMP): requirements-dev.txt serving/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

$(CHECKOV_STAMP): requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	touch $(CHECKOV_STAMP)

$(POLICY_STAMP): policy/requirements.txt
	$(PYTHON) -m venv $(POLICY_VENV)
	$(POLICY_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r policy/requirements.txt
	touch $(POLICY_STAMP)

## serve: build the environment and run the model server with the demo model on $(HOST):$(PORT)
serve: $(STAMP)
	$(PY) -m serving serve --host $(HOST) --port $(PORT)

## test: build the environment, lint everything, run every test
test: lint $(CHECKOV_STAMP) $(POLICY_STAMP)
	CHECKOV=$(CHECKOV_VENV)/bin/checkov POLICY_PYTHON=$(POLICY_VENV)/bin/python $(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/hadolint serving/Dockerfile
	$(VENV)/bin/actionlint

format: $(STAMP)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

## model: retrain the bundled demo model (deterministic: same seed, same bytes)
model: $(STAMP)
	$(PY) scripts/train_demo_model.py

## plan: the offline plan of STACK (no cloud, no credentials), e.g. make plan STACK=prod
STACK ?= dev
plan: $(STAMP)
	$(PY) -m offline.plan --stack $(STACK)

## plans: refresh the committed plans/<stack>.txt snapshots after an infrastructure change
plans: $(STAMP)
	$(PY) -m offline.plan --stack dev --write
	$(PY) -m offline.plan --stack prod --write

## bench: load benchmark over loopback (see bench/README.md)
bench: $(STAMP)
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .tools .pytest_cache .ruff_cache
