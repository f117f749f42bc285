"""Results day: sign-ins by WeChat code while WeChat and Aliyun answer slowly, with SMS codes,
partner token checks and webhook text messages in the same run, under gunicorn on MariaDB and
Redis.

gunicorn runs as configured (gunicorn.conf.py, 2 workers), or with `--worker-class sync`
(one thread per worker) to compare. The stand-in WeChat answers each OAuth code exchange
after `--latency` seconds (default 0.2), the stand-in Aliyun each SendSms too. Client threads
of this process drive, each over new connections as a proxy sends them:

    sign-ins      `--concurrency` threads (50): POST /api/token with a fresh code each time;
                  a 503 (the upstream limit, Retry-After) is counted as busy and the same code
                  is tried again after Retry-After
    SMS           `--sms` threads (4): POST /api/code, then POST /api/code/verify with the
                  code the stand-in Aliyun got; each send for a new person, phone and address
    token checks  `--checkers` threads (4): GET /api/token as fast as answered
    webhook       `--webhook` threads (2): signed text messages to POST /chat/, each a
                  handbook question (the Q&A index is built at the start)

First SMS, token checks and webhook run without sign-ins for `--baseline` seconds, then the
same with the sign-ins added for `--duration` seconds. It prints per kind and phase: throughput,
p50, p99, errors, 503s; the webhook replies slower than 5 s (WeChat gives up then); and the
goals (on 2 cores, 200 ms upstream): >= 50 sign-ins/s per instance with p99 <= 1.5 s, no
webhook reply over 5 s and webhook p99 <= 1 s, token checks >= 0.7 of their rate without
the sign-ins. A refused sign-in's person tries again after Retry-After: the sign-in p99 of
the goal is the whole wait of a person, first try to token, retries included.

    .venv/bin/python bench/results_day.py                        # as configured
    .venv/bin/python bench/results_day.py --worker-class sync
    .venv/bin/python bench/results_day.py --duration 3 --baseline 2 --concurrency 8

Needs `mariadb-server` and `redis-server` (Debian packages) for the default backends.
Everything started is stopped, and the temporary folder removed, on success, failure or
Ctrl-C. Exit status 0 when the run had no error (the goals are printed, not enforced).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import threading
import time
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import soak  # bench/ is not a package: found through sys.path above
import token_check as tc

from standins import chat

SIGN_IN, SEND, VERIFY = "sign-in (POST /api/token code)", "POST /api/code", "POST /api/code/verify"
CHECK, WEBHOOK = "token check (GET /api/token)", "webhook text (POST /chat/)"
WAIT = "sign-in, whole wait with retries"  # first try to 200, Retry-After sleeps included
KINDS = (SIGN_IN, WAIT, SEND, VERIFY, CHECK, WEBHOOK)
WECHAT_GIVES_UP = 5.0  # seconds
GOAL_SIGNINS, GOAL_SIGNIN_P99 = 50.0, 1.5
GOAL_WEBHOOK_P99, GOAL_CHECK_RATIO = 1.0, 0.7
ROWS = 200  # admission rows: only the Q&A needs the data, no one binds


class Run:
    """Shared state of the load threads: the stand-ins, the next number, the stop time."""

    def __init__(self, port: int, wechat: Any, aliyun: Any, chat_settings: Any) -> None:
        self.port = port
        self.wechat = wechat
        self.aliyun = aliyun
        self.chat_settings = chat_settings
        self.questions = soak.development_questions(soak.QUESTIONS)
        self.numbers = itertools.count(1)
        self.lock = threading.Lock()
        self.deadline = 0.0
        self.busy: dict[str, int] = {}

    def next_number(self) -> int:
        with self.lock:
            return next(self.numbers)

    def count_busy(self, label: str) -> None:
        with self.lock:
            self.busy[label] = self.busy.get(label, 0) + 1


def _retry_after(client: soak.Client, label: str, status: int, answer: bytes) -> bool:
    """True for the upstream limit's 503 (after sleeping Retry-After); False for 200."""
    if status == 503:
        client.work.count_busy(label)  # type: ignore[attr-defined]
        time.sleep(1.0)
        return True
    if status != 200:
        client.error(label, f"{status} {answer[:200].decode(errors='replace')}")
        raise soak.Failed(label)
    return False


