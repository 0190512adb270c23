# One entry point for people and CI. Needs only python3 (3.11+), pip and make (pip installs uv, which installs the rest).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
SERVE_VENV := .venv-serve
SERVE_STAMP := $(SERVE_VENV)/.installed-stamp
CHECKOV_VENV := .tools/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-stamp
POLICY_VENV := .tools/policy
POLICY_STAMP := $(POLICY_VENV)/.installed-stamp
KSERVE_VENV := .tools/kserve
KSERVE_STAMP := $(KSERVE_VENV)/.installed-stamp
AZURITE_DIR := .tools/azurite
AZURITE_VERSION := 3.37.0
# The stamp names the version: a new pin installs again.
AZURITE_STAMP := $(AZURITE_DIR)/.installed-$(AZURITE_VERSION)
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: serve dev test test-container lint format model bench plan plans lock audit docs clean azurite

# The environments are installed with uv (pinned in requirements-dev.txt, bootstrapped with pip): the
# same pins as pip would install, in seconds instead of minutes (measured: the dev venv in 7 s here).
UV := $(VENV)/bin/uv
UV_INSTALL := $(UV) pip install --quiet

$(STAMP): requirements-dev.txt serving/requirements.in serving/requirements.txt serving/requirements-drift.in
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check "$$(grep -m1 '^uv==' requirements-dev.txt)"
	sed -n 's/^\([A-Za-z0-9._-]*==[^ ]*\).*/\1/p' serving/requirements.txt > $(VENV)/image-lock.txt
	$(UV_INSTALL) --python $(PY) -r requirements-dev.txt -c $(VENV)/image-lock.txt
	touch $(STAMP)

$(CHECKOV_STAMP): requirements-checkov.txt | $(STAMP)
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(UV_INSTALL) --python $(CHECKOV_VENV)/bin/python -r requirements-checkov.txt
	touch $(CHECKOV_STAMP)

$(POLICY_STAMP): policy/requirements.txt | $(STAMP)
	$(PYTHON) -m venv $(POLICY_VENV)
	$(UV_INSTALL) --python $(POLICY_VENV)/bin/python -r policy/requirements.txt
	touch $(POLICY_STAMP)

$(KSERVE_STAMP): requirements-kserve.txt | $(STAMP)
	$(PYTHON) -m venv $(KSERVE_VENV)
	$(UV_INSTALL) --python $(KSERVE_VENV)/bin/python -r requirements-kserve.txt
	touch $(KSERVE_STAMP)

# Azurite, the local stand-in for Azure Blob Storage that the capture tests write to and the drift report reads from.
# Without npm it is left out, and those tests skip saying why.
$(AZURITE_STAMP):
	@if command -v npm >/dev/null; then \
		npm install --silent --no-audit --no-fund --ignore-scripts --prefix $(AZURITE_DIR) azurite@$(AZURITE_VERSION) \
		&& touch $(AZURITE_STAMP); \
	else echo "npm not found: Azurite is not installed and the capture tests will be skipped"; fi

## azurite: install Azurite for the capture and drift tests (needs node and npm)
azurite: $(AZURITE_STAMP)

## serve: run the model server on $(HOST):$(PORT), the demo model or MODEL=path/to/model.onnx
# A server-only environment: exactly the image's lock, no Pulumi, no test tools.
$(SERVE_STAMP): serving/requirements.txt
	$(PYTHON) -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
		-r serving/requirements.txt
	touch $(SERVE_STAMP)

serve: $(SERVE_STAMP)
	$(SERVE_VENV)/bin/python -m serving serve --host $(HOST) --port $(PORT) $(if $(MODEL),--model $(MODEL))

## dev: build only the development environment (.venv: Pulumi, tests, linters)
dev: $(STAMP)

## test: build the environment, lint everything, run every test
test: lint $(CHECKOV_STAMP) $(POLICY_STAMP) $(KSERVE_STAMP) $(AZURITE_STAMP)
	CHECKOV=$(CHECKOV_VENV)/bin/checkov POLICY_PYTHON=$(POLICY_VENV)/bin/python KSERVE_PYTHON=$(KSERVE_VENV)/bin/python \
		$(PY) -m pytest -n 2 -m "not serial"
	$(PY) -m pytest -m serial

## test-container: build the real serving/ and proxy/ images with podman, run them as ACI, Kubernetes and
## SageMaker run them (part of `make test`; skipped, saying why, where podman is missing)
test-container: $(STAMP)
	$(PY) -m pytest tests/container -v -rs

lint: $(STAMP)
	$(VENV)/bin/mypy
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/hadolint serving/Dockerfile proxy/Dockerfile
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

## lock: recompile the image's locks (every transitive dependency, with hashes) from serving/*.in
LOCK := $(VENV)/bin/uv pip compile --quiet --generate-hashes --python-version 3.11 --no-header \
	--python-platform x86_64-manylinux_2_28 --index-url https://pypi.org/simple
lock: $(STAMP)
	$(LOCK) serving/requirements.in -o serving/requirements.txt
	$(LOCK) serving/requirements-batch.in -c serving/requirements.txt -o serving/requirements-batch.txt
	$(LOCK) serving/requirements-drift.in -c serving/requirements.txt -o serving/requirements-drift.txt

## audit: known vulnerabilities in the image's locks (pip-audit against OSV, api.osv.dev, or the mirror
## MLSERVE_AUDIT_OSV_URL names). Fails on one with a fixed version unless audit-allowlist.toml accepts it
## (with a reason, until a date); exits 2 when the service could not be asked.
audit: $(STAMP)
	$(PY) scripts/audit.py

## docs: build the documentation site into site/ (strict: a broken link or anchor fails); its reference
## pages are generated from the code (docs_reference/). `make test` builds it too (tests/test_docs.py).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --quiet

## bench: load benchmark over loopback, then memory and start-up against the bare app (see bench/README.md)
bench: $(STAMP)
	$(PY) bench/run.py
	$(PY) bench/footprint.py --rounds 2

clean:
	rm -rf $(VENV) $(SERVE_VENV) .tools .pytest_cache .ruff_cache site
