"""200 kilogram orders at once on PostgreSQL, of random sizes, against a pool with 5 t free, a
refill threshold, and a project that runs out: no gram is allocated twice or without a tonne
retired behind it, no answer is a 5xx, and no paid order is lost."""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from ledger import audit
from ledger.records import GRAMS_PER_TONNE
from ledger.replay import replay_all
from ledger.schema import AllocationDraw, Entry, PoolRetirement
from marketplace import kilograms
from marketplace.models import Listing, Order
from marketplace.models.pools import KgAllocation, PoolRetirementStock

from .shop import load_demo, small_project, transaction
from .test_api_helpers import RETIRE, api_app_for, keypair, make_company  # noqa: F401

PROJECT_TONNES = 12
POOL_TONNES = 5
DETAILS = {key: value for key, value in RETIRE.items() if key != "action"}


@pytest.mark.postgres
@pytest.mark.slow
def test_200_concurrent_kilogram_orders_never_over_allocate(
        pg_url: str, keypair: tuple[Path, Path]) -> None:
    app = api_app_for(pg_url, keypair[0], POOL_REFILL_BELOW_KG=1_000, POOL_REFILL_TONNES=2,
                      POOL_SEAL_SECONDS=0.2)
    load_demo(app)
    listing_id = small_project(app, tonnes=PROJECT_TONNES)
    with transaction(app) as session:
        listing = session.get(Listing, listing_id)
        assert listing is not None
        project = listing.project_id
        assert kilograms.refill(session, listing, POOL_TONNES) == POOL_TONNES
    company = make_company(app, "Parcel Co")
    rng = random.Random(20261206)
    sizes = [rng.choice([(rng.randint(250, 999), "g"), (rng.randint(1, 150), "kg"),
                         (rng.randint(100, 2_500), "kg")]) for _ in range(200)]

    def post(i: int) -> tuple[int, dict[str, Any], int]:
        amount, unit = sizes[i]
        body = {"project": project, "mass": {"amount": amount, "unit": unit}, **DETAILS}
        if i % 2:
            response = app.test_client().post("/api/v1/retirements", json=body,
                                              headers=company.headers)
        else:
            response = app.test_client().post("/api/v1/orders", headers=company.headers, json={
                "lines": [{"project": project, "mass": {"amount": amount, "unit": unit}}],
                "payment_method": "account", **RETIRE})
        return response.status_code, response.get_json(), amount * kilograms.UNITS[unit]

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(post, range(200)))
    statuses = sorted({status for status, _, _ in answers})
    assert set(statuses) <= {201, 409}, [a for a in answers if a[0] not in (201, 409)][:3]
    sold = [(body, grams) for status, body, grams in answers if status == 201]
    refused = [body for status, body, _ in answers if status == 409]
    assert sold and refused, "the run should both sell and run out"
    assert all("left for sale in kilograms" in body["detail"] for body in refused)

    deadline = time.monotonic() + 10  # the sealer thread seals what the requests left
    while True:
        with transaction(app) as session:
            waiting = session.scalar(select(func.count()).select_from(KgAllocation)
                                     .where(KgAllocation.state == "allocated"))
        if not waiting or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert waiting == 0

    with transaction(app) as session:
        # No lost order: every 201 is a fulfilled order whose grams are sealed in the ledger.
        sold_grams = sum(grams for _, grams in sold)
        orders = list(session.scalars(select(Order).where(Order.organisation_id ==
                                                          company.org_id)))
        assert len(orders) == len(sold) + len(refused) or len(orders) == len(sold)
        fulfilled = [o for o in orders if o.status == "fulfilled"]
        assert len(fulfilled) == len(sold) and sum(o.grams for o in fulfilled) == sold_grams
        sealed = list(session.scalars(select(KgAllocation).where(
            KgAllocation.order_id.in_([o.id for o in fulfilled]))))
        assert all(a.state == "sealed" for a in sealed) and len(sealed) == len(sold)
        allocated = int(session.scalar(select(func.sum(AllocationDraw.grams))) or 0)
        retired = int(session.scalar(select(func.sum(PoolRetirement.quantity))
                                     .where(PoolRetirement.project_id == project)) or 0)
        assert allocated == sold_grams
        assert allocated <= retired * GRAMS_PER_TONNE
        assert retired <= PROJECT_TONNES
        for row in session.scalars(select(PoolRetirementStock)):
            assert 0 <= row.taken <= row.grams
        taken = int(session.scalar(select(func.sum(PoolRetirementStock.taken))) or 0)
        assert taken == allocated  # nothing reserved left behind
        batches = session.scalar(select(func.count()).select_from(Entry)
                                 .where(Entry.kind == "allocate"))
        assert batches < len(sold)  # several allocations to an entry
        audit.verify(session)
        journal = [(seq, bytes(record), digest) for seq, record, digest in session.execute(
            select(Entry.seq, Entry.record, Entry.hash).order_by(Entry.seq))]
    state = replay_all(journal)
    ref = next(p for p in state.pool_totals() if p.startswith("SLV-"))
    totals = state.pool_totals()[ref]
    assert (totals.tonnes, totals.allocated, totals.allocations) == (retired, allocated,
                                                                     len(sold))


