"""docker-compose.yaml against the Compose Specification's JSON Schema (vendored in
tests/fixtures/, see its README), and every service, volume, setting and file it names
against the project. No Docker engine here: what `docker compose config` would refuse, this
refuses first."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml

from berater.settings import ENV_KEYS

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yaml"
SCHEMA = Path(__file__).parent / "fixtures" / "compose-spec.json"


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema_rs.Draft7Validator(json.loads(SCHEMA.read_text()))
    return [
        f"{list(error.instance_path)}: {error.message}" for error in validator.iter_errors(document)
    ]


def test_compose_follows_the_compose_specification() -> None:
    assert errors(compose()) == []


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (lambda c: c["services"]["nginx"].update(port=["80:80"]), "'port' was unexpected"),
        (lambda c: c["services"]["berater"].update(restart=["always"]), "is not of type"),
        (lambda c: c["services"]["berater"]["depends_on"].update(redis="healthy"), "redis"),
        (lambda c: c.update(volume={"x": None}), "'volume' was unexpected"),
    ],
)
def test_the_schema_check_catches_a_slip(change: Any, complaint: str) -> None:
    """The check can fail: a misspelt key, a list for a string, a bad depends_on entry."""
    slipped = copy.deepcopy(compose())
    change(slipped)
    found = errors(slipped)
    assert found and any(complaint in error for error in found), found


def test_every_service_compose_names_is_defined() -> None:
    services = compose()["services"]
    for name, service in services.items():
        for needed in service.get("depends_on") or {}:
            assert needed in services, f"{name} depends on {needed}, which is not a service"
        assert "container_name" not in service, f"{name}: a fixed name cannot be scaled"


def test_every_volume_is_declared_and_used_and_every_mounted_file_exists() -> None:
    config = compose()
    declared = set(config.get("volumes") or {})
    used = set()
    for name, service in config["services"].items():
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name} mounts {source}, not in the project"
            else:
                assert source in declared, f"{name} uses volume {source}, never declared"
                used.add(source)
    assert used == declared, f"declared and never used: {declared - used}"


def test_the_app_is_built_from_the_project_with_its_settings() -> None:
    service = compose()["services"]["berater"]
    context = ROOT / service["build"]
    assert (context / "Dockerfile").is_file()
    # .env is the operator's copy of .env.example, which the project ships.
    assert service["env_file"] == ".env" and (ROOT / ".env.example").is_file()
    for key in service["environment"]:
        assert key in ENV_KEYS, f"{key} is not a setting row in berater/settings.py"


def test_only_services_with_an_image_or_a_build() -> None:
    for name, service in compose()["services"].items():
        assert "image" in service or "build" in service, name
        if "build" not in service:
            # A pinned registry image, never `latest`.
            repository, _, tag = service["image"].partition(":")
            assert repository and tag and tag != "latest", name
