#!/usr/bin/env bash
# The one command that sets up and runs every check on a fresh Debian machine:
#   bash scripts/test.sh [extra pytest args]
# 1. installs missing Debian packages, 2. creates .venv and installs the requirements,
# 3. ruff lint + format check and mypy, 4. pytest on SQLite + embedded store (the whole-stack
# test included: MariaDB, Redis, supervisord, gunicorn and nginx on loopback), then the
# `backends` tests against throwaway MariaDB and Redis servers (see tests/servers.py).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEBIAN_FRONTEND=noninteractive PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/local/sbin/$1" ]; }

VENV=.venv
PY="$VENV/bin/python"
BASE_PY=python3
command -v python3.11 >/dev/null 2>&1 && BASE_PY=python3.11

step "[1/4] System packages"
missing=()
have mariadbd || missing+=(mariadb-server)
have mariadb-install-db || missing+=(mariadb-server)
have mariadb-admin || missing+=(mariadb-client)
have redis-server || missing+=(redis-server)
# The whole-stack test (tests/test_stack.py) runs Debian's nginx and supervisor as this user,
# in temporary folders; the system services are never used.
have nginx || missing+=(nginx)
have supervisord || missing+=(supervisor)
have chromium || missing+=(chromium fonts-liberation)
# Pages are in Chinese: without a CJK font the browser tests' screenshots show boxes.
fc-list :lang=zh 2>/dev/null | grep -q . || missing+=(fonts-noto-cjk)
have chromedriver || missing+=(chromium-driver)
if [ ! -x "$PY" ]; then
    have python3 || missing+=(python3)
    "$BASE_PY" -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
fi
if [ "${#missing[@]}" -gt 0 ]; then
    # de-duplicate while keeping order
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | awk '!seen[$0]++')
    SUDO=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "not root and no sudo: install ${missing[*]} by hand"
        SUDO=(sudo)
        [ -t 0 ] || SUDO=(sudo -n)  # no password prompt without a terminal (CI)
    fi
    echo "installing: ${missing[*]}"
    "${SUDO[@]}" apt-get update -q
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confold "${missing[@]}"
else
    echo "all present"
fi

step "[2/4] Python virtualenv and requirements"
if [ ! -x "$PY" ]; then
    "$BASE_PY" -m venv "$VENV"
    echo "created $VENV"
fi
for req in requirements.txt requirements-dev.txt; do
    [ -f "$req" ] || die "$req is missing"
done
"$PY" -m pip install -q -r requirements.txt -r requirements-dev.txt
"$PY" --version

step "[3/4] ruff check, ruff format --check and mypy"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
"$VENV/bin/mypy"  # the files it checks are listed in pyproject.toml

# `python -m pytest` puts the repo root on sys.path, so `from tests.servers import ...` works.
run_pytest() {
    local rc=0
    "$PY" -m pytest "$@" || rc=$?
    if [ "$rc" -eq 5 ]; then
        die "pytest collected no tests (exit 5) for: pytest $*"
    elif [ "$rc" -ne 0 ]; then
        echo "pytest failed (exit $rc): pytest $*" >&2
        exit "$rc"
    fi
}

step "[4/4] pytest (a) SQLite + embedded store"
run_pytest "$@"

step "[4/4] pytest (b) MariaDB + Redis backends"
run_pytest -m backends --db=mariadb --store=redis "$@"

step "all checks passed"
