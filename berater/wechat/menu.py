"""The account's menu: load the JSON definition, check WeChat's limits, create, show, delete.

A definition is WeChat's own menu JSON (`{"button": [...]}`) plus one type of ours:

    {"type": "oauth", "name": "新生报到", "target": "student", "url": "https://nova.example.edu.cn/app"}

An `oauth` entry becomes a `view` button on this service's landing by type,
`<SERVICE_BASE_URL>/?type=<target>&url=<url>`. The landing, not the menu, builds WeChat's
authorize URL (appid, redirect to /signin/callback, snsapi_base) with a fresh state bound to
the browser's session: a menu URL is the same for everyone, so a state baked into it could not
protect the callback (SECURITY.md: OAuth state bound to the browser session). `target`
(student or candidate) is the binding the entry asks for: a person without it registers
first (berater/pages), then lands on `url`. It decides which registration page is shown, never
which roles a token carries; those come from the person's binding.

Everything is checked before any call to WeChat, and every problem is reported at once,
each naming the button by its path (`button[1].sub_button[2] "分数线"`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from berater import PROJECT_ROOT
from berater.errors import ApiError

DEFAULT_FILE = PROJECT_ROOT / "data" / "menu.json"
MAX_TOP = 3
MAX_SUB = 5
MAX_TOP_NAME = 16  # bytes (UTF-8): a Chinese character is 3
MAX_SUB_NAME = 60
MAX_KEY = 128
MAX_URL = 1024
MAX_FILE = 64 * 1024
TARGETS = ("student", "candidate")

# WeChat's button types and the fields each needs besides `name` and `type`.
KEY_TYPES = (
    "click",
    "scancode_push",
    "scancode_waitmsg",
    "pic_sysphoto",
    "pic_photo_or_album",
    "pic_weixin",
    "location_select",
)
REQUIRED: dict[str, tuple[str, ...]] = {
    **{kind: ("key",) for kind in KEY_TYPES},
    "view": ("url",),
    "miniprogram": ("url", "appid", "pagepath"),
    "media_id": ("media_id",),
    "view_limited": ("media_id",),
    "article_id": ("article_id",),
    "article_view_limited": ("article_id",),
    "oauth": ("target", "url"),  # ours: expanded into a view button
}


class MenuError(ValueError):
    """The definition cannot be used; `problems` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load(path: str | Path = DEFAULT_FILE) -> dict[str, Any]:
    """Read a JSON menu definition; MenuError if it cannot be read or is not a JSON object."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_FILE:
            raise MenuError([f"{path}: larger than {MAX_FILE} bytes, not a menu"])
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise MenuError([f"{path}: cannot read it ({exc.strerror})"]) from None
    except UnicodeDecodeError:
        raise MenuError([f"{path}: not UTF-8"]) from None
    except json.JSONDecodeError as exc:
        raise MenuError([f"{path}: not JSON: {exc.msg} at line {exc.lineno}"]) from None
    if not isinstance(data, dict):
        raise MenuError([f"{path}: expected a JSON object with a 'button' list"])
    return data


def _bytes(value: str) -> int:
    return len(value.encode("utf-8"))


def _label(path: str, button: Mapping[str, Any]) -> str:
    name = button.get("name")
    return f'{path} "{name}"' if isinstance(name, str) and name else path


def _is_web_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in {"http", "https"} and bool(parts.netloc)


def validate(definition: Mapping[str, Any]) -> list[str]:
    """Every problem with the definition, WeChat's limits first; [] when it can be sent.

    Needs an app context (oauth entries are checked against the sign-in settings).
    """
    problems: list[str] = []
    extra = sorted(k for k in definition if k != "button" and not k.startswith("_"))
    if extra:
        problems.append(f"unknown top-level field(s): {', '.join(extra)}")
    buttons = definition.get("button")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= MAX_TOP:
        count = len(buttons) if isinstance(buttons, list) else "no"
        problems.append(f"button: {count} top-level buttons; WeChat allows 1 to {MAX_TOP}")
        buttons = buttons[:MAX_TOP] if isinstance(buttons, list) else []
    for i, button in enumerate(buttons):
        path = f"button[{i}]"
        if not isinstance(button, dict):
            problems.append(f"{path}: expected an object")
            continue
        _check_name(problems, path, button, MAX_TOP_NAME)
        if "sub_button" in button:
            _check_parent(problems, path, button)
        else:
            _check_action(problems, path, button)
    return problems


def _check_name(problems: list[str], path: str, button: Mapping[str, Any], limit: int) -> None:
    name = button.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"{path}: name is missing")
    elif _bytes(name) > limit:
        problems.append(
            f"{_label(path, button)}: name is {_bytes(name)} bytes; WeChat allows {limit} "
            f"(UTF-8: a Chinese character is 3 bytes)"
        )


def _check_parent(problems: list[str], path: str, button: Mapping[str, Any]) -> None:
    label = _label(path, button)
    extra = sorted(k for k in button if k not in {"name", "sub_button"} and not k.startswith("_"))
    if extra:
        problems.append(f"{label}: a button with sub_button has only a name, not {extra}")
    subs = button["sub_button"]
    if not isinstance(subs, list) or not 1 <= len(subs) <= MAX_SUB:
        count = len(subs) if isinstance(subs, list) else "no"
        problems.append(f"{label}: {count} sub_buttons; WeChat allows 1 to {MAX_SUB}")
        subs = subs[:MAX_SUB] if isinstance(subs, list) else []
    for j, sub in enumerate(subs):
        sub_path = f"{path}.sub_button[{j}]"
        if not isinstance(sub, dict):
            problems.append(f"{sub_path}: expected an object")
            continue
        _check_name(problems, sub_path, sub, MAX_SUB_NAME)
        if "sub_button" in sub:
            problems.append(f"{_label(sub_path, sub)}: WeChat menus have two levels only")
        else:
            _check_action(problems, sub_path, sub)


def _check_action(problems: list[str], path: str, button: Mapping[str, Any]) -> None:
    """A button that does something: its type and the fields that type needs."""
    label = _label(path, button)
    kind = button.get("type")
    if kind not in REQUIRED:
        problems.append(f"{label}: type {kind!r} is not one of {', '.join(REQUIRED)}")
        return
    needed = REQUIRED[kind]
    extra = sorted(
        k for k in button if k not in {"name", "type", *needed} and not k.startswith("_")
    )
    if extra:
        problems.append(f"{label}: unknown field(s) for type {kind}: {', '.join(extra)}")
    for field in needed:
        value = button.get(field)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{label}: type {kind} needs {field}")
    if any(not isinstance(button.get(field), str) for field in needed):
        return
    if "key" in needed and _bytes(button["key"]) > MAX_KEY:
        problems.append(f"{label}: key is {_bytes(button['key'])} bytes; WeChat allows {MAX_KEY}")
    if kind == "oauth":
        _check_oauth(problems, label, button)
    elif "url" in needed:
        _check_url(problems, label, button["url"])


def _check_url(problems: list[str], label: str, url: str) -> None:
    if not _is_web_url(url):
        problems.append(f"{label}: url must be an absolute http(s) URL")
    elif _bytes(url) > MAX_URL:
        problems.append(f"{label}: url is {_bytes(url)} bytes; WeChat allows {MAX_URL}")


def _check_oauth(problems: list[str], label: str, button: Mapping[str, Any]) -> None:
    from berater.signin.services import check_next

    if button["target"] not in TARGETS:
        problems.append(f"{label}: target must be one of {', '.join(TARGETS)}")
    try:
        check_next(button["url"])
    except ApiError:
        problems.append(
            f"{label}: url must be a path here or an URL on SIGNIN_REDIRECT_HOSTS "
            f"({', '.join(current_app.config['SIGNIN_REDIRECT_HOSTS']) or 'none set'})"
        )
        return
    base = str(current_app.config.get("SERVICE_BASE_URL") or "")
    if not _is_web_url(base):
        problems.append(f"{label}: set SERVICE_BASE_URL (this service's public URL) first")
        return
    _check_url(problems, f"{label} (its sign-in URL)", signin_url(button["url"], button["target"]))


def signin_url(next_url: str, target: str) -> str:
    """This service's landing by type for a menu entry: a sign-in that asks for the binding
    `target` names, then lands on `next_url`."""
    base = str(current_app.config["SERVICE_BASE_URL"]).rstrip("/")
    return f"{base}/?{urlencode({'type': target, 'url': next_url})}"


def build(definition: Mapping[str, Any]) -> dict[str, Any]:
    """The menu for WeChat: checked (MenuError), oauth entries expanded, `_` notes dropped."""
    problems = validate(definition)
    if problems:
        raise MenuError(problems)

    def expand(button: Mapping[str, Any]) -> dict[str, Any]:
        clean = {k: v for k, v in button.items() if not k.startswith("_")}
        if "sub_button" in clean:
            return {"name": clean["name"], "sub_button": [expand(s) for s in clean["sub_button"]]}
        if clean["type"] == "oauth":
            url = signin_url(clean["url"], clean["target"])
            return {"type": "view", "name": clean["name"], "url": url}
        return clean

    return {"button": [expand(b) for b in definition["button"]]}


def create(path: str | Path = DEFAULT_FILE) -> dict[str, Any]:
    """Check the definition in `path`, then send it to WeChat; WeChat's answer."""
    from berater.ext.wechat import client

    menu = build(load(path))
    # call(), not create_menu(): the command prints WeChat's answer ({"errcode": 0, ...}).
    return client.call("POST", "/cgi-bin/menu/create", json=menu)


