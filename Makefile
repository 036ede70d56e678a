# eiam-operator — the two commands that matter: `make test` and `make demo`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo

.PHONY: all build test unit crds check-crds lint fmt

all: build

build:
	$(CARGO) build --locked --bins

## test: install what is missing, build, and run every test.
test: check-crds
	$(CARGO) test --locked --all-targets -- --nocapture

lint:
	$(CARGO) fmt --all -- --check
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
