"""The whole stack, as docker-compose.yaml runs it, without Docker: MariaDB and Redis
(tests/servers.py), each app instance started by deploy/entrypoint.sh (wait-for-it, migrations,
the Q&A index, then supervisord with supervisord.conf running gunicorn with gunicorn.conf.py),
and Debian's nginx with deploy/nginx/berater.conf over TLS in front, all on loopback in
temporary folders (tests/stack.py changes only ports and paths). The app runs in production,
its settings as an office's .env gives them, with the stand-in WeChat and Aliyun SMS.

A student signs in and binds through nginx. Then a second instance joins behind the same
nginx, sharing MariaDB and Redis: a token, the SMS limits, WeChat's access token and a
sign-out hold across both, and stopping one loses no request nginx may retry.

Started once for the module (about a minute, most of it the two entrypoints); the tests may
run alone, each starts what it needs.
"""

from __future__ import annotations

import contextlib
import csv
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import psutil
import pytest
import requests
import sqlalchemy
from alembic.script import ScriptDirectory

from berater.ext.crypto import new_key
from berater.identifiers import mask_phone
from standins import aliyun as aliyun_standin
from standins import wechat as wechat_standin
from tests import factories, servers
from tests.stack import ROOT, Instance, Site, client_from, make_certificates, upstreams_of

pytestmark = [pytest.mark.stack, pytest.mark.timeout(400)]

TIMEOUT = 15
REVOCATION_SYNC = 1.0  # the default the instances run with
LANDING = "https://nova.example.edu.cn/app"
STUDENTS = 24  # admission-list rows imported, handed out to the tests


