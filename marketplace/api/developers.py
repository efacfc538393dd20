"""``/developers``: the API page for humans, listing every endpoint from the same records the
OpenAPI description is built from, and what each problem type means."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("developers", __name__)

PROBLEMS = {
    "validation": ("422", "A field, query parameter or header is not valid. `errors` lists "
                          "each, with a JSON Pointer (`pointer`), a `parameter` or a `header`."),
    "malformed-json": ("400", "The body is not JSON."),
    "unsupported-media-type": ("415", "Send `Content-Type: application/json`."),
    "unauthorized": ("401", "No key, a malformed or unknown key, a revoked key, or a key whose "
                            "creator has left the organisation."),
    "insufficient-scope": ("403", "A read-only key tried to write."),
    "test-mode-only": ("403", "Test helpers answer test-mode keys only."),
    "rate-limited": ("429", "Too many requests for this key (or address). Retry after the "
                            "`Retry-After` header's seconds."),
    "out-of-stock": ("409", "Not enough tonnes for sale for this quote or order."),
    "order-refused": ("422", "The order cannot be placed as asked (e.g. mixed currencies)."),
    "idempotency-conflict": ("409", "The `Idempotency-Key` was already used with another body. "
                                    "Use a new key for a new request."),
    "quote-used": ("409", "The quote was already ordered."),
    "quote-expired": ("409", "The quote's hold lapsed; ask for a new quote."),
    "payment-method-missing": ("402", "The organisation has no saved payment method: pay by "
                                      "invoice, or ask us to save one."),
    "payment-declined": ("402", "The saved payment method was declined. Nothing was charged."),
    "payment-unavailable": ("502", "The payment provider could not be reached. Nothing was "
                                   "charged; retry with a new `Idempotency-Key`."),
    "insufficient-credits": ("409", "Your organisation holds fewer credits than it asked to "
                                    "retire."),
    "ledger-refused": ("422", "The ledger refused the operation; `detail` says why."),
    "not-payable": ("409", "The test order is not awaiting payment."),
    "not-signed-yet": ("503", "The entry is recorded but no signed checkpoint covers it yet. "
                              "The registry signs one every few seconds: retry after the "
                              "`Retry-After` header's seconds."),
}


@bp.get("/developers")
def index() -> str:
    from .openapi import ERROR_TEXT
    from .views import OPERATIONS

    tags: dict[str, list[object]] = {}
    for op in OPERATIONS:
        tags.setdefault(op.tag, []).append(op)
    return render_template("api/developers.html", tags=tags, problems=PROBLEMS,
                           error_text=ERROR_TEXT)
