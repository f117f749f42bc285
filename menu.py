"""The account's menu: `python menu.py create|show|check|delete [--file data/menu.json]`.

The same as `flask --app run wechat menu ...`; the work is in berater/wechat/menu.py.
"""

from __future__ import annotations

import argparse
import sys

from berater import create_app
from berater.wechat import menu as menus


def main(argv: list[str] | None = None) -> int:
    """Run one menu action inside the app's context; the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["create", "show", "check", "delete"])
    parser.add_argument("--file", default=str(menus.DEFAULT_FILE), help="the JSON definition")
    args = parser.parse_args(argv)
    with create_app().app_context():
        return menus.run(args.action, args.file)


if __name__ == "__main__":
    sys.exit(main())
