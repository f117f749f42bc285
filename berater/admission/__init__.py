"""The admission list (`source_student`) and its import: `flask admission import`."""

from flask import Blueprint, Flask


def init_app(app: Flask, api: Blueprint) -> None:
    """Register `flask admission ...`."""
    from berater.admission.cli import admission_cli

    app.cli.add_command(admission_cli)
