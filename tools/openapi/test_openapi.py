"""Every service's OpenAPI document — the one it serves, committed as services/<service>/openapi.json and
held to the code by each service's `openapi` test — passes a real validator (openapi-spec-validator), and
says where each parameter is: query parameters in the query, path parameters in the path template."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted(ROOT.glob("services/*/openapi.json"))


def test_every_service_has_its_document() -> None:
    services = {p.parent.name for p in ROOT.glob("services/*/Cargo.toml")}
    assert {p.parent.name for p in DOCUMENTS} == services


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.parent.name)
def test_the_document_passes_a_real_validator(document: Path) -> None:
    validate(json.loads(document.read_text()))


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.parent.name)
def test_path_parameters_are_in_the_path_and_the_rest_in_the_query(document: Path) -> None:
    paths: dict[str, dict[str, Any]] = json.loads(document.read_text())["paths"]
    for template, operations in paths.items():
        placeholders = set(re.findall(r"\{([^}]+)\}", template))
        for method, operation in operations.items():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == placeholders, f"{method.upper()} {template}: path parameters {declared}"
