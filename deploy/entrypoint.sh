#!/bin/sh
# The container's start (the Dockerfile's CMD); tests/test_stack.py runs this same file.
#
#   deploy/entrypoint.sh [supervisord.conf]
#
# 1. wait up to 60 s for DATABASE_URL's server (wait-for-it.sh; nothing to wait for on SQLite),
# 2. flask --app run db upgrade,
# 3. flask --app run qna build --if-missing (a few seconds, the first time in this instance
#    folder; `flask --app run qna build` rebuilds it),
# 4. exec supervisord (gunicorn under it), which takes this process's place, so a stop
#    signal (`docker stop`, PID 1) reaches it.
# Settings come from the environment and .env, as for the app. Another command given to
# `docker compose run berater ...` (for instance `flask --app run user list`) replaces this.
set -eu

app_dir=$(cd "$(dirname "$0")/.." && pwd)
cd "$app_dir"
conf=${1:-$app_dir/supervisord.conf}

# The settings are read here first, so a missing secret stops the start at once, named,
# instead of after the wait.
server=$(
    python - <<'EOF'
import sys

from berater.settings import ConfigError, database_server, load_config

try:
    print(database_server(load_config()))
except ConfigError as exc:
    sys.exit(f"entrypoint: {exc}")
EOF
)
say() { printf 'entrypoint: %s\n' "$*" >&2; }

if [ -n "$server" ]; then
    ./wait-for-it.sh "$server" -t 60
fi
say "flask --app run db upgrade"
flask --app run db upgrade
say "flask --app run qna build --if-missing"
flask --app run qna build --if-missing
say "supervisord -c $conf"
exec supervisord -c "$conf"
