"""Benchmark: the WeChat webhook (`POST /chat/`) against the bare `GET /api/ping`.

What it measures, on one throwaway server and in one run:

* messages/s and p99 latency of signed text messages posted to `/chat/` in plaintext mode,
  and in safe mode (AES-encrypted bodies with their msg_signature), and requests/s and p99
  of `GET /api/ping`; each measured --rounds times, alternating, the best kept;
* the ratios plaintext/ping (goal >= 0.5) and safe/plaintext (goal >= 0.8), and p99 against
  the goal of 50 ms at saturation (WeChat gives up after 5 s).

Every message has its own MsgId, so the webhook's dedupe (a repeat within 5 minutes gets the
first delivery's stored reply) never short-cuts a measured request: each one runs its route
and stores its reply, and each request has its own signed query, as WeChat sends them: the
webhook accepts a query signature for one message only (a signed query reused for another
body is a 403). For these pure, fast routes both are one store round trip per message.
Signing per request in Lua is not possible (wrk's Lua has no SHA-1 or AES), so before each
run a pool of requests with distinct MsgIds is signed (and in safe mode encrypted, with its
`msg_signature`) and the Lua script rotates through it:

* plaintext: the pool is sized from the bare endpoint's rate just measured (x1.5), which
  the webhook does not exceed;
* safe mode: sized from the plaintext rate just measured (x1.5).

A run is flagged if it sent more requests than its pool holds (the repeats are WeChat
retries, answered from the store). Shortening the dedupe window for the bench would
measure a setting production does not use.

A text message is a question for the Q&A bot, answered from the demo handbook's index (built
here; `--qna placeholder` measures the webhook alone, with the bot's fixed not-ready text).
The texts rotate through a set of different questions (`--questions`, by default the 574
development questions of data/qna/dev-questions.jsonl, in students' words), so consecutive
messages ask different things and no per-question cache could answer them for free; the
set used is printed with the figures.
A fast backend (the default, lexical) is answered inside the reply; a slow one (BERT)
answers `success` at once and sends the answer later through the customer-service API.
That API is a stand-in WeChat started here (it also serves the access token); the benchmark
waits until any such sends stop before the next run, so one run's background work does not
slow the next, and prints how long that took.

    .venv/bin/python bench/webhook.py                      # sqlite + embedded store
    .venv/bin/python bench/webhook.py --db mariadb --store redis
    .venv/bin/python bench/webhook.py --duration 5 --connections 32 --workers 2

Needs `wrk`. Shares the server handling with bench/token_check.py.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from xml.sax.saxutils import escape

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import token_check as tc  # bench/ is not a package: found through sys.path above

from standins import chat

GOAL_PLAIN = 0.5  # plaintext messages/s at least this share of the bare endpoint's
GOAL_SAFE = 0.8  # safe mode within 20% of plaintext
GOAL_P99_MS = 50.0
POOL_FACTOR = 1.5
MIN_POOL = 5_000
MAX_POOL = 400_000
DRAIN_QUIET = 1.5  # seconds without a new background send: the backlog is done
DRAIN_LIMIT = 300.0
OPENID = "oBench_webhook_0000000001"
ACCOUNT = "gh_bench_account"


# --------------------------------------------------------------------------- wrk scripts


def _lua_string(value: str) -> str:
    """A Lua string literal; our values are ASCII without quotes or backslashes."""
    if any(ch in value for ch in '"\\\n') or not value.isascii():
        raise ValueError("not a plain ASCII value")
    return f'"{value}"'


_THREAD_IDS = """
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
"""


QUESTIONS = Path("data") / "qna" / "dev-questions.jsonl"  # under the project's root
ANSWER_PAGE = "https://berater.example.edu.cn/qna/answer"
CLICK_KEY = "BENCH"  # a menu key with no route of its own: the default text, answered at once


def load_questions(path: Path) -> list[str]:
    """The questions of a JSON-lines file (each line an object with its text in "q"),
    escaped for XML, each on one line (the pool file holds one request a line)."""
    if not path.is_absolute():
        path = tc.PROJECT_ROOT / path
    questions = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            text = " ".join(str(json.loads(line)["q"]).split())
            if text:
                questions.append(escape(text))
    if not questions:
        raise RuntimeError(f"no questions in {path}")
    return questions


def _body_parts(kind: str, created: int, question: str = "") -> tuple[str, str]:
    """The body around its unique number: a text's MsgId (the text asks `question`), or a
    click's sender (events have no MsgId; WeChat's dedupe key for them is FromUserName +
    CreateTime)."""
    if kind == "text":
        head = (
            f"<xml><ToUserName>{ACCOUNT}</ToUserName><FromUserName>{OPENID}</FromUserName>"
            f"<CreateTime>{created}</CreateTime><MsgType>text</MsgType>"
            f"<Content>{question}</Content><MsgId>"
        )
        return head, "</MsgId></xml>"
    head = f"<xml><ToUserName>{ACCOUNT}</ToUserName><FromUserName>oBench_"
    tail = (
        f"</FromUserName><CreateTime>{created}</CreateTime><MsgType>event</MsgType>"
        f"<Event>CLICK</Event><EventKey>{CLICK_KEY}</EventKey></xml>"
    )
    return head, tail


def pool_script(path: Path, pool: Path) -> Path:
    """POST each pre-signed request of `pool` ("query<TAB>body" lines) in turn. Each wrk
    thread formats its share of the requests (alternate lines, so none is sent twice per
    lap) once, in `init`, as wrk's documentation advises: formatting a request in Lua for
    every request would cost the client several times what the bare endpoint's fixed
    request costs it, on the CPUs the server shares."""
    path.write_text(
        _THREAD_IDS
        + f"""
