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

.PHONY: requirements
# Pin requirements.in and everything it pulls in, from a clean virtualenv.
requirements:
	rm -rf /tmp/berater-reqs && python3 -m venv /tmp/berater-reqs
	/tmp/berater-reqs/bin/pip install -q -r requirements.in
	(echo "# Generated from requirements.in by pip freeze in a clean venv (make requirements)."; \
	 /tmp/berater-reqs/bin/pip freeze --all | grep -vE '^(pip|setuptools|wheel)==') > requirements.txt
