#!/usr/bin/env bash
# Run the app locally on the embedded defaults (SQLite + embedded store): bash scripts/dev.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1

if [ ! -x .venv/bin/python ]; then
    if command -v python3.11 >/dev/null 2>&1; then
        python3.11 -m venv .venv
    else
        python3 -m venv .venv
    fi
fi
.venv/bin/python -m pip install -q -r requirements.txt

# Development is chosen by name: an unset BERATER_ENV means production, which refuses to
# start without its secrets.
export BERATER_ENV="${BERATER_ENV:-development}"
exec .venv/bin/python run.py "$@"
