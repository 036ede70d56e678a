# eiam-operator — the two commands that matter: `make test` and `make demo`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
PYTHON ?= python3
PYENV := target/pyenv

.PHONY: all build test unit crds check-crds lint fmt pyenv testenv

# The test control plane (tests/testenv, Go): rebuilt only when its sources change.
TESTENV := target/testenv/testenv
TESTENV_SRCS := $(wildcard tests/testenv/*.go) tests/testenv/go.mod tests/testenv/go.sum hack/build-testenv.sh

all: build

build:
	$(CARGO) build --locked --bins

## test: install what is missing, build, and run every test.
test: check-crds pyenv
	$(CARGO) test --locked --all-targets -- --nocapture

lint:
	$(CARGO) fmt --all -- --check
	@test -z "$$(gofmt -l tests/testenv)" || { gofmt -l tests/testenv; echo "run gofmt -w tests/testenv"; exit 1; }
	$(CARGO) clippy --locked --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## crds: regenerate crds/ from the Rust types.
crds:
	@if [ -f src/bin/crdgen.rs ]; then $(CARGO) run --locked --quiet --bin crdgen -- --out crds; fi

## check-crds: fail when crds/ differs from what the types generate.
check-crds:
	@if [ -f src/bin/crdgen.rs ]; then \
	  tmp=$$(mktemp -d); $(CARGO) run --locked --quiet --bin crdgen -- --out $$tmp; \
	  diff -ru crds $$tmp || { echo "crds/ is out of date: run 'make crds' and commit"; exit 1; }; \
	  rm -rf $$tmp; echo "crds/ matches the generated CRDs"; fi

## pyenv: the official Alibaba Cloud Python SDK in a virtualenv, for the fake EIAM's anchor test
## (tests/fake_python_sdk.rs). Idempotent: reinstalls only when tests/python/requirements.txt changes.
pyenv: $(PYENV)/.installed

$(PYENV)/.installed: tests/python/requirements.txt
	@if ! $(PYTHON) -m venv --help >/dev/null 2>&1 || ! $(PYTHON) -c 'import ensurepip' >/dev/null 2>&1; then \
	  echo "python3 venv support missing: installing python3-venv"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; fi
	$(PYTHON) -m venv $(PYENV)
	$(PYENV)/bin/pip install --quiet --disable-pip-version-check --no-input -r tests/python/requirements.txt
	touch $@

## testenv: build the test control plane (etcd + kube-apiserver + controllers) into target/testenv/.
testenv: $(TESTENV)

$(TESTENV): $(TESTENV_SRCS)
	hack/build-testenv.sh