def sign_ins(client: soak.Client, run: Run) -> None:
    while time.monotonic() < run.deadline:
        openid = f"oDay{run.next_number():010d}"
        code = run.wechat.fake.issue_code(openid)
        started = time.perf_counter()
        with suppress(soak.Failed):
            while time.monotonic() < run.deadline:
                status, answer = client.call(SIGN_IN, "POST", "/api/token", body={"code": code})
                if not _retry_after(client, SIGN_IN, status, answer):
                    client.tally.latencies[WAIT].append(time.perf_counter() - started)
                    break


def texts(client: soak.Client, run: Run) -> None:
    while time.monotonic() < run.deadline:
        person = soak.Person(run.next_number(), "", "")
        with suppress(soak.Failed):
            token = client.json("setup", "POST", f"/api/test/token/{person.openid}")["token"]
            forwarded = {"X-Forwarded-For": person.address}
            while time.monotonic() < run.deadline:
                status, answer = client.call(
                    SEND,
                    "POST",
                    "/api/code",
                    token=token,
                    body={"phone": person.phone},
                    headers=forwarded,
                )
                if not _retry_after(client, SEND, status, answer):
                    break
            else:
                continue
            message = run.aliyun.fake.last_to(person.phone)
            client.expect(SEND, message is not None, "answered 200, but no text arrived")
            code = message.template_param["code"]
            client.json(VERIFY, "POST", "/api/code/verify", token=token, body={"code": code})


def token_checks(client: soak.Client, run: Run) -> None:
    try:
        path = f"/api/test/token/oDayChecker{run.next_number()}"
        token = client.json("setup", "POST", path)["token"]
    except soak.Failed:
        return
    while time.monotonic() < run.deadline:
        with suppress(soak.Failed):
            client.json(CHECK, "GET", "/api/token", token=token)


def messages(client: soak.Client, run: Run) -> None:
    account = soak.ACCOUNT
    while time.monotonic() < run.deadline:
        number = run.next_number()
        openid = f"oDayChat{number:010d}"
        question = run.questions[number % len(run.questions)]
        xml = chat.build_message(openid, account, content=question)
        query, text = chat.signed_request(xml, openid, run.chat_settings, False, account)
        with suppress(soak.Failed):
            status, reply = client.call(WEBHOOK, "POST", "/chat/?" + urlencode(query), raw=text)
            fields = soak._reply_fields(reply) if status == 200 else {}
            client.expect(
                WEBHOOK,
                fields.get("MsgType") == "text" and fields.get("ToUserName") == openid,
                f"{status} {reply[:200].decode(errors='replace')}",
            )


def drive(run: Run, plan: list[tuple[Any, int]], seconds: float, processes: Any) -> Phase:
    """Run every (loop, threads) of `plan` for `seconds`: the merged tally, the elapsed time,
    the 503s per kind and the CPU seconds of this process and of `processes()` by name."""
    tallies: list[soak.Tally] = []
    threads = []
    run.busy = {}
    run.deadline = time.monotonic() + seconds
    for loop, count in plan:
        for number in range(count):
            tally = soak.Tally()
            tallies.append(tally)
            client = soak.Client(run, tally)  # type: ignore[arg-type]
            name = f"{loop.__name__}-{number}"
            threads.append(threading.Thread(target=loop, args=(client, run), name=name))
    before = {name: soak.cpu_seconds(found) for name, found in processes().items()}
    own = time.process_time()
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    cpu = {"this process (clients, stand-ins)": time.process_time() - own}
    for name, found in processes().items():
        cpu[name] = soak.cpu_seconds(found) - before.get(name, 0.0)
    merged = soak.Tally()
    for tally in tallies:
        merged.merge(tally)
    return merged, elapsed, dict(run.busy), cpu


