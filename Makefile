# The one entry point. Every target creates (or reuses) .venv and installs the pinned
# requirements itself, so a fresh machine needs only Python >= 3.11 and make.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
GEN_STAMP := shared/gen/.stamp
PROTO_SOURCES := $(shell find protos -name '*.proto' 2>/dev/null) protos/build.py
# Source roots on the venv's sys.path (written to a .pth file): no editable installs to go stale.
SOURCE_ROOTS := shared shared/gen gateway loadtests $(wildcard services/*)

.DEFAULT_GOAL := help
.PHONY: help venv proto run test test-fast lint bench loadtest loadtest-capacity k8s-config token clean

help:
	@echo "make run       start NATS, every service and the Envoy gateway on embedded defaults"
	@echo "make test      run every test (SQLite always; PostgreSQL and NATS when reachable or spawned)"
	@echo "make proto     regenerate Python stubs and the descriptor image from protos/"
	@echo "make lint      ruff, buf lint and import-linter contracts"
	@echo "make bench     benchmarks: figures and ratios printed and written to docs/benchmarks.md"
	@echo "make loadtest  Locust personas headless (USERS=500 DURATION=60s); report -> docs/benchmarks.md"
	@echo "make loadtest-capacity  step load (STEPS=250,500,1000,2000,3000): users sustained at p99 < 200 ms"
	@echo "make token     mint a dev JWT (ROLE=admin SUB=alice TEAM=east)"
	@echo "make k8s-config  regenerate deploy/k8s/base/gateway/envoy.yaml from gateway/crm_gateway/services.yaml"

$(STAMP): requirements/runtime.txt requirements/dev.txt requirements/constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt -c requirements/constraints.txt
	@touch $@

$(VENV)/lib/.roots: $(STAMP) Makefile $(wildcard services/*)
	@site=$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	  : > $$site/crm-project.pth; \
	  for root in $(SOURCE_ROOTS); do echo "$(CURDIR)/$$root" >> $$site/crm-project.pth; done
	@touch $@

venv: $(VENV)/lib/.roots

$(GEN_STAMP): $(VENV)/lib/.roots $(PROTO_SOURCES)
	$(PY) protos/build.py
	@touch $@

proto: venv
	$(PY) protos/build.py
	@touch $(GEN_STAMP)

run: $(GEN_STAMP)
	$(PY) -m crm_gateway.devstack

token: $(GEN_STAMP)
	@$(PY) -m crm_gateway.tokens mint --role $${ROLE:-admin} --subject $${SUB:-alice} --team $${TEAM:-east}

test: $(GEN_STAMP)
	$(PY) -m pytest

lint: $(GEN_STAMP)
	$(VENV)/bin/ruff check .
	cd protos && ../$(VENV)/bin/buf lint ../build/crm.binpb --config buf.yaml --path crm
	$(VENV)/bin/lint-imports

bench: $(GEN_STAMP)
	$(PY) -m crm_bench

# Headless Locust against the stack on 127.0.0.1:8080 (`make run`), or one it starts itself;
# CSV/HTML in build/loadtest, exit 1 above MAX_ERROR_RATIO. See docs/loadtest.md.
loadtest: $(GEN_STAMP)
	$(PY) -m crm_load run --users $${USERS:-500} --spawn-rate $${SPAWN_RATE:-50} \
	  --duration $${DURATION:-60s} --max-error-rate $${MAX_ERROR_RATE:-0.01} --write

loadtest-capacity: $(GEN_STAMP)
	$(PY) -m crm_load capacity --steps $${STEPS:-250,500,1000,2000,3000} \
	  --step-seconds $${STEP_SECONDS:-45} --write

# The gateway's Envoy config in the cluster is generated from services.yaml, like `make run`'s;
# tests/deploy fails when the committed file differs from what this writes.
k8s-config: $(GEN_STAMP)
	$(PY) -m crm_gateway.envoy_config --profile k8s --descriptor build/crm.binpb \
	  --jwks /etc/crm/jwt/jwks.json --descriptor-path-in-config /etc/envoy/envoy.binpb \
	  --out deploy/k8s/base/gateway/envoy.yaml --descriptor-out build/envoy-k8s.binpb

clean:
	rm -rf $(VENV) shared/gen build .pytest_cache
