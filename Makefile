# Ember's entry points. `make test` is what CI runs; `make help` lists targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
K8S_VERSION ?= v1.34.4
CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/ember
KUBECTL := $(CACHE)/k8s-$(K8S_VERSION)/bin/kubectl
HELM_VERSION ?= v3.22.0
HELM := $(CACHE)/tools/helm-$(HELM_VERSION)/helm
export KUBECONFIG ?= /var/lib/ember-cluster/kubeconfig
# CLUSTER=local (default): hack/cluster; CLUSTER=kind: pytest-kind (needs Docker with --privileged)
CLUSTER ?= local
export EMBER_CLUSTER := $(CLUSTER)
IMAGE_TAG ?= dev
RUNTIME_IMAGE := ember/runtime:$(IMAGE_TAG)
CONTROLPLANE_IMAGE := ember/controller:$(IMAGE_TAG)
BASE_IMAGE ?= ember/python-base:bookworm

.PHONY: help
help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(VENV)/.stamp: operator/pyproject.toml runtime/pyproject.toml requirements-dev.txt
	@echo "==> python environment ($(VENV))"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e ./operator -e ./runtime -r requirements-dev.txt
	@touch $@

.PHONY: venv
venv: $(VENV)/.stamp ## create the development virtualenv

.PHONY: binaries
binaries: ## build (or reuse cached) Kubernetes and CoreDNS binaries
	@hack/cluster/build-binaries.sh >/dev/null

.PHONY: cluster
cluster: venv binaries ## start the local single-node cluster (idempotent)
	@PYTHON=$(PY) hack/cluster/cluster.sh up

.PHONY: cluster-down
cluster-down: ## stop the local cluster and remove everything it created
	@hack/cluster/cluster.sh down

.PHONY: helm
helm: $(HELM) ## build (or reuse cached) helm

$(HELM):
	@echo "==> building helm $(HELM_VERSION) (cached in $(dir $(HELM)))"
	@GOBIN=$(dir $(HELM)) CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

.PHONY: up
up: venv binaries helm ## cluster + images + helm install + the example function invoked
	@HELM=$(HELM) IMAGE_TAG=$(IMAGE_TAG) hack/up.sh

.PHONY: down
down: cluster-down ## remove everything `make up` created

.PHONY: wheels
wheels: venv ## build wheels of Ember and its dependencies into build/wheels
	@echo "==> wheels"
	@rm -rf build/wheels && mkdir -p build/wheels
	@$(PY) -m pip wheel -q --wheel-dir build/wheels ./runtime ./operator

.PHONY: images
images: wheels ## build the runtime and control-plane images (and load them into the cluster)
	@IMAGE_TAG=$(IMAGE_TAG) BASE_IMAGE=$(BASE_IMAGE) hack/images.sh

.PHONY: crds
crds: venv ## generate crds/ and charts/ember/crds/ from the pydantic models
	@$(PY) -m ember_operator.api.crd --out crds --out charts/ember/crds

.PHONY: run-operator
run-operator: venv ## run the operator locally against $$KUBECONFIG
	@$(PY) -m ember_operator

.PHONY: test
test: venv helm ## unit, then integration (real apiserver), then e2e (real pods) tests
	@PY=$(PY) hack/test.sh

.PHONY: test-unit
test-unit: venv helm ## unit tests only (no cluster)
	@$(PY) -m pytest -m unit -q

.PHONY: bench
bench: venv ## run the benchmarks (each against its peer) and write bench/results/
	@PY=$(PY) hack/bench.sh

.PHONY: lint
lint: venv ## ruff and mypy (strict)
	@$(PY) -m ruff check .
	@$(PY) -m ruff format --check operator runtime tests bench
	@$(PY) -m mypy

.PHONY: clean
clean: ## remove build outputs (not the caches under ~/.cache/ember)
	rm -rf build dist
