# Topolab: the two commands are `make run` and `make test`. Both are idempotent.
SHELL := /bin/bash
PYTEST_ARGS ?=

.PHONY: run setup test chaos soak clean-var

run: ## set up, then serve redis + agent + daphne on http://127.0.0.1:8000 (Ctrl-C stops)
	bash scripts/run.sh

setup: ## apt packages, .venv, node_modules, VM image, database; no serving
	bash scripts/setup.sh

test: ## setup, then the whole test suite
	bash scripts/test.sh $(PYTEST_ARGS)

chaos: ## setup, then the chaos and fuzz suite (tests/chaos) with full counts; ends with its table of figures
	bash scripts/setup.sh
	mkdir -p var/artifacts
	TOPOLAB_CHAOS_FULL=1 TOPOLAB_CHAOS_FIGURES=var/artifacts/chaos-figures.json .venv/bin/pytest tests/chaos -m chaos $(PYTEST_ARGS)

SOAK_ARGS ?=
soak: ## setup, then benchmarks/soak.py (as root, under the kernel-test lock): labs deployed, used and destroyed for 10 min, with RSS, fds, Redis, DB figures
	bash scripts/setup.sh
	flock /run/topolab-kernel-tests.lock .venv/bin/python benchmarks/soak.py $(SOAK_ARGS)

clean-var: ## forget local state: database, secret key, admin password, redis data, images, stamps
	rm -rf var
