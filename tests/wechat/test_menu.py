"""The menu: WeChat's limits checked before any call, oauth entries, create/show/delete."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask

from berater.db import db
from berater.wechat import menu as menus
from standins.wechat import RunningWeChat
from tests import factories

pytestmark = pytest.mark.backends

ROOT = Path(__file__).resolve().parent.parent.parent
BASE = "https://berater.test"
HOSTS = ["partner.test", "nova.example.edu.cn", "face.example.edu.cn"]
HOSTS += ["zsb.example.edu.cn", "qna.example.edu.cn"]


@pytest.fixture
def menu_app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(SERVICE_BASE_URL=BASE, SIGNIN_REDIRECT_HOSTS=HOSTS)


@pytest.fixture
def menu_ctx(menu_app: Flask):
    with menu_app.app_context():
        yield menu_app


def oauth(name: str = "新生报到", target: str = "student", url: str = "https://partner.test/app"):
    return {"type": "oauth", "name": name, "target": target, "url": url}


def click(name: str = "学号查询", key: str = "STUID") -> dict[str, str]:
    return {"type": "click", "name": name, "key": key}


def one(*subs: dict[str, Any], name: str = "新生专区") -> dict[str, Any]:
    return {"button": [{"name": name, "sub_button": list(subs)}]}


def problems(definition: dict[str, Any]) -> str:
    return "\n".join(menus.validate(definition))


def write(tmp_path: Path, definition: dict[str, Any]) -> Path:
    path = tmp_path / "menu.json"
    path.write_text(json.dumps(definition, ensure_ascii=False), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- validation


def test_shipped_menu_is_valid_and_has_three_top_level_buttons(menu_ctx: Flask) -> None:
    built = menus.build(menus.load(ROOT / "data" / "menu.json"))
    assert [b["name"] for b in built["button"]] == ["新生专区", "考生服务", "关于我们"]
    subs = [s for b in built["button"] for s in b["sub_button"]]
    assert {s["type"] for s in subs} == {"view", "click"}  # no oauth left for WeChat
    assert {"type": "click", "name": "学号查询", "key": "STUID"} in subs
    assert "_about" not in built


def test_more_than_three_top_level_buttons_are_refused(menu_ctx: Flask) -> None:
    definition = {"button": [click(f"b{i}", f"K{i}") for i in range(4)]}
    assert "button: 4 top-level buttons; WeChat allows 1 to 3" in problems(definition)
    assert "button: 0 top-level buttons" in problems({"button": []})
    assert "button: no top-level buttons" in problems({})


def test_more_than_five_sub_buttons_are_refused(menu_ctx: Flask) -> None:
    definition = one(*[click(f"s{i}", f"K{i}") for i in range(6)])
    assert 'button[0] "新生专区": 6 sub_buttons; WeChat allows 1 to 5' in problems(definition)
    assert 'button[0] "新生专区": 0 sub_buttons' in problems(one())


def test_top_level_name_over_16_bytes_is_refused(menu_ctx: Flask) -> None:
    assert problems(one(click(), name="新生专区服")) == ""  # 15 bytes
    message = problems(one(click(), name="新生专区服务"))  # 6 characters, 18 bytes
    assert 'button[0] "新生专区服务": name is 18 bytes; WeChat allows 16' in message


def test_sub_button_name_over_60_bytes_is_refused(menu_ctx: Flask) -> None:
    assert problems(one(click(), click("名" * 20, "A"))) == ""  # 60 bytes
    message = problems(one(click(), click("名" * 20 + "x", "A")))
    assert f'button[0].sub_button[1] "{"名" * 20}x": name is 61 bytes; WeChat allows 60' in message


def test_click_key_over_128_bytes_is_refused(menu_ctx: Flask) -> None:
    assert problems(one(click(key="K" * 128))) == ""
    message = problems(one(click(key="K" * 129)))
    assert 'button[0].sub_button[0] "学号查询": key is 129 bytes; WeChat allows 128' in message


def test_view_url_over_1024_bytes_is_refused(menu_ctx: Flask) -> None:
    url = "https://zsb.example.edu.cn/" + "a" * 998  # 1025 bytes
    message = problems(one({"type": "view", "name": "分数线", "url": url}))
    assert 'button[0].sub_button[0] "分数线": url is 1025 bytes; WeChat allows 1024' in message
    message = problems(one({"type": "view", "name": "分数线", "url": "javascript:alert(1)"}))
    assert "url must be an absolute http(s) URL" in message


def test_unknown_type_missing_field_and_third_level_are_named(menu_ctx: Flask) -> None:
    definition = one(
        {"type": "link", "name": "甲"},
        {"type": "view", "name": "乙"},
        {"type": "click", "name": "丙", "key": "K", "url": "https://x.test/"},
        {"name": "丁", "sub_button": [click()]},
    )
    message = problems(definition)
    assert "button[0].sub_button[0] \"甲\": type 'link' is not one of click," in message
    assert 'button[0].sub_button[1] "乙": type view needs url' in message
    assert 'button[0].sub_button[2] "丙": unknown field(s) for type click: url' in message
    assert 'button[0].sub_button[3] "丁": WeChat menus have two levels only' in message


def test_every_problem_is_reported_at_once(menu_ctx: Flask) -> None:
    definition = {"button": [click("新生专区服务", "K" * 200), click("", "A")]}
    found = menus.validate(definition)
    assert len(found) == 3
    assert "button[1]: name is missing" in found


def test_oauth_entry_needs_a_known_target_and_an_allowed_url(menu_ctx: Flask) -> None:
    message = problems(one(oauth(target="admin"), oauth(name="别处", url="https://evil.test/")))
    assert 'button[0].sub_button[0] "新生报到": target must be one of student, candidate' in message
    assert 'button[0].sub_button[1] "别处": url must be a path here or an URL on' in message


def test_oauth_entry_needs_service_base_url(make_app: Callable[..., Flask]) -> None:
    with make_app(SERVICE_BASE_URL="", SIGNIN_REDIRECT_HOSTS=HOSTS).app_context():
        assert "set SERVICE_BASE_URL" in problems(one(oauth()))


def test_oauth_sign_in_url_over_1024_bytes_is_refused(menu_ctx: Flask) -> None:
    url = "https://partner.test/" + "a/" * 400  # fits alone, not once quoted into ?next=
    message = problems(one(oauth(url=url)))
    assert 'button[0].sub_button[0] "新生报到" (its sign-in URL): url is' in message


def test_unreadable_definition_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "menu.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(menus.MenuError, match="not JSON"):
        menus.load(bad)
    with pytest.raises(menus.MenuError, match="cannot read it"):
        menus.load(tmp_path / "missing.json")


# --------------------------------------------------------------------------- oauth entries


def test_oauth_entry_becomes_a_view_button_on_the_landing_by_type(menu_ctx: Flask) -> None:
    built = menus.build(one(oauth(), oauth("考生登记", "candidate", "/qna"), click()))
    student, candidate = built["button"][0]["sub_button"][:2]
    assert student == {
        "type": "view",
        "name": "新生报到",
        "url": f"{BASE}/?type=student&url=https%3A%2F%2Fpartner.test%2Fapp",
    }
    assert candidate["url"] == f"{BASE}/?type=candidate&url=%2Fqna"


def test_menu_entry_signs_in_with_a_fresh_state_and_lands_in_the_app(
    menu_app: Flask, wechat: RunningWeChat
) -> None:
    with menu_app.app_context():
        url = menus.build(one(oauth()))["button"][0]["sub_button"][0]["url"]
    browser = menu_app.test_client()
    answer = browser.get(url)  # on the service's own host, as WeChat's browser opens it
    assert answer.status_code == 302
    authorize = urlsplit(answer.headers["Location"])
    assert f"{authorize.scheme}://{authorize.netloc}" == wechat.url
    assert authorize.path == "/connect/oauth2/authorize"
    query = {k: v[0] for k, v in parse_qs(authorize.query).items()}
    assert query["appid"] == menu_app.config["WECHAT_APPID"]
    assert query["scope"] == "snsapi_base"
    assert query["redirect_uri"] == f"{BASE}/signin/callback"
    assert len(query["state"]) >= 32
    with menu_app.app_context():
        factories.student("o_menu_student")
        db.session.commit()
    code = wechat.fake.issue_code("o_menu_student")
    landing = browser.get(f"{BASE}/signin/callback?code={code}&state={query['state']}")
    assert landing.status_code == 302
    assert landing.headers["Location"].startswith("https://partner.test/app#token=")
    # The state belongs to that browser: another one cannot use a menu sign-in's state.
    other = menu_app.test_client()
    other_code = wechat.fake.issue_code("o_menu_student")
    assert (
        other.get(f"{BASE}/signin/callback?code={other_code}&state={query['state']}").status_code
        == 400
    )


def test_a_menu_entry_sends_a_person_without_the_binding_to_register_first(
    menu_app: Flask, wechat: RunningWeChat
) -> None:
    with menu_app.app_context():
        url = menus.build(one(oauth("考生登记", "candidate")))["button"][0]["sub_button"][0]["url"]
    browser = menu_app.test_client()
    state = parse_qs(urlsplit(browser.get(url).headers["Location"]).query)["state"][0]
    code = wechat.fake.issue_code("o_menu_newcomer")

    landing = browser.get(f"{BASE}/signin/callback?code={code}&state={state}")

    assert landing.status_code == 302
    location = urlsplit(landing.headers["Location"])
    assert location.path == "/register/candidate"
    assert parse_qs(location.query) == {"next": ["https://partner.test/app"]}
    assert location.fragment.startswith("token=")


# --------------------------------------------------------------------------- against WeChat


def test_create_show_delete_against_wechat(
    menu_ctx: Flask, wechat: RunningWeChat, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, one(oauth(), click()))
    assert menus.run("create", path) == 0
    assert json.loads(capsys.readouterr().out) == {"errcode": 0, "errmsg": "ok"}
    assert wechat.fake.menu is not None
    assert wechat.fake.menu["button"][0]["sub_button"][0]["url"].startswith(f"{BASE}/?type=")

    assert menus.run("show") == 0
    shown = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in shown["button"][0]["sub_button"]] == ["新生报到", "学号查询"]

    assert menus.run("delete") == 0
    assert json.loads(capsys.readouterr().out)["errcode"] == 0
    assert menus.run("show") == 0
    assert json.loads(capsys.readouterr().out) == {"button": []}


def test_invalid_definition_never_reaches_wechat(
    menu_ctx: Flask, wechat: RunningWeChat, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, one(click(key="K" * 129), name="新生专区服务"))
    assert menus.run("create", path) == 1
    err = capsys.readouterr().err
    assert "menu not sent" in err
    assert "name is 18 bytes" in err
    assert "key is 129 bytes" in err
    assert wechat.fake.calls == {}
    assert wechat.fake.menu is None


def test_wechat_refusal_is_printed_with_its_errcode(
    menu_ctx: Flask, wechat: RunningWeChat, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wechat.fake.fail("/cgi-bin/menu/create", "errcode", errcode=40054)
    assert menus.run("create", write(tmp_path, one(click()))) == 1
    err = capsys.readouterr().err
    assert "errcode 40054" in err
    assert wechat.fake.menu is None


def test_flask_cli_menu_commands(menu_app: Flask, wechat: RunningWeChat, tmp_path: Path) -> None:
    runner = menu_app.test_cli_runner()
    good = write(tmp_path, one(oauth(), click()))
    result = runner.invoke(args=["wechat", "menu", "create", "--file", str(good)])
    assert result.exit_code == 0, result.output
    assert '"errcode": 0' in result.output
    result = runner.invoke(args=["wechat", "menu", "show"])
    assert result.exit_code == 0 and "新生报到" in result.output
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"button": []}), encoding="utf-8")
    result = runner.invoke(args=["wechat", "menu", "create", "--file", str(bad)])
    assert result.exit_code == 1
    assert "0 top-level buttons" in result.output
    result = runner.invoke(args=["wechat", "menu", "delete"])
    assert result.exit_code == 0
    assert wechat.fake.menu is None


def test_menu_py_exit_codes(
    base_settings: dict[str, Any], menu_app: Flask, wechat: RunningWeChat, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "BERATER_ENV": "testing",
        "INSTANCE_PATH": base_settings["INSTANCE_PATH"],
        "DATABASE_URL": base_settings["DATABASE_URL"],
        "REDIS_URL": base_settings["REDIS_URL"],
        "WECHAT_API_BASE": wechat.url,
        "SERVICE_BASE_URL": BASE,
        "SIGNIN_REDIRECT_HOSTS": ",".join(HOSTS),
    }

    def menu_py(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "menu.py", *args]
        return subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )

    shipped = menu_py("check")
    assert shipped.returncode == 0, shipped.stderr
    assert json.loads(shipped.stdout)["button"][2]["name"] == "关于我们"
    created = menu_py("create")
    assert created.returncode == 0, created.stderr
    assert wechat.fake.menu is not None and len(wechat.fake.menu["button"]) == 3
    bad = write(tmp_path, {"button": [click(f"b{i}", f"K{i}") for i in range(4)]})
    refused = menu_py("create", "--file", str(bad))
    assert refused.returncode == 1
    assert "4 top-level buttons" in refused.stderr
    assert menu_py("rename").returncode == 2
