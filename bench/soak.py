"""Soak: a mixed workload against gunicorn (2 workers) on MariaDB and Redis, then a check of
the database and the store for lost or duplicated rows.

Client threads play people one after another, each person on the whole path a new student
takes, every step over HTTP to the real gunicorn (gunicorn.conf.py as configured):

    POST /api/token          sign-in with a WeChat OAuth code (the stand-in WeChat issued it)
    GET  /api/token          the token check a partner app makes
    PUT  /api/token          refresh
    POST /api/code           an SMS code to the person's phone (the stand-in Aliyun gets it)
    POST /api/code/verify    the code read back from the stand-in
    POST /api/student        binding to a row of the admission list (loaded at the start)
    GET  /api/qna            a handbook question (the index is built at the start)
    POST /chat/              a text message to the webhook, signed as WeChat signs it
    GET  /api/face/students  the face app looks the student up by number (its app token)
    GET  /api/token          the check again, now as a student

Every person has their own openid, phone, admission row and client address (sent as
X-Forwarded-For through one trusted proxy), so no send or binding limit is reached. Any
answer but the one expected (200 with its envelope, the right record) is an error; a person
whose step fails stops there. After the run it checks: every binding answered 200 is one
`student` row with its ID card, and there is no other; no openid or ID card twice; every
phone texted once, as many texts as sends answered 200; no code or verified phone left in
the store; every WeChat code exchanged once.

It prints requests/s, p50 and p99 per endpoint, the error count (goal 0), and the CPU used by
the client threads, the in-process stand-ins, gunicorn, MariaDB and Redis.

    .venv/bin/python bench/soak.py                          # 60 s, MariaDB + Redis
    .venv/bin/python bench/soak.py --duration 300 --clients 8
    .venv/bin/python bench/soak.py --duration 5 --db sqlite --store embedded

Needs `mariadb-server` and `redis-server` (Debian packages) for the default backends.
Everything started is stopped, and the temporary folder removed, on success, failure or
Ctrl-C. Exit status 0 only with no error and every check passed.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlencode, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import token_check as tc  # bench/ is not a package: found through sys.path above

from standins import chat

HOST = tc.HOST
ACCOUNT = "gh_soak_account"
APP_TOKEN = "dev-face-app-token"  # the face app's secret in the testing defaults
APP = {"Authorization": f"Bearer face {APP_TOKEN}"}
SMS_KEY, SMS_SECRET = "soak-sms-access-key", "soak-sms-access-secret"
SIGN_NAME, TEMPLATE = "Berater", "SMS_000000001"
TIMEOUT = 30.0  # seconds a request may take before it counts as an error
ERROR_SAMPLES = 10
QUESTIONS = 40  # how many of the development questions are asked, in turn

# The endpoints in the order of a person's path (labels of the table).
SIGN_IN, CHECK, REFRESH = "POST /api/token (code)", "GET /api/token", "PUT /api/token"
SEND, VERIFY, BIND = "POST /api/code", "POST /api/code/verify", "POST /api/student"
QNA, WEBHOOK, FACE = "GET /api/qna", "POST /chat/ (text)", "GET /api/face/students"
STUDENT_CHECK = "GET /api/token (student)"
ENDPOINTS = (SIGN_IN, CHECK, REFRESH, SEND, VERIFY, BIND, QNA, WEBHOOK, FACE, STUDENT_CHECK)


def load_import_bench() -> ModuleType:
    """bench/import.py (not importable by name: `import` is a keyword): the row generator."""
    spec = importlib.util.spec_from_file_location(
        "bench_import", Path(__file__).with_name("import.py")
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- the people


@dataclass(frozen=True)
class Person:
    """One person of the run: their own openid, phone, address and admission row."""

    number: int
    stuid: str
    id_card: str

    @property
    def openid(self) -> str:
        return f"oSoak{self.number:09d}"

    @property
    def phone(self) -> str:
        return f"139{self.number:08d}"

    @property
    def address(self) -> str:
        n = self.number
        return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


class Failed(Exception):
    """A step got an answer it should not have; the person stops there."""


@dataclass
class Tally:
    """What one client thread saw: latencies and errors per endpoint, and what it did."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    samples: list[str] = field(default_factory=list)
    visits: int = 0
    complete: int = 0
    sign_ins: int = 0
    texted: list[str] = field(default_factory=list)  # phones whose send answered 200
    verified: list[str] = field(default_factory=list)  # openids whose code verified
    bound: list[tuple[str, str]] = field(default_factory=list)  # (openid, id_card) answered 200
    unsure: list[str] = field(default_factory=list)  # openids whose binding failed: row or not
    cpu: float = 0.0  # this thread's CPU seconds

    def merge(self, other: Tally) -> None:
        for name, values in other.latencies.items():
            self.latencies[name].extend(values)
        for name, count in other.errors.items():
            self.errors[name] += count
        self.samples.extend(other.samples[: max(0, ERROR_SAMPLES - len(self.samples))])
        self.visits += other.visits
        self.complete += other.complete
        self.sign_ins += other.sign_ins
        self.texted += other.texted
        self.verified += other.verified
        self.bound += other.bound
        self.unsure += other.unsure
        self.cpu += other.cpu


