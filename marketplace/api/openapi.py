"""The OpenAPI 3.1 description, generated with apispec from the marshmallow schemas and the
routes declared in ``api.views`` (served at ``/api/v1/openapi.json``)."""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask

from . import schemas
from .problems import MEDIA_TYPE

ERROR_TEXT = {
    400: "The body is not valid JSON.",
    401: "No API key, or a bad, revoked or orphaned one.",
    402: "The payment was refused, or there is no saved payment method.",
    403: "The key may not do this (a read-only key, or a live key on a test helper).",
    404: "Not found (or not your organisation's).",
    409: "A conflict: not enough tonnes or credits, an Idempotency-Key reused with another "
         "body, a quote expired or already ordered.",
    413: "The body is too large.",
    415: "The body is not application/json.",
    422: "A field, parameter or header is not valid; ``errors`` lists each one.",
    429: "Too many requests: retry after Retry-After seconds.",
    502: "The payment provider could not be reached; nothing was charged.",
    503: "No checkpoint can be signed right now.",
}

DESCRIPTION = """\
Buy and retire forest carbon credits from your own systems, and read the public registry.

**Keys.** An organisation admin creates keys in the browser (Organisation → API keys). Send
one as `Authorization: Bearer sk_live_…` (or `curl -u sk_live_…:`). A read-only key may only
GET. Test-mode keys (`sk_test_…`) run the same code against a test
ledger of their own: the same listings and prices, native test credits (serials
`SLV-…-TEST-…`), payments through the demo gateway, and certificates signed with the test key
(`/test/registry`, `/test/ledger/key`). Nothing a test key does touches the live ledger (every
object says `livemode: false`).

**Errors** are RFC 9457 problem details (`application/problem+json`); validation errors list
every field in `errors`, with a JSON Pointer into the body.

**Idempotency.** Send `Idempotency-Key` with POST /orders and POST /retirements: the same key
and body give the same result (200, `Idempotent-Replayed: true`); the same key with another
body is a 409.

**Lists** are paginated with cursors: pass `next_cursor` back as `?cursor=`.

**Rate limits** apply per key (and per address without one): a 429 says when to retry in
`Retry-After`.

**Webhooks**: `order.fulfilled` and `retirement.created`, signed with your endpoint's secret
in `Selva-Signature: t=…,v1=…` (HMAC-SHA256 of `t.body`, as Stripe signs).
"""


def _problem_response(code: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": ERROR_TEXT.get(code, "A problem."),
        "content": {MEDIA_TYPE: {"schema": "Problem"}},
    }
    if code == 429:
        response["headers"] = {"Retry-After": {
            "description": "Seconds to wait before retrying.", "schema": {"type": "string"}}}
    return response


def build() -> APISpec:
    from .views import OPERATIONS

    spec = APISpec(
        title="Selva API", version="1.0.0", openapi_version="3.1.0",
        plugins=[MarshmallowPlugin()],
        info={"description": DESCRIPTION,
              "license": {"name": "Proprietary", "identifier": "LicenseRef-Selva"}},
        security=[{"apiKey": []}],
    )
    spec.components.security_scheme("apiKey", {
        "type": "http", "scheme": "bearer",
        "description": "An organisation's API key: sk_live_… or sk_test_…"})
    spec.components.schema("Problem", schema=schemas.ProblemSchema)
    spec.components.schema("Event", schema=schemas.EventSchema)
    codes = sorted({code for op in OPERATIONS for code in op.errors} | {500})
    for code in codes:
        spec.components.response(f"Problem{code}", _problem_response(code))
    for op in OPERATIONS:
        parameters: list[dict[str, Any]] = [
            {"in": "path", "name": name, "required": True, "description": text,
             "schema": {"type": kind, **({"minimum": 1} if kind == "integer" else {})}}
            for name, (kind, text) in op.path_params.items()
        ]
        if op.query is not None:
            parameters.append({"in": "query", "schema": op.query})
        if op.idempotent:
            parameters.append({"in": "header", "name": "Idempotency-Key", "required": False,
                               "description": "A unique key per request (e.g. a UUID): "
                                              "retries with the same key and body are "
                                              "answered with the first result.",
                               "schema": {"type": "string", "minLength": 1, "maxLength": 255,
                                          "pattern": "^[ -~]*[!-~][ -~]*$"}})
        responses: dict[str, Any] = {}
        for code, (schema, text) in op.responses.items():
            body: Any = schema if schema is not None else {"type": "object"}
            responses[str(code)] = {"description": text, "content": {"application/json":
                                                                     {"schema": body}}}
            if code == 200 and op.idempotent:
                responses[str(code)]["headers"] = {"Idempotent-Replayed": {
                    "description": "true on a replay", "schema": {"type": "string"}}}
        for code in (*op.errors, 500):
            responses[str(code)] = f"Problem{code}"
        operation: dict[str, Any] = {
            "operationId": op.endpoint, "summary": op.summary, "description": op.description,
            "tags": [op.tag], "responses": responses,
        }
        if parameters:
            operation["parameters"] = parameters
        if op.body is not None:
            operation["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": op.body}}}
        if op.public:
            operation["security"] = []
        spec.path(path=op.path, operations={op.method: operation})
    return spec


def spec_dict(app: Flask) -> dict[str, Any]:
    """The description as a dict, built once per app."""
    cached: dict[str, Any] | None = app.extensions.get("selva_api_openapi")
    if cached is None:
        cached = build().to_dict()
        cached["webhooks"] = {
            event: {"post": {
                "summary": f"The {event} event",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Event"}}}},
                "responses": {"200": {"description": "Any 2xx acknowledges the event."}},
            }} for event in ("order.fulfilled", "retirement.created")
        }
        app.extensions["selva_api_openapi"] = cached
    return cached