@dataclass
class Stack:
    base: Path
    mariadb: servers.MariaDBServer
    redis: servers.RedisServer
    wechat: wechat_standin.RunningWeChat
    aliyun: aliyun_standin.RunningAliyunSms
    site: Site
    a: Instance
    b: Instance
    nginx: servers.NginxServer | None = None
    students: list[dict[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _b_behind_nginx: bool = False

    @property
    def host(self) -> str:
        return urlsplit(self.site.https).hostname or ""

    def student(self) -> dict[str, str]:
        """An imported admission-list row no other test uses."""
        with self._lock:
            return self.students.pop()

    def both(self) -> None:
        """The second instance serving, and nginx reloaded with both."""
        if self._b_behind_nginx:
            return
        self.b.wait_ready(self.host)
        assert self.nginx is not None
        self.nginx.reload(self.site.render([self.a.port, self.b.port]))
        self._b_behind_nginx = True

    def instance_at(self, address: str) -> str:
        """ "a" or "b" for an upstream address in nginx's log."""
        return {f"127.0.0.1:{self.a.port}": "a", f"127.0.0.1:{self.b.port}": "b"}[address]

    def served_by(self, answer: requests.Response) -> list[str]:
        """The instances nginx passed this request to, in order (from its access log)."""
        line = self.site.logged(answer.headers["X-Request-ID"])
        return [self.instance_at(address) for address in upstreams_of(line)]

    def code_for(self, openid: str) -> str:
        """A WeChat OAuth code for `openid`, as WeChat's page would put on the redirect."""
        return self.wechat.fake.issue_code(openid)


def _settings(
    mariadb: servers.MariaDBServer,
    redis: servers.RedisServer,
    wechat: wechat_standin.RunningWeChat,
    aliyun: aliyun_standin.RunningAliyunSms,
    site: Site,
) -> dict[str, str]:
    """What an office's .env holds, compose's own lines included (TRUSTED_PROXIES=1)."""
    return {
        "SECRET_KEY": secrets.token_urlsafe(32),
        "DATABASE_URL": mariadb.url,
        "REDIS_URL": redis.url,
        "CRYPTO_KEYS": new_key(),
        "WECHAT_APPID": wechat.fake.appid,
        "WECHAT_SECRET": wechat.fake.secret,
        "WECHAT_TOKEN": secrets.token_urlsafe(16),
        "WECHAT_API_BASE": wechat.url,
        "WECHAT_OAUTH_BASE": wechat.url,
        "SERVICE_BASE_URL": site.https,
        "TRUSTED_PROXIES": "1",
        "SMS_ENDPOINT": aliyun.url,
        "SMS_ACCESS_KEY": aliyun.fake.access_key,
        "SMS_ACCESS_SECRET": aliyun.fake.access_secret,
        "SMS_SIGN_NAME": "Berater",
        "SMS_TEMPLATE_CODE": "SMS_000000001",
        "SIGNIN_REDIRECT_HOSTS": urlsplit(LANDING).hostname or "",
        "NOVA_TEMPLATE_ID": "nova_template_1",
        "WEB_CONCURRENCY": "2",
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("stack")
    with contextlib.ExitStack() as cleanup:
        mariadb = servers.start_mariadb(base / "mariadb")
        cleanup.callback(mariadb.stop)
        redis = servers.start_redis(base / "redis")
        cleanup.callback(redis.stop)
        wechat = wechat_standin.running(
            wechat_standin.FakeWeChat(
                appid=f"wx{secrets.token_hex(8)}", secret=secrets.token_hex(16)
            )
        )
        cleanup.callback(wechat.stop)
        aliyun = aliyun_standin.running(
            aliyun_standin.FakeAliyunSms(
                access_key="LTAI" + secrets.token_hex(10),
                access_secret=secrets.token_urlsafe(24),
                sign_name="Berater",
                template_code="SMS_000000001",
            )
        )
        cleanup.callback(aliyun.stop)
        site = Site(base / "site", servers.free_port(), servers.free_port())
        make_certificates(site.certs)
        settings = _settings(mariadb, redis, wechat, aliyun, site)
        a = Instance("a", base / "a", servers.free_port(), settings)
        b = Instance("b", base / "b", servers.free_port(), settings)
        cleanup.callback(b.kill)
        cleanup.callback(a.kill)
        found = Stack(base, mariadb, redis, wechat, aliyun, site, a, b)
        try:
            a.start()
            a.wait_ready(found.host)
            # A second container started while the first serves (`--scale berater=2`): its
            # entrypoint runs alongside the first tests, behind nginx once `both()` is called.
            b.start()
            found.nginx = servers.start_nginx(base / "nginx", site.render([a.port]), site.http_port)
            cleanup.callback(found.nginx.stop)
            found.students = _import_admission_list(a, base)
            yield found
        except BaseException:
            for instance in (a, b):
                print(f"---- {instance.name}: tail of its output ----\n{instance.tail()}")
            raise


def _import_admission_list(instance: Instance, base: Path) -> list[dict[str, str]]:
    """The office's admission list, imported with the operator's command."""
    rows = [
        {"身份证号": factories.id_card(9000 + n), "姓名": f"学生{n}", "学号": f"2026{9000 + n:05d}"}
        for n in range(STUDENTS)
    ]
    path = base / "admission.csv"
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    imported = instance.flask("admission", "import", str(path))
    assert imported.returncode == 0, imported.stderr
    assert f"inserted {STUDENTS}," in imported.stdout + imported.stderr
    return [{"id_card": row["身份证号"], "stuid": row["学号"]} for row in rows]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token_at(stack: Stack, http: requests.Session, base: str, openid: str) -> str:
    """Sign in at `base` (nginx or one instance) with a fresh OAuth code."""
    answer = http.post(f"{base}/api/token", json={"code": stack.code_for(openid)}, timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]["token"]


def direct(stack: Stack, source: str) -> requests.Session:
    """A session from `source` to an instance's own port, as nginx talks to it (with the
    service's Host); each test has its own source, so the per-client SMS limit is its own."""
    session = client_from(source, stack.site.ca)
    session.headers["Host"] = stack.host
    return session


def verify_phone(
    stack: Stack, http: requests.Session, base: str, token: str, phone: str
) -> tuple[requests.Response, requests.Response, str]:
    """Ask for an SMS code and send it back, as the student does: both answers and the code."""
    sent = http.post(
        f"{base}/api/code", json={"phone": phone}, headers=bearer(token), timeout=TIMEOUT
    )
    assert sent.status_code == 200, sent.text
    code = next(m for m in reversed(stack.aliyun.fake.sent) if m.phone == phone)
    sms_code = code.template_param["code"]
    checked = http.post(
        f"{base}/api/code/verify", json={"code": sms_code}, headers=bearer(token), timeout=TIMEOUT
    )
    assert checked.status_code == 200, checked.text
    return sent, checked, sms_code


def bind(
    stack: Stack, http: requests.Session, base: str, token: str, phone: str
) -> tuple[requests.Response, str]:
    """Verify `phone`, then bind the bearer to an admission-list row: the answer (its token
    carries the student role) and the student number."""
    verify_phone(stack, http, base, token, phone)
    row = stack.student()
    body = {"id_card": row["id_card"], "id": row["stuid"]}
    bound = http.post(f"{base}/api/student", json=body, headers=bearer(token), timeout=TIMEOUT)
    assert bound.status_code == 200, bound.text
    return bound, row["stuid"]


class _Form(HTMLParser):
    """The stand-in WeChat's sign-in form: its action and hidden fields."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.hidden: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = a.get("action", "")
        elif tag == "input" and a.get("type") == "hidden":
            self.hidden[a["name"]] = a.get("value", "")


# --- one instance behind nginx ---


def test_the_container_start_runs_the_entrypoint_steps_in_order(stack: Stack) -> None:
    """wait-for-it, the migrations, the Q&A index, then supervisord in the entrypoint's own
    process (exec: it receives `docker stop`), running gunicorn with gunicorn.conf.py."""
    log = stack.a.log_path.read_text(errors="replace")
    steps = [
        f"127.0.0.1:{stack.mariadb.port} is available",  # wait-for-it
        "entrypoint: flask --app run db upgrade",
        "entrypoint: flask --app run qna build --if-missing",
        "written: " + str(stack.a.instance_path / "qna-index.npz"),
        "entrypoint: supervisord -c ",
        "spawned: 'berater'",  # supervisord
        "Booting worker",  # gunicorn
    ]
    at = [log.find(step) for step in steps]
    assert all(i >= 0 for i in at), list(zip(steps, at, strict=True))
    assert at == sorted(at), list(zip(steps, at, strict=True))

    supervisord, *below = stack.a.processes()
    assert stack.a.proc is not None and supervisord.pid == stack.a.proc.pid
    assert "supervisord" in " ".join(supervisord.cmdline())
    master = [p for p in below if p.ppid() == supervisord.pid]
    assert len(master) == 1
    assert master[0].cmdline()[-3:] == ["-c", "gunicorn.conf.py", "run:app"]
    assert len(master[0].children()) == 2  # WEB_CONCURRENCY

    engine = sqlalchemy.create_engine(stack.mariadb.url)
    try:
        with engine.connect() as conn:
            revision = conn.execute(sqlalchemy.text("SELECT version_num FROM alembic_version"))
            assert revision.scalar_one() == ScriptDirectory(str(ROOT / "migrations")).get_heads()[0]
    finally:
        engine.dispose()


def test_a_student_signs_in_and_binds_through_nginx(stack: Stack) -> None:
    """The sign-in pages (stand-in WeChat), binding to the imported admission list, and the
    phone verified by SMS (stand-in Aliyun): every request through nginx over TLS."""
    site = stack.site
    with client_from("127.0.0.3", site.ca) as browser:
        start = browser.get(f"{site.https}/signin", params={"next": LANDING}, allow_redirects=False)
        assert start.status_code == 302, start.text
        authorize = urlsplit(start.headers["Location"])
        assert f"{authorize.scheme}://{authorize.netloc}" == stack.wechat.url
        assert parse_qs(authorize.query)["redirect_uri"] == [f"{site.https}/signin/callback"]
        # The session cookie that ties the callback to this browser is Secure: TLS to nginx.
        assert any(cookie.secure for cookie in browser.cookies)

        page = browser.get(start.headers["Location"].split("#")[0], timeout=TIMEOUT)
        form = _Form()
        form.feed(page.text)
        openid = f"o_stack_{secrets.token_hex(4)}"
        back = browser.post(
            urljoin(page.url, form.action),
            data={**form.hidden, "openid": openid},
            allow_redirects=False,
            timeout=TIMEOUT,
        )
        callback = back.headers["Location"]
        assert callback.startswith(f"{site.https}/signin/callback?")
        oauth_code = parse_qs(urlsplit(callback).query)["code"][0]
        landing = browser.get(callback, allow_redirects=False, timeout=TIMEOUT)
        assert landing.status_code == 302, landing.text
        target, _, fragment = landing.headers["Location"].partition("#")
        assert target == LANDING and fragment.startswith("token=")
        token = fragment.removeprefix("token=")

        who = browser.get(f"{site.https}/api/token", headers=bearer(token), timeout=TIMEOUT)
        assert who.status_code == 200 and who.json()["data"]["roles"] == []

        phone = "13812340001"
        sent, checked, sms_code = verify_phone(stack, browser, site.https, token, phone)
        row = stack.student()
        body = {"id_card": row["id_card"], "id": row["stuid"]}
        bound = browser.post(f"{site.https}/api/student", json=body, headers=bearer(token))
        assert bound.status_code == 200, bound.text
        token = bound.json()["data"]["token"]
        who = browser.get(f"{site.https}/api/token", headers=bearer(token), timeout=TIMEOUT)
        assert who.json()["data"]["roles"] == ["student"]
        assert who.json()["data"]["stuid"] == row["stuid"]
        source = browser.get(f"{site.https}/api/source", headers=bearer(token), timeout=TIMEOUT)
        assert source.status_code == 200, source.text
        assert source.json()["data"]["phone"] == mask_phone(phone)
        assert source.json()["data"]["stuid"] == row["stuid"]

    # nginx passed every request to the instance; no log shows the codes or the phone.
    for answer in (who, sent, checked, bound, source):
        assert stack.served_by(answer) == ["a"]
    logs = site.access_log.read_text() + stack.a.log_path.read_text(errors="replace")
    for secret in (oauth_code, sms_code, phone, token):
        assert secret not in logs


def test_nginx_keeps_metrics_and_foreign_hosts_from_the_app(stack: Stack) -> None:
    site = stack.site
    with client_from("127.0.0.4", site.ca) as http:
        for path in ("/metrics", "/metrics/", "/%6Detrics?x=1"):
            closed = http.get(f"{site.https}{path}", timeout=TIMEOUT)
            assert closed.status_code == 404
            assert "X-Request-ID" not in closed.headers  # the app never saw it
        # The app answers only SERVICE_BASE_URL's host; nginx passes the one it was asked
        # for, and replaces a client's X-Forwarded-Host with it.
        foreign = http.get(f"{site.https}/api/ping", headers={"Host": "evil.example"})
        assert foreign.status_code == 400 and stack.served_by(foreign) == ["a"]
        assert "evil.example" in foreign.json()["error"]
        forged = http.get(f"{site.https}/api/ping", headers={"X-Forwarded-Host": "evil.example"})
        assert forged.status_code == 200, forged.text
        # One request id for nginx's line, the app's line and the answer.
        request_id = forged.headers["X-Request-ID"]
        assert stack.a.logged(f"id={request_id}"), stack.a.tail()
        moved = http.get(f"{site.http}/api/ping", allow_redirects=False, timeout=TIMEOUT)
        assert moved.status_code == 301
        assert moved.headers["Location"] == f"https://{stack.host}/api/ping"


# --- two instances behind nginx ---


def test_two_instances_share_tokens_and_the_wechat_access_token(stack: Stack) -> None:
    stack.both()
    a, b = direct(stack, "127.0.0.21"), direct(stack, "127.0.0.22")
    token = token_at(stack, a, stack.a.url, f"o_two_{secrets.token_hex(4)}")
    checked = b.get(f"{stack.b.url}/api/token", headers=bearer(token), timeout=TIMEOUT)
    assert checked.status_code == 200, checked.text

    # Through nginx, requests go to both, and each accepts the token.
    with client_from("127.0.0.5", stack.site.ca) as http:
        served: Counter[str] = Counter()
        for _ in range(8):
            answer = http.get(f"{stack.site.https}/api/token", headers=bearer(token))
            assert answer.status_code == 200, answer.text
            served.update(stack.served_by(answer))
    assert served["a"] >= 2 and served["b"] >= 2, served

    # WeChat's access token: the template messages of nova registrations on both instances,
    # several at once, fetch it once; every message carries it.
    registrations = []
    for n in range(4):
        base, http = (stack.a.url, a) if n % 2 else (stack.b.url, b)
        openid = f"o_nova_{n}_{secrets.token_hex(4)}"
        bound, _ = bind(stack, http, base, token_at(stack, http, base, openid), f"1391234{n:04d}")
        registrations.append((base, bound.json()["data"]["token"], n))
    sent_before = len(stack.wechat.fake.sent)

    def register(base: str, token: str, n: int) -> int:
        with direct(stack, f"127.0.0.{30 + n}") as http:
            body = {"phone": f"1391234{n:04d}", "qq": f"1234567{n}"}
            answer = http.post(
                f"{base}/api/nova/info", json=body, headers=bearer(token), timeout=TIMEOUT
            )
            return answer.status_code

    results: list[int] = []
    threads = [
        threading.Thread(target=lambda args=args: results.append(register(*args)))
        for args in registrations
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT)
    assert results == [200] * 4
    deadline = time.monotonic() + 10
    while len(stack.wechat.fake.sent) < sent_before + 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    messages = stack.wechat.fake.sent[sent_before:]
    assert len(messages) == 4, messages
    fetches = stack.wechat.fake.calls_to("/cgi-bin/stable_token")
    fetches += stack.wechat.fake.calls_to("/cgi-bin/token")
    assert fetches == 1
    a.close()
    b.close()


def test_sms_limits_hold_across_both_instances(stack: Stack) -> None:
    stack.both()
    a, b = direct(stack, "127.0.0.23"), direct(stack, "127.0.0.24")
    # One phone: a code a minute, whichever instance is asked.
    phone = "13712340002"
    first = token_at(stack, a, stack.a.url, f"o_sms1_{secrets.token_hex(4)}")
    second = token_at(stack, b, stack.b.url, f"o_sms2_{secrets.token_hex(4)}")
    sent = a.post(f"{stack.a.url}/api/code", json={"phone": phone}, headers=bearer(first))
    assert sent.status_code == 200, sent.text
    again = b.post(f"{stack.b.url}/api/code", json={"phone": phone}, headers=bearer(second))
    assert again.status_code == 429, again.text

    # One client: ten codes an hour through nginx, spread over both instances, whatever
    # X-Forwarded-For it sends (nginx appends the address it sees; the app trusts that one).
    texts = len(stack.aliyun.fake.sent)
    served: Counter[str] = Counter()
    with client_from("127.0.0.6", stack.site.ca) as http:
        answers = []
        tokens = [
            token_at(stack, http, stack.site.https, f"o_ip_{n}_{secrets.token_hex(4)}")
            for n in range(11)
        ]
        for n, token in enumerate(tokens):
            answer = http.post(
                f"{stack.site.https}/api/code",
                json={"phone": f"1361234{n:04d}"},
                headers={**bearer(token), "X-Forwarded-For": f"198.51.100.{n}"},
                timeout=TIMEOUT,
            )
            answers.append(answer.status_code)
            served.update(stack.served_by(answer))
    assert answers == [200] * 10 + [429], answers
    assert served["a"] >= 3 and served["b"] >= 3, served
    # The count was that client's, not nginx's: another client through it still gets a code.
    with client_from("127.0.0.8", stack.site.ca) as other:
        token = token_at(stack, other, stack.site.https, f"o_ip_x_{secrets.token_hex(4)}")
        answer = other.post(
            f"{stack.site.https}/api/code",
            json={"phone": "13612349999"},
            headers=bearer(token),
            timeout=TIMEOUT,
        )
        assert answer.status_code == 200, answer.text
    assert len(stack.aliyun.fake.sent) == texts + 11
    a.close()
    b.close()


def test_a_sign_out_on_one_instance_reaches_the_other_within_revocation_sync(
    stack: Stack,
) -> None:
    stack.both()
    a, b = direct(stack, "127.0.0.25"), direct(stack, "127.0.0.26")
    token = token_at(stack, a, stack.a.url, f"o_out_{secrets.token_hex(4)}")
    for _ in range(4):  # both of B's workers hold the token as good
        assert b.get(f"{stack.b.url}/api/token", headers=bearer(token)).status_code == 200
    assert a.delete(f"{stack.a.url}/api/token", headers=bearer(token)).status_code == 200
    signed_out = time.monotonic()
    while True:
        answers = [
            b.get(f"{stack.b.url}/api/token", headers=bearer(token)).status_code for _ in range(2)
        ]
        if answers == [401, 401]:
            break
        took = time.monotonic() - signed_out
        assert took < REVOCATION_SYNC + 0.5, f"B accepted it {took:.2f}s after the sign-out"
        time.sleep(0.05)
    # Past REVOCATION_SYNC (and a margin for a loaded machine) no worker of either instance
    # accepts it: every request on a new connection, so any worker may take it.
    time.sleep(max(0.0, signed_out + REVOCATION_SYNC + 0.5 - time.monotonic()))
    fresh = {**bearer(token), "Connection": "close"}
    with client_from("127.0.0.7", stack.site.ca) as http:
        for _ in range(8):
            assert http.get(f"{stack.site.https}/api/token", headers=fresh).status_code == 401
    for base, session in ((stack.a.url, a), (stack.b.url, b)):
        for _ in range(4):
            assert session.get(f"{base}/api/token", headers=fresh).status_code == 401
    a.close()
    b.close()


def test_stopping_an_instance_loses_no_request_nginx_may_retry(stack: Stack) -> None:
    """`docker stop` of one instance (SIGTERM to supervisord) under a steady load of GETs
    through nginx: every one is answered 200, those the stopping instance could not take by
    the other one."""
    stack.both()
    with direct(stack, "127.0.0.27") as a:
        token = token_at(stack, a, stack.a.url, f"o_stop_{secrets.token_hex(4)}")
    stop = threading.Event()
    answers: list[requests.Response] = []
    failures: list[BaseException] = []

    def load(source: str) -> None:
        with client_from(source, stack.site.ca) as http:
            while not stop.is_set():
                try:
                    answers.append(
                        http.get(
                            f"{stack.site.https}/api/token", headers=bearer(token), timeout=TIMEOUT
                        )
                    )
                except requests.RequestException as exc:
                    failures.append(exc)

    clients = [threading.Thread(target=load, args=(f"127.0.0.{10 + n}",)) for n in range(4)]
    for client in clients:
        client.start()
    try:
        time.sleep(1.0)
        b_processes = stack.b.processes()
        assert stack.b.stop() == 0  # supervisord stopped gunicorn and exited cleanly
        stopped_at = len(answers)
        time.sleep(0.3)  # an answer B sent just before it exited may still be on its way
        settled_at = len(answers)
        time.sleep(1.5)
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=TIMEOUT)
    assert not failures, failures[:3]
    assert len(answers) > stopped_at + 10
    assert Counter(answer.status_code for answer in answers) == {200: len(answers)}
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in b_processes)

    routes = [stack.served_by(answer) for answer in answers]
    assert ["b"] in routes[:stopped_at]  # B took its share until it stopped
    assert ["b"] not in routes[settled_at:]
    retried = [route for route in routes if route == ["b", "a"]]
    assert retried, "no request met the stopped instance: the stop was not under load"
