"""The console's start page: who is signed in and the sections they may open."""

from __future__ import annotations

from flask import render_template

from berater.console import STAFF, access, bp


@bp.get("/")
@access.console_view(*STAFF)
def home() -> str:
    return render_template("console/home.html")
