"""API orders with the Stripe gateway: the organisation's saved payment method is charged
off-session through the official library (talking to the local fake Stripe), with an
idempotency key from the order; a refusal or a missing method releases the tonnes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from marketplace.models import Order
from marketplace.payments.signature import sign_payload

from ..fakestripe import API_KEY, WEBHOOK_SECRET, FakeStripe
from .shop import load_demo, transaction
from .test_api_helpers import (  # noqa: F401  (fixtures)
    ALTO_MAYO,
    api_app_for,
    assert_problem,
    keypair,
    ledger_state,
    make_company,
)

HOLD = {"lines": [{"project": ALTO_MAYO, "quantity": 4}], "action": "hold"}


@pytest.fixture
def stripe_fake() -> Iterator[FakeStripe]:
    with FakeStripe() as fake:
        yield fake


@pytest.fixture
def stripe_app(fresh_url: str, keypair: tuple[Path, Path], stripe_fake: FakeStripe) -> Flask:
    app = api_app_for(fresh_url, keypair[0], PAYMENT_GATEWAY="stripe", STRIPE_SECRET_KEY=API_KEY,
                      STRIPE_API_BASE=stripe_fake.url, STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET)
    load_demo(app)
    return app


def intent(status: str = "succeeded", **extra: Any) -> dict[str, Any]:
    return {"id": "pi_3Test", "object": "payment_intent", "status": status, **extra}


def test_the_saved_payment_method_is_charged_off_session(stripe_app: Flask,
                                                         stripe_fake: FakeStripe) -> None:
    client = stripe_app.test_client()
    company = make_company(stripe_app)
    before = ledger_state(stripe_app)
    missing = client.post("/api/v1/orders", json=HOLD, headers=company.headers)
    assert_problem(missing, 402, "payment-method-missing")
    assert ledger_state(stripe_app).for_sale == before.for_sale   # released
    saved = stripe_app.test_cli_runner().invoke(args=[
        "api", "save-payment-method", "--org", str(company.org_id), "--customer", "cus_Acme",
        "--payment-method", "pm_card_visa", "--label", "Visa ending 4242"])
    assert saved.exit_code == 0, saved.output
    stripe_fake.failures.append((200, intent()))
    made = client.post("/api/v1/orders", json=HOLD, headers=company.headers)
    assert made.status_code == 201, made.get_data(as_text=True)
    order = made.get_json()
    assert order["status"] == "awaiting_payment" and order["payment_method"] == "saved"
    [call] = stripe_fake.calls("POST", "/v1/payment_intents")
    assert call.idempotency_key == f"api-charge-{order['id']}"
    assert call.form["amount"] == str(4 * 1800) and call.form["currency"] == "usd"
    assert call.form["customer"] == "cus_Acme" and call.form["payment_method"] == "pm_card_visa"
    assert call.form["off_session"] == "true" and call.form["confirm"] == "true"
    assert call.form["metadata"] == {"order": order["id"], "source": "api", "mode": "live"}
    with transaction(stripe_app) as session:
        stored = session.scalars(select(Order).where(Order.reference == order["id"])).one()
        assert stored.payment_reference == "pi_3Test"
    # the tonnes stay reserved until Stripe's webhook says the money arrived
    assert ledger_state(stripe_app).for_sale[1] == before.for_sale[1] - 4


def test_a_declined_or_unreachable_payment_releases_the_order(stripe_app: Flask,
                                                              stripe_fake: FakeStripe) -> None:
    client = stripe_app.test_client()
    company = make_company(stripe_app)
    with stripe_app.app_context():
        from marketplace.api import billing
        from marketplace.database import db

        with db.session.begin():
            billing.save_payment_method(db.session, company.org_id, "cus_A", "pm_A")
    before = ledger_state(stripe_app)
    stripe_fake.failures.append((402, {"error": {"type": "card_error", "code": "card_declined",
                                                 "message": "Your card was declined."}}))
    declined = client.post("/api/v1/orders", json=HOLD,
                           headers={**company.headers, "Idempotency-Key": "d-1"})
    body = assert_problem(declined, 402, "payment-declined")
    assert "card_declined" in body["detail"] and "sk_test" not in body["detail"]
    replay = client.post("/api/v1/orders", json=HOLD,
                         headers={**company.headers, "Idempotency-Key": "d-1"})
    assert replay.status_code == 200 and replay.get_json()["status"] == "failed"
    assert ledger_state(stripe_app).for_sale == before.for_sale
    stripe_fake.failures.extend([(500, {"error": {"type": "api_error", "message": "down"}})] * 3)
    down = client.post("/api/v1/orders", json=HOLD, headers=company.headers)
    assert_problem(down, 502, "payment-unavailable")
    assert ledger_state(stripe_app).for_sale == before.for_sale


def test_stripe_payment_intent_succeeded_fulfils_the_order(stripe_app: Flask,
                                                            stripe_fake: FakeStripe) -> None:
    client = stripe_app.test_client()
    company = make_company(stripe_app)
    stripe_app.test_cli_runner().invoke(args=[
        "api", "save-payment-method", "--org", str(company.org_id), "--customer", "cus_B",
        "--payment-method", "pm_B"])
    stripe_fake.failures.append((200, intent()))
    order = client.post("/api/v1/orders", json=HOLD, headers=company.headers).get_json()
    event = {"id": "evt_pi_1", "object": "event", "type": "payment_intent.succeeded",
             "created": int(time.time()), "livemode": False,
             "data": {"object": {"id": "pi_3Test", "object": "payment_intent",
                                 "amount": 7200, "amount_received": 7200, "currency": "usd",
                                 "status": "succeeded",
                                 "metadata": {"order": order["id"], "source": "api"}}}}
    payload = json.dumps(event).encode()
    delivered = client.post("/webhooks/stripe", data=payload, headers={
        "Stripe-Signature": sign_payload(payload, WEBHOOK_SECRET),
        "Content-Type": "application/json"})
    assert delivered.status_code == 200
    now = client.get(f"/api/v1/orders/{order['id']}", headers=company.headers).get_json()
    assert now["status"] == "fulfilled"
