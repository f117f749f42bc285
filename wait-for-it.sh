#!/usr/bin/env bash
# Wait until a TCP port accepts connections, then optionally run a command.
#
#   wait-for-it.sh host:port [-t seconds] [-q] [-- command args...]
#
#   -t seconds   give up after this long (default 15; 0 waits forever)
#   -q           no progress messages (errors are still printed)
#
# Exit status: the command's (it is exec'd) when the port opens; 0 when the port opens and
# no command is given; 1 on timeout (the command is NOT run); 2 on a usage error.
#
# Each attempt is one TCP connect: bash's /dev/tcp bounded by coreutils `timeout`, else
# `nc -z`, else Python's socket module. WAIT_FOR_IT_METHOD=devtcp|nc|python forces one.
set -euo pipefail

PROG=${0##*/}
ATTEMPT_SECONDS=2 # bounds one connect, so a silently dropped SYN does not eat the budget

log() {
    if [ "$QUIET" -eq 0 ]; then
        printf '%s: %s\n' "$PROG" "$*" >&2
    fi
}

fail() {
    printf '%s: %s\n' "$PROG" "$*" >&2
    exit "${2:-1}"
}

usage_error() {
    printf '%s: %s\n' "$PROG" "$1" >&2
    printf 'usage: %s host:port [-t seconds] [-q] [-- command args...]\n' "$PROG" >&2
    exit 2
}

is_uint() {
    case "$1" in
        '' | *[!0-9]*) return 1 ;;
        *) return 0 ;;
    esac
}

pick_method() {
    local forced=${WAIT_FOR_IT_METHOD:-}
    if [ -n "$forced" ]; then
        case "$forced" in
            devtcp) command -v timeout >/dev/null 2>&1 || usage_error "devtcp needs coreutils timeout" ;;
            nc) command -v nc >/dev/null 2>&1 || usage_error "nc is not installed" ;;
            python) command -v python3 >/dev/null 2>&1 || usage_error "python3 is not installed" ;;
            *) usage_error "WAIT_FOR_IT_METHOD must be devtcp, nc or python, not '$forced'" ;;
        esac
        printf '%s\n' "$forced"
    elif command -v timeout >/dev/null 2>&1; then
        printf 'devtcp\n'
    elif command -v nc >/dev/null 2>&1; then
        printf 'nc\n'
    elif command -v python3 >/dev/null 2>&1; then
        printf 'python\n'
    else
        usage_error "no way to test a port: need coreutils timeout, nc or python3"
    fi
}

# One connect attempt; status 0 when the port accepted it.
probe() {
    case "$METHOD" in
        devtcp)
            # A child bash opens the socket, so the descriptor dies with it. Host and port
            # go in as arguments, never pasted into the script text.
            # shellcheck disable=SC2016
            timeout "$ATTEMPT_SECONDS" bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$HOST" "$PORT" \
                >/dev/null 2>&1
            ;;
        nc)
            nc -z -w "$ATTEMPT_SECONDS" "$HOST" "$PORT" >/dev/null 2>&1
            ;;
        python)
            python3 -c 'import socket, sys
socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()' \
                "$HOST" "$PORT" "$ATTEMPT_SECONDS" >/dev/null 2>&1
            ;;
    esac
}

TARGET=""
TIMEOUT=15
QUIET=0
while [ "$#" -gt 0 ]; do
    case "$1" in
        --)
            shift
            break
            ;;
        -t | --timeout)
            [ "$#" -ge 2 ] || usage_error "$1 needs a number of seconds"
            TIMEOUT=$2
            shift 2
            ;;
        --timeout=*)
            TIMEOUT=${1#*=}
            shift
            ;;
        -t*)
            TIMEOUT=${1#-t}
            shift
            ;;
        -q | --quiet)
            QUIET=1
            shift
            ;;
        -h | --help)
            sed -n '2,13s/^# \{0,1\}//p' "$0"
            exit 0
            ;;
        -*)
            usage_error "unknown option: $1"
            ;;
        *)
            [ -z "$TARGET" ] || usage_error "only one host:port, got '$TARGET' and '$1'"
            TARGET=$1
            shift
            ;;
    esac
done

[ -n "$TARGET" ] || usage_error "missing host:port"
case "$TARGET" in
    *:*) ;;
    *) usage_error "expected host:port, got '$TARGET'" ;;
esac
HOST=${TARGET%:*}
PORT=${TARGET##*:}
# [::1]:5432 -> ::1
HOST=${HOST#[}
HOST=${HOST%]}
[ -n "$HOST" ] || usage_error "missing host in '$TARGET'"
if ! is_uint "$PORT" || [ "$PORT" -lt 1 ] || [ "$PORT" -gt 65535 ]; then
    usage_error "port must be a number from 1 to 65535, got '$PORT'"
fi
is_uint "$TIMEOUT" || usage_error "timeout must be a whole number of seconds, got '$TIMEOUT'"
METHOD=$(pick_method)

if [ "$TIMEOUT" -gt 0 ]; then
    log "waiting up to ${TIMEOUT}s for $HOST:$PORT"
else
    log "waiting for $HOST:$PORT, without a time limit"
fi
start=$SECONDS
attempts=0
until probe; do
    attempts=$((attempts + 1))
    elapsed=$((SECONDS - start))
    if [ "$TIMEOUT" -gt 0 ] && [ "$elapsed" -ge "$TIMEOUT" ]; then
        fail "timeout: $HOST:$PORT did not accept a connection within ${TIMEOUT}s ($attempts attempts)"
    fi
    if [ $((attempts % 5)) -eq 0 ]; then
        log "still waiting for $HOST:$PORT (${elapsed}s)"
    fi
    sleep 1
done
log "$HOST:$PORT is available after $((SECONDS - start))s"

if [ "$#" -gt 0 ]; then
    exec "$@"
fi
exit 0
