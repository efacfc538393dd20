"""``/api/v1``: the blueprint. Each view validates its input with a schema, calls one service
inside one transaction, and dumps the result with a schema.

Every route is declared with :func:`route`, which also records what the OpenAPI description
needs (``api.openapi`` builds it from these records and the schemas), so the description and
the views cannot drift apart silently.

Before each view: the API key is checked (401), then its scope (403: a read-only key may only
GET), then the key's rate limit (429 with Retry-After). Public routes take no key and are
limited per client address instead. Cookies play no part: the session is never read here.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, current_app, g, request
from marshmallow import Schema, ValidationError
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from .. import catalogue, idempotency, inputs, kilograms, modes
from ..database import db
from ..extensions import limiter
from . import billing, credits, projects, public, schemas, trading
from .keys import Caller, authenticate, key_mode
from .problems import (
    Problem,
    field_errors,
    handle_unexpected,
    invalid,
    invalid_field,
    problem_response,
)

bp = Blueprint("api", __name__, url_prefix="/api/v1")
MAX_BODY = 64 * 1024
JSON = "application/json"


# -- declaring routes ------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """What the OpenAPI description says about one route."""

    path: str
    method: str
    endpoint: str
    summary: str
    description: str
    tag: str
    public: bool
    write: bool
    query: type[Schema] | None
    body: type[Schema] | None
    responses: dict[int, tuple[type[Schema] | None, str]]
    errors: tuple[int, ...]
    path_params: dict[str, tuple[str, str]] = field(default_factory=dict)
    idempotent: bool = False
    raw_json: bool = False


OPERATIONS: list[Operation] = []
_PUBLIC: set[str] = set()
_PATH_PARAM = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")


def route(rule: str, method: str, *, summary: str, tag: str,
          responses: dict[int, tuple[type[Schema] | None, str]],
          errors: tuple[int, ...] = (), query: type[Schema] | None = None,
          body: type[Schema] | None = None, public: bool = False,
          path_params: dict[str, tuple[str, str]] | None = None,
          idempotent: bool = False) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    def register(view: Callable[..., Response]) -> Callable[..., Response]:
        endpoint = view.__name__
        bp.add_url_rule(rule, endpoint, view, methods=[method])
        if public:
            _PUBLIC.add(f"{bp.name}.{endpoint}")
        OPERATIONS.append(Operation(
            path=bp.url_prefix + _PATH_PARAM.sub(r"{\1}", rule),  # type: ignore[operator]
            method=method.lower(), endpoint=endpoint, summary=summary,
            description=(view.__doc__ or "").strip(), tag=tag, public=public,
            write=method not in ("GET", "HEAD"), query=query, body=body, responses=responses,
            errors=tuple(sorted({*errors, 429, *(() if public else (401,)),
                                 *((403,) if method not in ("GET", "HEAD") else ()),
                                 *((422,) if query is not None or body is not None else ()),
                                 *((400, 413, 415) if body is not None else ())})),
            path_params=path_params or {}, idempotent=idempotent))
        return view

    return register


# -- before and after each request -------------------------------------------------------------


def caller() -> Caller:
    found: Caller = g.api_caller
    return found


def _rate_limit(bucket: str, identity: str, setting: str) -> None:
    """Count this request against ``identity``'s limit (Flask-Limiter's storage and
    strategy); a 429 with Retry-After once it is spent."""
    config = current_app.config
    if not config.get("RATELIMIT_ENABLED", True) or not limiter.initialized:
        return
    from limits import parse

    item = parse(str(config[setting]))
    strategy = limiter.limiter
    if not strategy.hit(item, "selva-api", bucket, identity):
        stats = strategy.get_window_stats(item, "selva-api", bucket, identity)
        retry = max(1, math.ceil(stats.reset_time - time.time()))
        raise Problem(429, "Too many requests",
                      f"This {'key' if bucket == 'key' else 'address'} may make {item.amount} "
                      f"requests per {item.multiples if item.multiples > 1 else ''}"
                      f"{' ' if item.multiples > 1 else ''}{item.GRANULARITY.name}; "
                      f"retry in {retry} s.",
                      slug="rate-limited",
                      headers={"Retry-After": str(retry), "X-RateLimit-Limit": str(item.amount),
                               "X-RateLimit-Remaining": "0"})
    stats = strategy.get_window_stats(item, "selva-api", bucket, identity)
    g.api_rate = (item.amount, stats.remaining, int(stats.reset_time))


@bp.before_request
def _authenticate() -> None:
    if request.endpoint in _PUBLIC or request.endpoint is None:
        _rate_limit("address", request.remote_addr or "unknown", "API_PUBLIC_RATE_LIMIT")
        return
    authorization = request.headers.get("Authorization")
    # Everything from here runs on the key's mode's data: same code, other ledger. The key is
    # looked up through that mode's session (it sees the shared tables too), so a request holds
    # one connection: on SQLite a second one would wait on the first's lock.
    db.set_mode(key_mode(authorization))
    try:
        with db.session.begin():
            found = authenticate(db.session, authorization)
    except Problem:
        _rate_limit("address", request.remote_addr or "unknown", "API_PUBLIC_RATE_LIMIT")
        raise
    g.api_caller = found
    if request.method not in ("GET", "HEAD") and not found.can_write:
        raise Problem(403, "Forbidden", "This API key is read-only; this request needs a key "
                      "that may write.", slug="insufficient-scope")
    _rate_limit("key", found.key.prefix, "API_RATE_LIMIT")


@bp.after_request
def _headers(response: Response) -> Response:
    rate = g.get("api_rate")
    if rate is not None and "X-RateLimit-Limit" not in response.headers:
        response.headers["X-RateLimit-Limit"] = str(rate[0])
        response.headers["X-RateLimit-Remaining"] = str(rate[1])
        response.headers["X-RateLimit-Reset"] = str(rate[2])
    response.headers.setdefault("Cache-Control", "no-store")
    return response


@bp.errorhandler(Problem)
def _problem(problem: Problem) -> Response:
    return problem_response(problem)


@bp.errorhandler(Exception)
def _unexpected(error: Exception) -> Response:
    if isinstance(error, HTTPException):
        from .problems import from_http_exception

        return problem_response(from_http_exception(error))
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        from ..errors import database_lost

        answer: Response = current_app.make_response(database_lost(error))
        return answer
    return handle_unexpected(error)


# -- input and output ------------------------------------------------------------------------------


def load_query(schema: Schema) -> dict[str, Any]:
    try:
        loaded: dict[str, Any] = schema.load(request.args.to_dict(flat=True))
    except ValidationError as exc:
        raise invalid(field_errors(exc.messages, "query")) from None
    return loaded


def no_query() -> None:
    if request.args:
        raise invalid([{"parameter": name, "detail": "Unknown parameter."}
                       for name in request.args])


def load_body(schema: Schema) -> tuple[dict[str, Any], str]:
    """The validated body and the hash of what was sent (for idempotency)."""
    no_query()
    if request.mimetype != JSON:
        raise Problem(415, "Unsupported Media Type",
                      "Send a JSON body with 'Content-Type: application/json'.",
                      slug="unsupported-media-type")
    if (request.content_length or 0) > MAX_BODY:
        raise Problem(413, "Content Too Large", f"A request body is at most {MAX_BODY} bytes.")
    raw = request.get_data(cache=True)
    if len(raw) > MAX_BODY:
        raise Problem(413, "Content Too Large", f"A request body is at most {MAX_BODY} bytes.")

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    try:
        sent = json.loads(raw, parse_constant=refuse)
    except (ValueError, RecursionError):
        raise Problem(400, "Bad Request", "The body is not valid JSON.",
                      slug="malformed-json") from None
    bad = [{"pointer": pointer, "detail": f"This text {why}."}
           for pointer, text in inputs.walk_strings(sent)
           if (why := inputs.bad_text(text, lines=True)) is not None]
    if bad:
        raise invalid(bad)
    try:
        data: dict[str, Any] = schema.load(sent)
    except ValidationError as exc:
        raise invalid(field_errors(exc.messages)) from None
    canonical = json.dumps(sent, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    digest = hashlib.sha256(f"{request.path}\n{canonical}".encode("ascii")).hexdigest()
    return data, digest


def idempotency_key() -> str | None:
    value = request.headers.get("Idempotency-Key")
    if value is None:
        return None
    value = value.strip()
    if not 1 <= len(value) <= 255 or not all(32 <= ord(ch) <= 126 for ch in value):
        raise invalid_field("Idempotency-Key", "1 to 255 printable ASCII characters.", "header")
    return value


def respond(schema: Schema, obj: Any, status: int = 200,
            headers: dict[str, str] | None = None) -> Response:
    response = Response(json.dumps(schema.dump(obj), ensure_ascii=False), status=status,
                        mimetype=JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _not_found(what: str) -> Problem:
    return Problem(404, "Not Found", f"There is no {what} with that id in your organisation "
                   f"({db.mode()} mode).")


# -- projects ------------------------------------------------------------------------------------


@route("/projects", "GET", summary="List projects on sale", tag="Projects",
       query=schemas.ProjectQuerySchema,
       responses={200: (schemas.ProjectListSchema, "A page of projects.")})
def list_projects() -> Response:
    """The catalogue, filtered and sorted as in the shop, with the tonnes for sale by vintage
    (simulated availability for a test key). Prices are in minor units."""
    query = load_query(schemas.project_query)
    with db.session.begin():
        page = projects.list_projects(db.session, query, catalogue.for_sale_now(db.session))
        return respond(schemas.project_list_out, page.envelope(page.items))


@route("/projects/<int:project_id>", "GET", summary="Get a project", tag="Projects",
       responses={200: (schemas.ProjectSchema, "The project.")}, errors=(404,),
       path_params={"project_id": ("integer", "The project's id.")})
def get_project(project_id: int) -> Response:
    """One listed project with its availability by vintage."""
    no_query()
    with db.session.begin():
        found = projects.get_project(db.session, project_id,
                                     catalogue.for_sale_now(db.session))
        if found is None:
            raise Problem(404, "Not Found", f"No project {project_id} is on sale.")
        return respond(schemas.project_out, found)


# -- quotes --------------------------------------------------------------------------------------


@route("/quotes", "POST", summary="Get a quote", tag="Quotes", body=schemas.QuoteCreateSchema,
       responses={201: (schemas.QuoteSchema, "The quote; the tonnes are held until "
                                             "expires_at.")}, errors=(409,))
def create_quote() -> Response:
    """Price tonnes of a project (or of the cheapest project matching ``filters``) and hold
    them for a short time (15 minutes by default). Order them with ``POST /orders``
    ``{"quote": id}`` before ``expires_at``."""
    data, _ = load_body(schemas.quote_create)
    who = caller()
    with db.session.begin():
        quote = trading.create_quote(db.session, who, data)
        body = trading.quote_dict(db.session, quote)
    return respond(schemas.quote_out, body, 201,
                   {"Location": f"{bp.url_prefix}/quotes/{quote.public_id}"})


@route("/quotes/<quote_id>", "GET", summary="Get a quote", tag="Quotes",
       responses={200: (schemas.QuoteSchema, "The quote.")}, errors=(404,),
       path_params={"quote_id": ("string", "The quote's id (qt_...).")})
def get_quote(quote_id: str) -> Response:
    """A quote of your organisation, and whether it is still open."""
    no_query()
    who = caller()
    if not re.fullmatch(trading.QUOTE_PATTERN, quote_id):
        raise _not_found("quote")
    with db.session.begin():
        quote = trading.find_quote(db.session, who, quote_id)
        if quote is None:
            raise _not_found("quote")
        return respond(schemas.quote_out, trading.quote_dict(db.session, quote))


# -- orders --------------------------------------------------------------------------------------


def _idempotent(endpoint: str, key: str | None, digest: str) -> idempotency.Request:
    return idempotency.Request(caller().organisation.id, endpoint, key, digest)


def _run(request_: idempotency.Request, *, replay: Callable[[str], Any],
         create: Callable[[], tuple[str, Any]]) -> idempotency.Outcome[Any]:
    try:
        return idempotency.run(db.session, request_, replay=replay, create=create)
    except idempotency.IdempotencyConflict:
        raise Problem(409, "Idempotency-Key reused", "This Idempotency-Key was already used "
                      "with a different request. Use a new key for a new request.",
                      slug="idempotency-conflict") from None


@route("/orders", "POST", summary="Place an order", tag="Orders", body=schemas.OrderCreateSchema,
       responses={201: (schemas.OrderSchema, "The order, as it stands after payment was "
                                             "attempted."),
                  200: (schemas.OrderSchema, "A replay: the order placed earlier with this "
                                             "Idempotency-Key and the same body.")},
       errors=(402, 409, 502), idempotent=True)
def create_order() -> Response:
    """From a quote or from lines. With ``payment_method: saved`` the organisation's saved
    payment method is charged at once and the order is fulfilled into the ledger as in the shop
    (the credits held by the organisation or retired in the beneficiary's name); with
    ``invoice`` it waits as ``awaiting_payment``. Send an ``Idempotency-Key``: the same key and
    body return the same order (200, ``Idempotent-Replayed: true``); the same key with another
    body is a 409."""
    key = idempotency_key()
    data, digest = load_body(schemas.order_create)
    who = caller()

    def replay(reference: str) -> tuple[Any, bool]:
        found = trading.get_order(db.session, who, reference)
        assert found is not None
        return found, trading.needs_charge(db.session, found)

    def create() -> tuple[str, tuple[Any, bool]]:
        order = trading.place_order(db.session, who, data)
        return order.reference, (order, trading.needs_charge(db.session, order,
                                                             data["payment_method"]))

    outcome = _run(_idempotent("orders", key, digest), replay=replay, create=create)
    (order, charge), replayed = outcome.value, outcome.replayed
    if charge:
        # The payment runs in this same session (the demo gateway's webhook handler, or the
        # Stripe call's own transactions), which refreshes ``order`` as it locks it. The
        # webhook handler seals the grams it allocated.
        trading.charge(order)
    elif order.grams:
        kilograms.seal_due(db.session)
    with db.session.begin():
        return _order_response(trading.order_dict(db.session, order), replayed)


def _order_response(body: dict[str, Any], replayed: bool) -> Response:
    headers = {"Location": f"{bp.url_prefix}/orders/{body['id']}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return respond(schemas.order_out, body, 200 if replayed else 201, headers)


@route("/orders", "GET", summary="List orders", tag="Orders", query=schemas.OrderQuerySchema,
       responses={200: (schemas.OrderListSchema, "A page of orders, newest first.")})
def list_orders() -> Response:
    """Your organisation's orders (made through the API or in the shop), newest first."""
    query = load_query(schemas.order_query)
    with db.session.begin():
        page = trading.list_orders(db.session, caller(), query)
        return respond(schemas.order_list_out, page.envelope(page.items))


def _find_order(reference: str) -> Any:
    if re.fullmatch(trading.REFERENCE_PATTERN, reference):
        return trading.get_order(db.session, caller(), reference)
    return None


@route("/orders/<order_id>", "GET", summary="Get an order", tag="Orders",
       responses={200: (schemas.OrderSchema, "The order.")}, errors=(404,),
       path_params={"order_id": ("string", "The order's reference (SLV-...).")})
def get_order(order_id: str) -> Response:
    """One of your organisation's orders; another organisation's is a 404."""
    no_query()
    with db.session.begin():
        order = _find_order(order_id)
        if order is None:
            raise _not_found("order")
        return respond(schemas.order_out, trading.order_dict(db.session, order))


@route("/test_helpers/orders/<order_id>/pay", "POST", summary="Pay a test order's invoice",
       tag="Test helpers", responses={200: (schemas.OrderSchema, "The order, now fulfilled.")},
       errors=(404, 409), path_params={"order_id": ("string", "The test order's reference.")})
def pay_test_order(order_id: str) -> Response:
    """Test mode only: the invoice of a test order awaiting payment was paid, exactly as an
    operator records a live invoice's payment (``flask api invoice-paid``), so the order is
    fulfilled into the test ledger. A live key gets a 403."""
    no_query()
    if db.mode() != modes.TEST:
        raise Problem(403, "Forbidden", "Test helpers work only with a test-mode key.",
                      slug="test-mode-only")
    with db.session.begin():
        order = _find_order(order_id)
        if order is None:
            raise _not_found("order")
        try:
            billing.record_invoice_payment(db.session, order.reference)
        except LookupError:
            raise Problem(409, "Not an invoice order", f"Order {order.reference} is not paid "
                          "by invoice.", slug="not-invoiced") from None
    kilograms.seal_due(db.session)
    with db.session.begin():
        return respond(schemas.order_out, trading.order_dict(db.session, order))


# -- holdings and retirements -------------------------------------------------------------------


@route("/holdings", "GET", summary="List credits held", tag="Holdings",
       query=schemas.HoldingQuerySchema,
       responses={200: (schemas.HoldingListSchema, "A page of holdings, by batch.")})
def list_holdings() -> Response:
    """Tradable credits your organisation holds, by project and vintage, with the serial
    strings of the blocks held."""
    query = load_query(schemas.holding_query)
    with db.session.begin():
        page = credits.list_holdings(db.session, caller(), query)
        return respond(schemas.holding_list_out, page.envelope(page.items))


def _retirement_body(who: Caller, resource_id: str) -> dict[str, Any] | None:
    allocation = credits.find_kg_allocation(db.session, who, resource_id)
    if allocation is not None:
        return credits.kg_retirement_dict(db.session, allocation)
    seq = credits.find_retirement(db.session, who, resource_id)
    return credits.retirement_dict(db.session, seq) if seq is not None else None


@route("/retirements", "POST", summary="Retire held credits", tag="Retirements",
       body=schemas.RetirementCreateSchema,
       responses={201: (schemas.RetirementSchema, "The retirement, with its certificate's "
                                                  "links."),
                  200: (schemas.RetirementSchema, "A replay of an earlier request with this "
                                                  "Idempotency-Key.")},
       errors=(409,), idempotent=True)
def create_retirement() -> Response:
    """Retire credits your organisation holds, in a beneficiary's name, for a purpose and the
    period the claim covers: oldest vintage first, or only of one project or batch. A
    retirement is final. Send an ``Idempotency-Key`` so that a retry cannot retire twice."""
    key = idempotency_key()
    data, digest = load_body(schemas.retirement_create)
    who = caller()

    def create() -> tuple[str, dict[str, Any] | str]:
        if data.get("grams"):
            allocation, _ = credits.retire_kilograms(db.session, who, data)
            return allocation.reference, allocation.reference
        body = credits.retirement_dict(db.session, credits.retire(db.session, who, data))
        return str(body["id"]), body

    def replay(resource: str) -> dict[str, Any] | str | None:
        return resource if credits.KG_RETIREMENT.fullmatch(resource) else \
            _retirement_body(who, resource)

    outcome = _run(_idempotent("retirements", key, digest), replay=replay, create=create)
    found, replayed = outcome.value, outcome.replayed
    body = _settle_kilograms(who, found) if isinstance(found, str) else found
    headers = {"Location": f"{bp.url_prefix}/retirements/{body['id']}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return respond(schemas.retirement_out, body, 200 if replayed else 201, headers)


def _settle_kilograms(who: Caller, reference: str) -> dict[str, Any]:
    """Seal a kilogram retirement into the ledger if its batch is due (else this process's
    sealer does within seconds); its retirement as it then stands."""
    kilograms.seal_due(db.session)
    with db.session.begin():
        allocation = credits.find_kg_allocation(db.session, who, reference)
        assert allocation is not None
        return credits.kg_retirement_dict(db.session, allocation)


@route("/retirements", "GET", summary="List retirements", tag="Retirements",
       query=schemas.PageQuerySchema,
       responses={200: (schemas.RetirementListSchema, "A page of retirements, newest first.")})
def list_retirements() -> Response:
    """Retirements of your organisation's credits (through the API, the shop or an order)."""
    query = load_query(schemas.page_query)
    with db.session.begin():
        page = credits.list_retirements(db.session, caller(), query)
        return respond(schemas.retirement_list_out, page.envelope(page.items))


@route("/retirements/<retirement_id>", "GET", summary="Get a retirement", tag="Retirements",
       responses={200: (schemas.RetirementSchema, "The retirement.")}, errors=(404,),
       path_params={"retirement_id": ("string", "The retirement's id (ret_...).")})
def get_retirement(retirement_id: str) -> Response:
    """One of your organisation's retirements, with links to its certificate (JSON, page,
    PDF)."""
    no_query()
    who = caller()
    with db.session.begin():
        body = _retirement_body(who, retirement_id) if len(retirement_id) <= 40 else None
        if body is None:
            raise _not_found("retirement")
        return respond(schemas.retirement_out, body)


# -- public: no key ------------------------------------------------------------------------------


@route("/registry/totals", "GET", summary="Registry totals", tag="Public registry", public=True,
       responses={200: (schemas.RegistryTotalsSchema, "Tonnes issued, tradable, retired, "
                                                      "cancelled and in the buffer pool.")})
def registry_totals() -> Response:
    """Totals over the whole registry and per project."""
    no_query()
    with db.session.begin():
        return respond(schemas.registry_totals_out, public.totals(db.session))


@route("/certificates/<int:seq>", "GET", summary="A retirement's certificate", tag="Public registry",
       public=True, responses={200: (schemas.CertificateSchema, "The certificate.")},
       errors=(404, 503), path_params={"seq": ("integer", "The retirement's ledger entry.")})
def certificate(seq: int) -> Response:
    """The certificate JSON of the retirement at ledger entry ``seq``: save it and check it
    offline with ``python -m ledger.verify --certificate cert.json --key key.pub``."""
    no_query()
    if not 1 <= seq <= schemas.MAX_SEQ:
        raise public.not_found(f"There is no retirement at ledger entry {seq}.")
    with db.session.begin():
        body = public.certificate(db.session, seq)
    return respond(schemas.certificate_out, body)


@route("/serials/<serial>", "GET", summary="Look up a serial", tag="Public registry",
       public=True, responses={200: (schemas.SerialLookupSchema, "Every block that ever held "
                                                                 "the serial, oldest first.")},
       errors=(404, 422),
       path_params={"serial": ("string", "A serial number or a serial string.")})
def serial(serial: str) -> Response:
    """The life of one serial number: issued, moved, retired or cancelled, by which entries.
    Holders are shown by kind only."""
    no_query()
    if len(serial) > 200 or not serial.isascii() or not serial.isprintable():
        raise invalid_field("serial", "Not a serial number or serial string.", "query")
    with db.session.begin():
        return respond(schemas.serial_lookup_out, public.serial_lookup(db.session, serial))


@route("/checkpoint", "GET", summary="The latest signed checkpoint", tag="Public registry",
       public=True, query=schemas.CheckpointQuerySchema,
       responses={200: (schemas.CheckpointSchema, "A C2SP signed note over the journal's "
                                                  "Merkle root.")}, errors=(404, 503))
def checkpoint() -> Response:
    """The newest signed checkpoint (the registry signs one within seconds of the journal
    growing; 503 with ``Retry-After`` before the first), or an earlier one with ``?size=``."""
    query = load_query(schemas.checkpoint_query)
    with db.session.begin():
        return respond(schemas.checkpoint_out, public.checkpoint(db.session, query.get("size")))


@route("/proofs/inclusion", "GET", summary="Merkle inclusion proof", tag="Public registry",
       public=True, query=schemas.InclusionQuerySchema,
       responses={200: (schemas.InclusionProofSchema, "RFC 9162 inclusion proof.")})
def inclusion_proof() -> Response:
    """That entry ``seq`` is in the tree of the first ``size`` entries."""
    query = load_query(schemas.inclusion_query)
    with db.session.begin():
        return respond(schemas.inclusion_out,
                       public.inclusion(db.session, query["seq"], query["size"]))


@route("/proofs/consistency", "GET", summary="Merkle consistency proof", tag="Public registry",
       public=True, query=schemas.ConsistencyQuerySchema,
       responses={200: (schemas.ConsistencyProofSchema, "RFC 9162 consistency proof.")})
def consistency_proof() -> Response:
    """That the tree of ``to`` entries extends the tree of ``from`` entries."""
    query = load_query(schemas.consistency_query)
    with db.session.begin():
        return respond(schemas.consistency_out,
                       public.consistency(db.session, query["first"], query["second"]))


@route("/openapi.json", "GET", summary="This description", tag="Public registry", public=True,
       responses={200: (None, "The OpenAPI 3.1 description of this API.")})
def openapi_json() -> Response:
    """The OpenAPI 3.1 description, generated from the schemas."""
    from .openapi import spec_dict

    response = Response(json.dumps(spec_dict(current_app), ensure_ascii=False), mimetype=JSON)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response

