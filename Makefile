RUFF ?= .venv/bin/ruff

.PHONY: dev test lint format

dev:
	bash scripts/dev.sh

test:
	bash scripts/test.sh

lint:
	$(RUFF) check .
	$(RUFF) format --check .

format:
	$(RUFF) check --select I --fix .
	$(RUFF) format .
