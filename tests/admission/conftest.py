"""Fixtures of the admission tests."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from berater.db import db


@pytest.fixture
def refuse_name(app):
    """A trigger that makes the database refuse to insert a row named 炸弹 (cleaned up after)."""
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            create = (
                "CREATE TRIGGER test_refuse_name BEFORE INSERT ON source_student "
                "WHEN NEW.name = '炸弹' BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        else:
            create = (
                "CREATE TRIGGER test_refuse_name BEFORE INSERT ON source_student FOR EACH ROW "
                "BEGIN IF NEW.name = '炸弹' THEN "
                "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused'; END IF; END"
            )
        db.session.execute(text(create))
        db.session.commit()
    yield
    with app.app_context():
        db.session.execute(text("DROP TRIGGER IF EXISTS test_refuse_name"))
        db.session.commit()