local requests = {{}}
local headers = {{["Content-Type"] = "text/xml; charset=utf-8"}}
local i = 0
function init(args)
  local n, mine = 0, tonumber(tid)
  for line in io.lines({_lua_string(str(pool))}) do
    if n % {tc.WRK_THREADS} == mine then
      local tab = string.find(line, "\\t", 1, true)
      local target = "/chat/?" .. string.sub(line, 1, tab - 1)
      requests[#requests + 1] = wrk.format("POST", target, headers, string.sub(line, tab + 1))
    end
    n = n + 1
  end
end
function request()
  i = i + 1
  return requests[((i - 1) % #requests) + 1]
end
""",
        encoding="utf-8",
    )
    return path


def pool_size(rate: float, duration: float) -> int:
    """Requests for a run of `duration` seconds at up to `rate` requests/s, with a margin."""
    return min(MAX_POOL, max(MIN_POOL, int(rate * duration * POOL_FACTOR)))


def build_pool(
    path: Path,
    size: int,
    settings: Any,
    prefix: int,
    kind: str,
    safe: bool,
    questions: list[str],
) -> Path:
    """`size` requests with distinct MsgIds (senders), each with its own signed query (a
    nonce of its own) and, in safe mode, encrypted with its msg_signature; texts ask the
    `questions` in turn."""
    timestamp = str(int(time.time()))
    parts = [_body_parts(kind, int(timestamp), question) for question in questions]
    lines = []
    for n in range(size):
        head, tail = parts[n % len(parts)]
        xml = f"{head}{prefix * 10**12 + n}{tail}"
        nonce = str(prefix * 10**7 + n)  # distinct within the pool, and from other pools
        query, body = chat.signed_request(
            xml, OPENID, settings, safe, ACCOUNT, timestamp=timestamp, nonce=nonce
        )
        lines.append(f"{urlencode(query)}\t{body}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------- checks


def check_webhook(base: str, settings: Any) -> None:
    """Refuse to measure an error path: both modes must answer a question with a text reply
    (or `success` for a slow Q&A backend), and a subscribe event with the welcome text,
    decrypted in safe mode."""
    for safe in (False, True):
        question = chat.build_message(OPENID, ACCOUNT, content="你好")
        status, reply = chat.post(base, question, OPENID, settings, safe, ACCOUNT)
        if status != 200 or (reply and reply.get("MsgType") != "text"):
            raise RuntimeError(f"/chat/ (safe={safe}) answered {status} {reply}")
        event = chat.build_message(OPENID, ACCOUNT, event="subscribe")
        status, reply = chat.post(base, event, OPENID, settings, safe, ACCOUNT)
        if status != 200 or reply.get("MsgType") != "text":
            raise RuntimeError(f"/chat/ (safe={safe}) subscribe answered {status} {reply}")


def drain(fake: Any) -> tuple[int, float]:
    """Wait until the workers' background sends stop arriving: (sends so far, seconds)."""
    started = time.monotonic()
    count, last_change = len(fake.api.sent), time.monotonic()
    while time.monotonic() - last_change < DRAIN_QUIET:
        if time.monotonic() - started > DRAIN_LIMIT:
            raise RuntimeError(f"background sends still arriving after {DRAIN_LIMIT:.0f} s")
        time.sleep(0.2)
        now = len(fake.api.sent)
        if now != count:
            count, last_change = now, time.monotonic()
    return count, max(0.0, last_change - started)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = tc.server_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--message",
        choices=["text", "click"],
        default="text",
        help="text: a question for the Q&A bot (answered in the reply by a fast backend); "
        "click: a menu click answered in the reply (encrypted in safe mode)",
    )
    parser.add_argument(
        "--questions",
        type=Path,
        default=QUESTIONS,
        help="JSON lines with each question's text in \"q\" (relative to the project's root); "
        "text messages ask them in turn (default: the development questions)",
    )
    parser.add_argument(
        "--qna",
        choices=["handbook", "placeholder"],
        default="handbook",
        help="handbook: text questions are answered from the demo handbook's index (the "
        "search included); placeholder: the bot's not-ready text (the webhook alone)",
    )
    args = tc.parse_server_args(parser, argv)
    args.question_texts = load_questions(args.questions) if args.message == "text" else []
    return args


def report(args: argparse.Namespace, results: dict[str, Any], notes: list[str]) -> None:
    ping, plain, safe = results["ping"], results["plain"], results["safe"]
    plain_ratio = plain.requests_per_s / ping.requests_per_s
    safe_ratio = safe.requests_per_s / plain.requests_per_s
    print()
    print(
        f"config: db={args.db} store={args.store} env={args.env} qna={args.qna} "
        f"workers={args.workers} "
        f"worker_class={tc.configured_worker_class()} connections={args.connections} "
        f"duration={args.duration}s "
        f"wrk_threads={tc.WRK_THREADS} cpus={os.cpu_count()} LOG_LEVEL=WARNING "
        f"message={args.message}"
    )
    if args.message == "text":
        print(f"questions: {len(args.question_texts)} different, in turn, from {args.questions}")
    print(f"best of {args.rounds} runs each, alternating ping/plaintext/safe, same server")
    print()
    print(f"{'endpoint':<40}{'messages/s':>12}{'p99 ms':>10}{'server CPU µs':>15}")
    rows = [
        ("GET /api/ping (bare)", ping),
        (f"POST /chat/ {args.message}, plaintext", plain),
        (f"POST /chat/ {args.message}, safe mode (AES)", safe),
    ]
    for label, result in rows:
        print(
            f"{label:<40}{result.requests_per_s:>12,.0f}{result.p99_ms:>10.2f}"
            f"{result.cpu_us:>15,.0f}"
        )
    print()
    met = {True: "met", False: "NOT met"}
    ok_plain, ok_safe = met[plain_ratio >= GOAL_PLAIN], met[safe_ratio >= GOAL_SAFE]
    print(f"plaintext / ping: {plain_ratio:.2f}  (goal >= {GOAL_PLAIN}: {ok_plain})")
    print(f"safe / plaintext: {safe_ratio:.2f}  (goal >= {GOAL_SAFE}: {ok_safe})")
    if plain.cpu_us:
        # The server's CPU per request moves less with other work on the machine than the
        # rates do; the share of it a ping costs is a second view of plaintext / ping.
        print(
            f"server CPU per request, ping / plaintext: {ping.cpu_us / plain.cpu_us:.2f}  "
            f"({ping.cpu_us:,.0f} / {plain.cpu_us:,.0f} µs, least of the runs)"
        )
    worst = max(plain.p99_ms, safe.p99_ms)
    print(
        f"webhook p99 worst: {worst:.1f} ms  (goal <= {GOAL_P99_MS:.0f} ms: "
        f"{met[worst <= GOAL_P99_MS]}; WeChat gives up at 5000 ms)"
    )
    for note in notes:
        print(note)


def demo_index(tmp: Path) -> Path:
    """The demo handbook's Q&A index with its synonyms and FAQ, so each text question is
    really answered from it, every step included."""
    from berater.qna import faq, segment
    from berater.qna.corpus import load
    from berater.qna.index import Index
    from berater.qna.normalise import Synonyms
    from berater.settings import default

    path = tmp / "qna-index.npz"
    root = tc.PROJECT_ROOT
    Index.build(
        load(root / default("QNA_CORPUS")),
        segment.read_userdict(root / default("QNA_USERDICT")),
        synonyms=Synonyms.load(root / default("QNA_SYNONYMS")),
        faq=faq.load(root / default("QNA_FAQ")),
    ).save(path)
    return path


def benchmark(args: argparse.Namespace, tmp: Path, stack: ExitStack) -> None:
    from standins import wechat as wechat_standin

    if shutil.which("wrk") is None:
        raise RuntimeError("wrk not found: apt-get install -y wrk")
    servers = tc.load_servers()
    stack.callback(servers._stop_all)
    standin = wechat_standin.running()
    stack.callback(standin.stop)
    print(f"preparing: db={args.db} store={args.store} in {tmp}", flush=True)
    environment = tc.prepare(args, tmp, stack, servers)
    aes_key = secrets.token_urlsafe(32)[:43]
    while not aes_key.isalnum():  # an EncodingAESKey is letters and digits
        aes_key = secrets.token_urlsafe(32)[:43]
    environment.settings |= {
        # The reply leads with the answer's best sentences and links the answer page.
        **(
            {"QNA_INDEX": str(demo_index(tmp)), "WECHAT_ANSWER_URL": ANSWER_PAGE}
            if args.qna == "handbook"
            else {"QNA_BACKEND": "placeholder"}
        ),
        "WECHAT_API_BASE": standin.url,
        "WECHAT_OAUTH_BASE": standin.url,
        "WECHAT_AES_KEY": aes_key,
    }
    from berater.settings import load_config

    cfg = load_config(args.env, environ=environment.settings)
    settings = chat.Settings(cfg["WECHAT_TOKEN"], cfg["WECHAT_APPID"], aes_key)
    port = servers.free_port()
    base = stack.enter_context(tc.gunicorn(environment, args.workers, tmp, port))
    check_webhook(base, settings)
    drain(standin.fake)
    print(f"server up at {base}: /chat/ answers both modes", flush=True)

    questions = args.question_texts
    ping_script = tc.wrk_script(tmp / "ping.lua", None)
    results: dict[str, Any] = {}
    notes: list[str] = []
    for attempt in range(1, args.rounds + 1):
        ping = measure("ping", attempt, f"{base}/api/ping", ping_script, args, tmp)
        results["ping"] = tc.best(results.get("ping"), ping)
        rate = ping.requests_per_s  # the webhook is not faster than the bare endpoint
        for name, safe, prefix in (("plain", False, 10 + attempt), ("safe", True, 20 + attempt)):
            size = pool_size(rate, args.duration)
            pool = build_pool(
                tmp / f"{name}.txt", size, settings, prefix, args.message, safe, questions
            )
            script = pool_script(tmp / f"{name}.lua", pool)
            result = measure(name, attempt, f"{base}/chat/", script, args, tmp)
            if result.requests > size:
                count = result.requests
                print(f"  !! {name} run sent {count} requests, pool {size}: some were repeats")
            results[name] = tc.best(results.get(name), result)
            sent, waited = drain(standin.fake)
            notes.append(_drained(attempt, name, sent, waited))
            rate = result.requests_per_s
    check_webhook(base, settings)  # still the success path after the load
    report(args, results, ["background customer-service sends (text answers):", *notes])


def _drained(attempt: int, name: str, sent: int, waited: float) -> str:
    return f"  after run {attempt} {name}: {sent} sent so far; backlog drained in {waited:.1f} s"


def measure(
    name: str, attempt: int, url: str, script: Path, args: argparse.Namespace, tmp: Path
) -> tc.WrkResult:
    """One wrk run, with the CPU per request of every server of the run (gunicorn, the
    store, MariaDB: all hold the run's folder in their command lines)."""
    result = tc.measure(url, script, args, str(tmp))
    problem = result.problem()
    print(
        f"  run {attempt} {name:<5}: {result.requests_per_s:>9,.0f} req/s  "
        f"p99 {result.p99_ms:7.2f} ms  server CPU {result.cpu_us:6.0f} µs/req"
        f"{'  !! ' + problem if problem else ''}",
        flush=True,
    )
    if result.non_2xx:
        raise RuntimeError(f"{name}: {problem}; the figures would measure an error path")
    return result


def main(argv: list[str] | None = None) -> int:
    return tc.run(benchmark, parse_args(argv), "berater-bench-webhook-")


if __name__ == "__main__":
    sys.exit(main())