def show() -> dict[str, Any]:
    """The menu WeChat has now ({"button": []} when there is none)."""
    from berater.ext.wechat import client

    return client.get_menu()


def delete() -> dict[str, Any]:
    """Remove the account's menu; WeChat's answer."""
    from berater.ext.wechat import client

    return client.call("GET", "/cgi-bin/menu/delete")


def run(action: str, path: str | Path = DEFAULT_FILE, echo: Callable[..., Any] = print) -> int:
    """Do `action` (create, show, check, delete) and print the outcome; the exit status."""
    actions: dict[str, Callable[[], dict[str, Any]]] = {
        "create": lambda: create(path),
        "show": show,
        "delete": delete,
        "check": lambda: build(load(path)),
    }
    try:
        answer = actions[action]()
    except MenuError as exc:
        echo(f"menu not {'sent' if action == 'create' else 'usable'}:", file=sys.stderr)
        for problem in exc.problems:
            echo(f"  - {problem}", file=sys.stderr)
        return 1
    except ApiError as exc:
        echo(f"WeChat: {exc.message}", file=sys.stderr)
        if exc.data:
            echo(json.dumps(exc.data, ensure_ascii=False, indent=2), file=sys.stderr)
        return 1
    echo(json.dumps(answer, ensure_ascii=False, indent=2))
    return 0


