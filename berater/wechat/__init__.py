"""The account's menu: `flask wechat menu create|show|check|delete`."""

from flask import Blueprint, Flask


def init_app(app: Flask, api: Blueprint) -> None:
    """Register `flask wechat menu ...`."""
    from berater.wechat.menu import register_cli

    register_cli(app)