@pytest.mark.postgres
def test_a_late_payment_never_takes_grams_sold_meanwhile(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Order 1 lapses, its grams go back to the pool and are sold to order 2 while order 1's
    payment arrives: order 1 is paid with a refund due, never allocated the same grams."""
    import datetime as dt
    import threading

    from marketplace import checkout
    from marketplace.checkout import CartLine, CheckoutDetails
    from marketplace.models import User

    from .shop import add_user, make_app

    app = make_app(pg_url, POOL_SEAL_SECONDS=0)
    load_demo(app)
    listing_id = small_project(app, tonnes=3)
    user_id = add_user(app, "late@example.org")
    details = CheckoutDetails("Ana", "voluntary", "PE", dt.date(2025, 1, 1),
                              dt.date(2025, 12, 31))

    def place(grams: int) -> str:
        with transaction(app) as session:
            order = checkout.place_order(session, user=session.get(User, user_id),
                                         lines=[CartLine(listing_id, 0, None, grams)],
                                         details=details, gateway="demo")
            return order.reference

    first = place(400_000)
    with transaction(app) as session:
        checkout.release(session, first, "expired")
    original = kilograms.lock_pools
    waiting, go = threading.Event(), threading.Event()

    def slow(session: Any, ids: set[int]) -> None:
        if threading.current_thread().name == "late-payment":
            waiting.set()
            go.wait(10)
        original(session, ids)

    monkeypatch.setattr(kilograms, "lock_pools", slow)
    outcome: dict[str, str] = {}

    def pay() -> None:
        with transaction(app) as session:
            order = session.scalars(select(Order).where(Order.reference == first)).one()
            outcome["first"] = checkout.fulfil(session, first, amount_minor=order.total_minor,
                                               currency=order.currency)

    thread = threading.Thread(target=pay, name="late-payment")
    thread.start()
    assert waiting.wait(10)
    second = place(2_700_000)  # the released grams and most of the rest: 300 kg left
    go.set()
    thread.join(10)
    assert "refund due" in outcome["first"]
    with transaction(app) as session:
        orders = {o.reference: o for o in session.scalars(select(Order))}
        assert orders[first].status == "paid"
        assert orders[second].status == "pending"
        live = [a for a in session.scalars(select(KgAllocation))
                if a.state in ("reserved", "allocated", "sealed")]
        assert sum(a.grams for a in live) == 2_700_000
        taken = int(session.scalar(select(func.sum(PoolRetirementStock.taken))) or 0)
        assert taken == 2_700_000
        retired = int(session.scalar(select(func.sum(PoolRetirement.quantity))) or 0)
        assert taken <= retired * GRAMS_PER_TONNE
