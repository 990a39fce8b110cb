# Thin wrappers over scripts/ (see docs/infrastructure.md). `make help` lists the targets.
# Works on a fresh Debian machine with python3, pip, go and make: everything else
# (uv, RabbitMQ, the FerretDB dev server) is installed, built or started on demand.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.NOTPARALLEL:

STACK_DATA ?= .data
export STACK_DATA

# pip may put uv in a directory that is not on PATH yet (~/.local/bin, the Python's own bin).
PY_SCRIPT_DIRS := $(shell python3 -c 'import os, sysconfig; print(":".join(dict.fromkeys([sysconfig.get_path("scripts"), sysconfig.get_path("scripts", os.name + "_user")])))' 2>/dev/null)
export PATH := $(PATH):$(HOME)/.local/bin$(if $(PY_SCRIPT_DIRS),:$(PY_SCRIPT_DIRS))

# `make install` has already synced the environment; do not re-lock or re-sync on every run.
UV_RUN := uv run --no-sync

.PHONY: help install infra run run-cluster lint test bench stop-infra clean node-deps browser contracts web

help:
	@echo "make install     uv (from PyPI) + uv sync --all-packages (--frozen when uv.lock exists)"
	@echo "make infra       install, then RabbitMQ on :5672 and a MongoDB server (mongod or devdb) on :27017"
	@echo "make run         install + infra + web, then ws-edge :8000, messaging :8001, presence :8002, web :8080"
	@echo "make run-cluster 3-node RabbitMQ cluster, 2 of each service, HAProxy on 8000-8002, web :8080"
	@echo "make lint        ruff check, ruff format --check, mypy"
	@echo "make test        install + infra + lint, then pytest"
	@echo "make contracts   regenerate docs/asyncapi.yaml and docs/postman/ from the schemas"
	@echo "make web         build the browser client into clients/web/dist (skipped when current)"
	@echo "make node-deps   npm ci for clients/web and tools/contracts (skipped when current)"
	@echo "make browser     Debian's chromium for the browser tests (skipped when installed)"
	@echo "make bench       install + infra, then chat-bench all"
	@echo "make stop-infra  stop devdb/mongod started here and the local RabbitMQ node"
	@echo "make clean       stop devdb/mongod and remove \$$STACK_DATA ($(STACK_DATA))"

install:
	@bash scripts/ensure_uv.sh
	@if [ -f uv.lock ]; then uv sync --all-packages --frozen; else uv sync --all-packages; fi

infra: install
	@bash scripts/ensure_rabbitmq.sh
	@bash scripts/ensure_mongo.sh

run: install infra web
	$(UV_RUN) chat-admin migrate
	$(UV_RUN) python scripts/run_stack.py

run-cluster: install infra web
	$(UV_RUN) chat-admin migrate
	$(UV_RUN) python scripts/run_cluster.py

lint: install
	$(UV_RUN) ruff check .
	$(UV_RUN) ruff format --check .
	$(UV_RUN) mypy

test: install infra lint node-deps browser web
	$(UV_RUN) pytest

node-deps:
	@bash scripts/ensure_node_deps.sh

web:
	@bash scripts/build_web.sh

browser:
	@bash scripts/ensure_chromium.sh

contracts: install
	$(UV_RUN) python -m chat_core.asyncapi docs/asyncapi.yaml
	$(UV_RUN) python scripts/postman.py docs/postman

bench: install infra
	$(UV_RUN) chat-bench all

stop-infra:
	@bash scripts/ensure_mongo.sh stop
	@bash scripts/ensure_rabbitmq.sh stop

clean:
	@case "$(STACK_DATA)" in ""|/|.|..|"$$HOME") echo "refusing to remove STACK_DATA=$(STACK_DATA)"; exit 1;; esac
	@bash scripts/ensure_mongo.sh stop
	rm -rf -- "$(STACK_DATA)"