# --------------------------------------------------------------------------- report


Phase = tuple[soak.Tally, float, dict[str, int], dict[str, float]]  # tally, s, 503s, CPU


def table(title: str, phase: Phase) -> None:
    tally, elapsed, busy, cpu = phase
    print(f"{title} ({elapsed:.1f} s):")
    print(
        f"  {'kind':<34}{'answers':>9}{'per s':>8}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'503':>6}"
    )
    for label in KINDS:
        values = tally.latencies.get(label, [])
        if not values:
            continue
        ok = len(values) - busy.get(label, 0)
        print(
            f"  {label:<34}{len(values):>9,}{ok / elapsed:>8.1f}"
            f"{soak.percentile(values, 0.5) * 1000:>9.0f}"
            f"{soak.percentile(values, 0.99) * 1000:>9.0f}"
            f"{tally.errors.get(label, 0):>8}{busy.get(label, 0):>6}"
        )
    shares = ", ".join(f"{name} {seconds / elapsed * 100:.0f}%" for name, seconds in cpu.items())
    print(f"  CPU, share of one CPU: {shares}")


def rate(phase: Phase, label: str) -> float:
    tally, elapsed, busy, _ = phase
    return (len(tally.latencies.get(label, [])) - busy.get(label, 0)) / elapsed