wechat_cli = AppGroup("wechat", help="The WeChat service account.")
menu_cli = AppGroup("menu", help="The account's menu (data/menu.json).")


def register_cli(app: Flask) -> None:
    """`flask wechat menu ...`; joins a `wechat` group another module registered first."""
    group = app.cli.commands.get("wechat")
    if isinstance(group, click.Group):
        group.add_command(menu_cli)
    else:
        wechat_cli.add_command(menu_cli)
        app.cli.add_command(wechat_cli)


_file_option = click.option(
    "--file",
    "path",
    default=str(DEFAULT_FILE),
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The JSON menu definition.",
)


def _exit(status: int) -> None:
    if status:
        sys.exit(status)


@menu_cli.command("create")
@_file_option
def menu_create(path: str) -> None:
    """Check the definition, then replace the account's menu with it."""
    _exit(run("create", path, click.echo))


@menu_cli.command("check")
@_file_option
def menu_check(path: str) -> None:
    """Check the definition and print what would be sent; calls nothing."""
    _exit(run("check", path, click.echo))


@menu_cli.command("show")
def menu_show() -> None:
    """Print the menu WeChat has now."""
    _exit(run("show", echo=click.echo))


@menu_cli.command("delete")
def menu_delete() -> None:
    """Remove the account's menu."""
    _exit(run("delete", echo=click.echo))