class Workload:
    """The shared state of the run: where the service is, the stand-ins, the next person."""

    def __init__(
        self,
        port: int,
        wechat: Any,
        aliyun: Any,
        rows: list[tuple[str, ...]],
        questions: list[str],
        chat_settings: chat.Settings,
    ) -> None:
        self.port = port
        self.wechat = wechat
        self.aliyun = aliyun
        self.rows = rows
        self.questions = questions
        self.chat_settings = chat_settings
        self._numbers = itertools.count()
        self._lock = threading.Lock()

    def next_person(self) -> Person | None:
        """The next person with an admission row of their own; None when the rows are used."""
        with self._lock:
            number = next(self._numbers)
        if number >= len(self.rows):
            return None
        # generate() yields rows in HEADINGS order: 学号 姓名 性别 生源地 院系 身份证号 考生号
        row = self.rows[number]
        return Person(number, stuid=row[0], id_card=row[5])


class Client:
    """One client thread's HTTP: a new connection per request, as a proxy sends them."""

    def __init__(self, work: Workload, tally: Tally) -> None:
        self.work = work
        self.tally = tally

    def call(
        self,
        label: str,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw: str | None = None,
    ) -> tuple[int, bytes]:
        """Send, time and return (status, body); a connection error is an error of `label`."""
        sent = {"Connection": "close", **(headers or {})}
        data: bytes | None = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        elif raw is not None:
            data = raw.encode()
            sent["Content-Type"] = "text/xml; charset=utf-8"
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        started = time.perf_counter()
        conn = http.client.HTTPConnection(HOST, self.work.port, timeout=TIMEOUT)
        try:
            conn.request(method, path, body=data, headers=sent)
            response = conn.getresponse()
            answer = response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            self.error(label, f"{type(exc).__name__}: {exc}")
            raise Failed(label) from None
        finally:
            conn.close()
        self.tally.latencies[label].append(time.perf_counter() - started)
        return status, answer

    def json(self, label: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """`call`, expecting 200 and the envelope with code 200; its `data`."""
        status, answer = self.call(label, method, path, **kwargs)
        try:
            envelope = json.loads(answer)
        except ValueError:
            envelope = None
        if status != 200 or not isinstance(envelope, dict) or envelope.get("code") != 200:
            self.error(label, f"{status} {answer[:200].decode(errors='replace')}")
            raise Failed(label)
        return envelope.get("data") or {}

    def error(self, label: str, text: str) -> None:
        self.tally.errors[label] += 1
        if len(self.tally.samples) < ERROR_SAMPLES:
            self.tally.samples.append(f"{label}: {text}")

    def expect(self, label: str, condition: bool, text: str) -> None:
        if not condition:
            self.error(label, text)
            raise Failed(label)


def visit(client: Client, person: Person) -> None:
    """One person's whole path; stops at the first step that fails (Failed)."""
    work, tally = client.work, client.tally
    openid = person.openid
    forwarded = {"X-Forwarded-For": person.address}

    code = work.wechat.fake.issue_code(openid)
    tally.sign_ins += 1
    token = client.json(SIGN_IN, "POST", "/api/token", body={"code": code})["token"]
    who = client.json(CHECK, "GET", "/api/token", token=token)
    client.expect(CHECK, who.get("kind") == "wechat", f"kind {who.get('kind')!r}")
    token = client.json(REFRESH, "PUT", "/api/token", token=token)["token"]

    client.json(
        SEND, "POST", "/api/code", token=token, body={"phone": person.phone}, headers=forwarded
    )
    tally.texted.append(person.phone)
    message = work.aliyun.fake.last_to(person.phone)
    client.expect(SEND, message is not None, "answered 200, but no text reached the stand-in")
    sms_code = message.template_param["code"]
    client.json(VERIFY, "POST", "/api/code/verify", token=token, body={"code": sms_code})
    tally.verified.append(openid)

    body = {"id_card": person.id_card, "id": person.stuid}
    try:
        bound = client.json(BIND, "POST", "/api/student", token=token, body=body)
    except Failed:
        tally.unsure.append(openid)
        raise
    tally.bound.append((openid, person.id_card))
    client.expect(BIND, bound.get("student") is True, f"student {bound.get('student')!r}")
    token = bound["token"]

    question = work.questions[person.number % len(work.questions)]
    answer = client.json(QNA, "GET", "/api/qna?" + urlencode({"q": question}), token=token)
    client.expect(QNA, answer.get("question") == question, "another question's answer")

    xml = chat.build_message(openid, ACCOUNT, content=question)
    query, text = chat.signed_request(xml, openid, work.chat_settings, False, ACCOUNT)
    status, reply = client.call(WEBHOOK, "POST", "/chat/?" + urlencode(query), raw=text)
    fields = _reply_fields(reply) if status == 200 else {}
    client.expect(
        WEBHOOK,
        fields.get("MsgType") == "text" and fields.get("ToUserName") == openid,
        f"{status} {reply[:200].decode(errors='replace')}",
    )

    face = client.json(FACE, "GET", f"/api/face/students?stuid={person.stuid}", headers=APP)
    rows = face.get("students") or []
    client.expect(FACE, [r.get("stuid") for r in rows] == [person.stuid], f"rows {rows!r}")

    who = client.json(STUDENT_CHECK, "GET", "/api/token", token=token)
    client.expect(STUDENT_CHECK, who.get("stuid") == person.stuid, f"stuid {who.get('stuid')!r}")
    tally.complete += 1


def _reply_fields(reply: bytes) -> dict[str, str]:
    try:
        return chat.parse_fields(reply.decode("utf-8"))
    except (chat.ProtocolError, UnicodeDecodeError):
        return {}


def client_thread(work: Workload, tally: Tally, deadline: float) -> None:
    client = Client(work, tally)
    started = time.thread_time()
    try:
        while time.monotonic() < deadline:
            person = work.next_person()
            if person is None:
                return
            tally.visits += 1
            with suppress(Failed):
                visit(client, person)
    finally:
        tally.cpu = time.thread_time() - started


# --------------------------------------------------------------------------- CPU


def processes_of_run(tmp: Path, redis_url: str) -> dict[str, list[Any]]:
    """gunicorn (master and workers), MariaDB and Redis of this run. Their command lines name
    the run's temporary folder (control socket, data folder, instance folder), except a
    redis-server's, which retitles itself with its address."""
    import psutil

    redis_address = urlsplit(redis_url).netloc if redis_url else None
    found: dict[str, list[Any]] = defaultdict(list)
    for process in psutil.process_iter(["cmdline", "name"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        name = process.info["name"] or ""
        if process.pid == os.getpid():
            continue
        ours = str(tmp) in cmdline
        if "redis" in name:
            if ours or (redis_address and redis_address in cmdline):
                found["redis"].append(process)
        elif not ours:
            continue
        elif "gunicorn" in cmdline:
            found["gunicorn"].append(process)
        elif "mariadb" in name or "mysqld" in name:
            found["mariadb"].append(process)
    return found


def cpu_seconds(processes: list[Any]) -> float:
    import psutil

    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


# --------------------------------------------------------------------------- setup


def prepare_data(
    args: argparse.Namespace, tmp: Path, environment: tc.Environment
) -> tuple[list[tuple[str, ...]], Path]:
    """The admission list imported with `flask admission import`, the Q&A index built with
    `flask qna build`; the rows and the index file."""
    generator = load_import_bench()
    csv = tmp / "admission.csv"
    generator.write_csv(csv, args.rows)
    index = tmp / "qna-index.npz"
    for command in (["admission", "import", str(csv)], ["qna", "build", "--out", str(index)]):
        done = subprocess.run(
            [str(tc.VENV_BIN / "flask"), "--app", "run", *command],
            cwd=tc.PROJECT_ROOT,
            env=environment.env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"flask {' '.join(command[:2])} failed:\n{done.stdout}{done.stderr}")
    return list(generator.generate(args.rows)), index


def development_questions(count: int) -> list[str]:
    path = tc.PROJECT_ROOT / "data" / "qna" / "dev-questions.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["q"] for line in lines if line.strip()][:count]


# --------------------------------------------------------------------------- checks


def check_integrity(
    environment: tc.Environment, sources: int, tally: Tally, wechat: Any, aliyun: Any
) -> list[tuple[str, bool]]:
    """What the database, the store and the stand-ins hold against what was answered:
    (description, passed) pairs."""
    from sqlalchemy import func, select

    from berater import create_app
    from berater.db import db
    from berater.models import SourceStudent, Student

    app = create_app(dict(environment.settings))
    checks: list[tuple[str, bool]] = []
    try:
        with app.app_context():
            found = db.session.execute(select(Student.openid, Student.id_card))
            rows = {(openid, card) for openid, card in found}
            twice = db.session.scalar(
                select(func.count()).select_from(
                    select(Student.id_card)
                    .group_by(Student.id_card)
                    .having(func.count() > 1)
                    .subquery()
                )
            )
            listed = db.session.scalar(select(func.count()).select_from(SourceStudent))
            db.session.remove()
            store = app.extensions["berater.store"]
            codes = sum(1 for _ in store.scan_iter("berater:sms:code:*", count=1000))
            verified = sum(1 for _ in store.scan_iter("berater:sms:verified:*", count=1000))
    finally:
        with app.app_context():
            db.engine.dispose()
        app.extensions["berater.store"].close()

    answered = set(tally.bound)
    unsure = set(tally.unsure)
    lost = answered - rows
    extra = {row for row in rows if row not in answered and row[0] not in unsure}
    checks.append(
        (
            f"student rows: {len(rows)}; bindings answered 200: {len(answered)}, of them "
            f"missing: {len(lost)}; rows no binding answered: {len(extra)} "
            f"(bindings that failed, row or not: {len(unsure)})",
            not lost and not extra,
        )
    )
    checks.append((f"ID cards bound twice: {twice}", twice == 0))
    checks.append((f"admission rows: {listed} of {sources}", listed == sources))
    pending = len(tally.texted) - len(tally.verified)
    checks.append(
        (
            f"SMS codes left in the store: {codes} (sends answered 200 and never verified: "
            f"{pending})",
            codes == pending,
        )
    )
    unused = len(tally.verified) - len(tally.bound)
    checks.append(
        (
            f"verified phones left in the store: {verified} (verified, no binding answered "
            f"200: {unused})",
            verified == unused,
        )
    )
    sent = aliyun.fake.sent
    phones = [message.phone for message in sent]
    twice_texted = len(phones) - len(set(phones))
    checks.append(
        (
            f"texts at the stand-in: {len(sent)} (SendSms calls {aliyun.fake.calls}); sends "
            f"answered 200: {len(tally.texted)}; phones texted twice: {twice_texted}",
            len(sent) == len(tally.texted) == aliyun.fake.calls and twice_texted == 0,
        )
    )
    exchanges = wechat.fake.calls_to("/sns/oauth2/access_token")
    checks.append(
        (
            f"WeChat codes exchanged: {exchanges} for {tally.sign_ins} sign-ins",
            exchanges == tally.sign_ins,
        )
    )
    through_api = len(wechat.fake.sent)
    checks.append(
        (
            f"webhook answers sent through the API, not in the reply: {through_api}",
            not through_api,
        )
    )
    return checks


# --------------------------------------------------------------------------- report


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of `values` lie (nearest rank); 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(share * len(ordered) + 0.5) - 1))
    return ordered[rank]


def report(
    args: argparse.Namespace,
    tally: Tally,
    elapsed: float,
    cpu: dict[str, float],
    checks: list[tuple[str, bool]],
    load_before: float,
) -> bool:
    """Print the figures; True when there was no error and every check passed."""
    print()
    print(
        f"config: db={args.db} store={args.store} env={args.env} workers={args.workers} "
        f"worker_class={tc.configured_worker_class()} clients={args.clients} "
        f"duration={args.duration}s "
        f"(ran {elapsed:.1f} s) admission_rows={args.rows} cpus={os.cpu_count()} "
        "LOG_LEVEL=WARNING"
    )
    print(f"1-min load average before the run: {load_before:.2f}")
    print(
        f"people: {tally.visits} started, {tally.complete} through the whole path; "
        f"{len(tally.bound)} bound"
    )
    if tally.visits >= args.rows:
        print(f"  !! the {args.rows:,} admission rows ran out before the end: raise --rows")
    print()
    print(f"{'endpoint':<28}{'requests':>10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    everything: list[float] = []
    for label in ENDPOINTS:
        values = tally.latencies.get(label, [])
        everything += values
        print(
            f"{label:<28}{len(values):>10,}{len(values) / elapsed:>9.1f}"
            f"{percentile(values, 0.5) * 1000:>9.1f}{percentile(values, 0.99) * 1000:>9.1f}"
            f"{tally.errors.get(label, 0):>8}"
        )
    errors = sum(tally.errors.values())
    print(
        f"{'all':<28}{len(everything):>10,}{len(everything) / elapsed:>9.1f}"
        f"{percentile(everything, 0.5) * 1000:>9.1f}{percentile(everything, 0.99) * 1000:>9.1f}"
        f"{errors:>8}"
    )
    print()
    print(f"errors: {errors} (goal 0; an error is any answer but the expected one)")
    for sample in tally.samples:
        print(f"  {sample}")
    capacity = (os.cpu_count() or 1) * elapsed
    print(
        f"CPU over the run, share of one CPU (the machine has {os.cpu_count()}; "
        f"{capacity:.0f} CPU-seconds in all):"
    )
    for name, seconds in cpu.items():
        print(f"  {name:<34}{seconds / elapsed * 100:>6.0f}%  ({seconds:.1f} s)")
    print("checks after the run:")
    for text, passed in checks:
        print(f"  {'ok ' if passed else 'BAD'} {text}")
    good = errors == 0 and all(passed for _, passed in checks)
    print(f"result: {'no error, every check passed' if good else 'FAILED'}")
    return good


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=60, help="seconds of load (60)")
    parser.add_argument("--db", choices=["sqlite", "mariadb"], default="mariadb")
    parser.add_argument("--store", choices=["embedded", "redis"], default="redis")
    parser.add_argument("--env", choices=["testing", "development"], default="testing")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (2)")
    parser.add_argument("--clients", type=int, default=8, help="client threads (8)")
    parser.add_argument(
        "--rows",
        type=int,
        default=30_000,
        help="admission rows loaded; each person binds one, so this caps the people (30000)",
    )
    args = parser.parse_args(argv)
    for name in ("duration", "workers", "clients", "rows"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


class Outcome(Exception):
    """The run finished but had errors or a failed check (exit status 1, figures printed)."""


def start_standins(stack: ExitStack, latency: float = 0.0) -> tuple[Any, Any]:
    """The stand-in WeChat and Aliyun SMS, each answering after `latency` seconds, stopped
    with `stack`."""
    from standins import aliyun as aliyun_standin
    from standins import wechat as wechat_standin

    wechat = wechat_standin.running(wechat_standin.FakeWeChat(latency=latency))
    stack.callback(wechat.stop)
    aliyun = aliyun_standin.running(
        aliyun_standin.FakeAliyunSms(SMS_KEY, SMS_SECRET, SIGN_NAME, TEMPLATE, latency=latency)
    )
    stack.callback(aliyun.stop)
    return wechat, aliyun


def standin_settings(wechat: Any, aliyun: Any) -> dict[str, str]:
    """The settings that send the service's WeChat and SMS calls to the stand-ins."""
    return {
        "WECHAT_API_BASE": wechat.url,
        "WECHAT_OAUTH_BASE": wechat.url,
        "SMS_BACKEND": "aliyun",
        "SMS_ENDPOINT": aliyun.url,
        "SMS_ACCESS_KEY": SMS_KEY,
        "SMS_ACCESS_SECRET": SMS_SECRET,
        "SMS_SIGN_NAME": SIGN_NAME,
        "SMS_TEMPLATE_CODE": TEMPLATE,
        # One trusted proxy: each person's address comes in X-Forwarded-For, as behind nginx,
        # so the per-address SMS limit (10 an hour) applies per person, not to the client.
        "TRUSTED_PROXIES": "1",
    }


def benchmark(args: argparse.Namespace, tmp: Path, stack: ExitStack) -> None:
    from berater.settings import load_config

    load_before = os.getloadavg()[0]
    servers = tc.load_servers()
    stack.callback(servers._stop_all)
    wechat, aliyun = start_standins(stack)
    print(f"preparing: db={args.db} store={args.store} in {tmp}", flush=True)
    environment = tc.prepare(args, tmp, stack, servers)
    environment.settings |= {
        **standin_settings(wechat, aliyun),
        # The face app looks up one student per person: the highest budget allowed.
        "FACE_ROWS_PER_HOUR": "100000",
    }
    print(f"loading {args.rows:,} admission rows and building the Q&A index", flush=True)
    rows, index = prepare_data(args, tmp, environment)
    environment.settings["QNA_INDEX"] = str(index)
    cfg = load_config(args.env, environ=environment.settings)
    work = Workload(
        0,
        wechat,
        aliyun,
        rows,
        development_questions(QUESTIONS),
        chat.Settings(cfg["WECHAT_TOKEN"], cfg["WECHAT_APPID"]),
    )
    port = servers.free_port()
    base = stack.enter_context(tc.gunicorn(environment, args.workers, tmp, port))
    work.port = port
    print(f"server up at {base}; {args.clients} clients for {args.duration} s", flush=True)

    processes = processes_of_run(tmp, environment.settings["REDIS_URL"])
    before = {name: cpu_seconds(found) for name, found in processes.items()}
    process_cpu = time.process_time()
    tallies = [Tally() for _ in range(args.clients)]
    started = time.monotonic()
    deadline = started + args.duration
    threads = [
        threading.Thread(target=client_thread, args=(work, tally, deadline), name=f"client-{n}")
        for n, tally in enumerate(tallies)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    process_cpu = time.process_time() - process_cpu
    processes = processes_of_run(tmp, environment.settings["REDIS_URL"])  # a new worker too
    after = {name: cpu_seconds(found) for name, found in processes.items()}

    tally = Tally()
    for one in tallies:
        tally.merge(one)
    cpu = {"client threads (this process)": tally.cpu}
    cpu["stand-ins (this process)"] = max(0.0, process_cpu - tally.cpu)
    for name in ("gunicorn", "mariadb", "redis"):
        if name in after:
            label = {"gunicorn": "gunicorn (master and workers)"}.get(name, name)
            cpu[label] = after[name] - before.get(name, 0.0)
    checks = check_integrity(environment, args.rows, tally, wechat, aliyun)
    if not report(args, tally, elapsed, cpu, checks, load_before):
        raise Outcome("errors or failed checks (see above)")


def main(argv: list[str] | None = None) -> int:
    return tc.run(benchmark, parse_args(argv), "berater-soak-")


if __name__ == "__main__":
    sys.exit(main())