def report(
    args: argparse.Namespace,
    worker_class: str,
    threads: int,
    baseline: Phase,
    mixed: Phase,
    load_before: float,
) -> bool:
    """Print the figures and the goals; True when the run had no error."""
    tally = mixed[0]
    print()
    print(
        f"config: db={args.db} store={args.store} workers={args.workers} "
        f"worker_class={worker_class} threads={threads} upstream_latency={args.latency}s "
        f"UPSTREAM_MAX_CONCURRENT={args.upstream_max or 'default'} "
        f"concurrency={args.concurrency} sms={args.sms} checkers={args.checkers} "
        f"webhook={args.webhook} duration={args.duration}s cpus={os.cpu_count()}"
    )
    print(
        f"1-min load average before the run: {load_before:.2f}, after: {os.getloadavg()[0]:.2f} "
        "(the client threads and stand-ins run in this process, on the same CPUs)"
    )
    print()
    table("without sign-ins (baseline)", baseline)
    table("with sign-ins", mixed)
    print("(per s: answers other than 503 per second; p50/p99 over every answer)")
    errors = sum(tally.errors.values()) + sum(baseline[0].errors.values())
    for sample in (tally.samples + baseline[0].samples)[: soak.ERROR_SAMPLES]:
        print(f"  {sample}")
    hooks = tally.latencies.get(WEBHOOK, [])
    late = sum(1 for value in hooks if value > WECHAT_GIVES_UP)
    signin_rate = rate(mixed, SIGN_IN)
    signin_p99 = soak.percentile(tally.latencies.get(WAIT, []), 0.99)
    hook_p99 = soak.percentile(hooks, 0.99)
    base_rate = rate(baseline, CHECK)
    ratio = rate(mixed, CHECK) / base_rate if base_rate else 0.0
    print()
    print(f"webhook replies slower than {WECHAT_GIVES_UP:g} s: {late} (goal 0)")
    goals = [
        (f"sign-ins/s >= {GOAL_SIGNINS:g} per instance", signin_rate >= GOAL_SIGNINS,
         f"{signin_rate:.1f}"),
        (f"sign-in p99 (whole wait) <= {GOAL_SIGNIN_P99:g} s", signin_p99 <= GOAL_SIGNIN_P99,
         f"{signin_p99:.2f} s"),
        ("webhook replies over 5 s = 0", late == 0, str(late)),
        (f"webhook p99 <= {GOAL_WEBHOOK_P99:g} s", hook_p99 <= GOAL_WEBHOOK_P99,
         f"{hook_p99:.2f} s"),
        (f"token checks >= {GOAL_CHECK_RATIO:g} of their rate without sign-ins",
         ratio >= GOAL_CHECK_RATIO, f"{ratio:.2f}"),
    ]  # fmt: skip
    for text, met, value in goals:
        print(f"goal {text}: {'met' if met else 'NOT met'} ({value})")
    print(f"errors: {errors} (goal 0; a 503 with Retry-After is not an error)")
    return errors == 0


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=20, help="seconds of mixed load (20)")
    parser.add_argument("--baseline", type=int, default=8, help="seconds without sign-ins (8)")
    parser.add_argument("--latency", type=float, default=0.2, help="upstream seconds (0.2)")
    parser.add_argument("--concurrency", type=int, default=50, help="sign-in threads (50)")
    parser.add_argument("--sms", type=int, default=4, help="SMS threads (4)")
    parser.add_argument("--checkers", type=int, default=4, help="token check threads (4)")
    parser.add_argument("--webhook", type=int, default=2, help="webhook threads (2)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (2)")
    parser.add_argument(
        "--worker-class",
        choices=["sync", "gthread", "gevent"],
        default=None,
        help="gunicorn's worker class (default: gunicorn.conf.py's)",
    )
    parser.add_argument("--threads", type=int, default=None, help="GUNICORN_THREADS")
    parser.add_argument(
        "--upstream-max", type=int, default=None, help="UPSTREAM_MAX_CONCURRENT per worker"
    )
    parser.add_argument("--db", choices=["sqlite", "mariadb"], default="mariadb")
    parser.add_argument("--store", choices=["embedded", "redis"], default="redis")
    args = parser.parse_args(argv)
    args.env = "testing"  # the test-token route gives the SMS and check threads their tokens
    args.rows = ROWS
    for name in ("duration", "baseline", "concurrency", "workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.latency < 0:
        parser.error("--latency must not be negative")
    return args


def benchmark(args: argparse.Namespace, tmp: Path, stack: ExitStack) -> None:
    from berater.settings import load_config

    load_before = os.getloadavg()[0]
    servers = tc.load_servers()
    stack.callback(servers._stop_all)
    wechat, aliyun = soak.start_standins(stack, args.latency)
    print(f"preparing: db={args.db} store={args.store} in {tmp}", flush=True)
    environment = tc.prepare(args, tmp, stack, servers)
    environment.settings |= soak.standin_settings(wechat, aliyun)
    if args.threads is not None:
        environment.settings["GUNICORN_THREADS"] = str(args.threads)
    if args.upstream_max is not None:
        environment.settings["UPSTREAM_MAX_CONCURRENT"] = str(args.upstream_max)
    print("building the Q&A index", flush=True)
    _, index = soak.prepare_data(args, tmp, environment)
    environment.settings["QNA_INDEX"] = str(index)
    cfg = load_config(args.env, environ=environment.settings)
    port = servers.free_port()
    worker_class = args.worker_class or tc.configured_worker_class()
    threads = 1 if worker_class == "sync" else cfg["GUNICORN_THREADS"]
    stack.enter_context(
        tc.gunicorn(environment, args.workers, tmp, port, worker_class=args.worker_class)
    )
    run = Run(port, wechat, aliyun, chat.Settings(cfg["WECHAT_TOKEN"], cfg["WECHAT_APPID"]))
    redis_url = environment.settings["REDIS_URL"]

    def processes() -> dict[str, list[Any]]:
        return soak.processes_of_run(tmp, redis_url)

    plan = [(texts, args.sms), (token_checks, args.checkers), (messages, args.webhook)]
    print(f"SMS, token checks and webhook for {args.baseline} s", flush=True)
    baseline = drive(run, plan, args.baseline, processes)
    print(f"the same with {args.concurrency} sign-in threads for {args.duration} s", flush=True)
    mixed = drive(run, [(sign_ins, args.concurrency), *plan], args.duration, processes)
    if not report(args, worker_class, threads, baseline, mixed, load_before):
        raise soak.Outcome("errors (see above)")


def main(argv: list[str] | None = None) -> int:
    return tc.run(benchmark, parse_args(argv), "berater-results-day-")


if __name__ == "__main__":
    sys.exit(main())
