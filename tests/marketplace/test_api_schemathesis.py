"""schemathesis over the served OpenAPI description: every operation, with data that fits the
description and data that does not, sent with a live key that holds credits. No server error,
and no response that breaks the description (status code, content type, headers, body);
schema-invalid input is refused.

(schemathesis's own pytest loader, ``from_fixture``, does not run on pytest 9, so the
operations are parametrized here and each runs schemathesis's Hypothesis strategies.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from marketplace.api.views import OPERATIONS

from .shop import load_demo
from .test_api_helpers import ALTO_MAYO, RETIRE, api_app_for, bearer, keypair, make_company  # noqa: F401

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
EXAMPLES = {GenerationMode.POSITIVE: 15, GenerationMode.NEGATIVE: 10}


@pytest.fixture(scope="module")
def fuzzed(databases: Any, backend: str, keypair: tuple[Path, Path]) -> Iterator[tuple[Flask, Any, str]]:
    app = api_app_for(databases.fresh(backend), keypair[0])
    load_demo(app)
    company = make_company(app)
    client = app.test_client()
    for body in ({"lines": [{"project": ALTO_MAYO, "quantity": 500}], "action": "hold"},
                 {"lines": [{"project": ALTO_MAYO, "quantity": 2}], **RETIRE}):
        assert client.post("/api/v1/orders", json=body, headers=company.headers).status_code == 201
    yield app, schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app), company.live
    engine = app.extensions.get("selva_engine")
    if engine is not None:
        engine.dispose()


def test_the_description_covers_every_route(fuzzed: tuple[Flask, Any, str]) -> None:
    app, schema, _ = fuzzed
    served = {(method, rule.rule) for rule in app.url_map.iter_rules()
              if rule.rule.startswith("/api/") for method in rule.methods or ()
              if method not in ("HEAD", "OPTIONS")}
    import re

    documented = {(op.method.upper(), re.sub(r"\{([a-z_]+)\}", r"<\1>", op.path))
                  for op in OPERATIONS}
    normalised = {(m, re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"<\1>", p)) for m, p in served}
    assert normalised == documented
    raw = schema.raw_schema
    assert raw["openapi"] == "3.1.0"
    assert set(raw["webhooks"]) == {"order.fulfilled", "retirement.created"}
    assert sum(len(ops) for ops in raw["paths"].values()) == len(OPERATIONS)


def _cases() -> list[Any]:
    """Every operation with valid data; with invalid data too where there is something to get
    wrong (a query string, a body, a numeric path parameter)."""
    found = []
    for op in OPERATIONS:
        label = f"{op.method.upper()} {op.path}"
        found.append(pytest.param(op.method.upper(), op.path, GenerationMode.POSITIVE,
                                  id=f"{label} positive"))
        if op.query or op.body or "integer" in {kind for kind, _ in op.path_params.values()}:
            found.append(pytest.param(op.method.upper(), op.path, GenerationMode.NEGATIVE,
                                      id=f"{label} negative"))
    return found


@pytest.mark.parametrize("method,path,mode", _cases())
def test_the_api_keeps_to_its_description(fuzzed: tuple[Flask, Any, str], method: str,
                                          path: str, mode: GenerationMode) -> None:
    _, schema, key = fuzzed
    operation = schema[path][method]
    checks = CHECKS + ([negative_data_rejection] if mode is GenerationMode.NEGATIVE else [])

    @given(case=operation.as_strategy(generation_mode=mode, headers=bearer(key)))
    @settings(max_examples=EXAMPLES[mode], deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        case.call_and_validate(checks=checks)

    run()
