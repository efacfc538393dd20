"""Holdings and retirements of an organisation, read from and written to the ledger of the
caller's mode (``ledger.queries``, ``ledger.operations``), as the holdings page does."""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger import canonical, operations, queries
from ledger.errors import InsufficientCreditsError, LedgerError
from ledger.records import GRAMS_PER_TONNE
from ledger.schema import Allocation as AllocationRow
from ledger.schema import Batch, Beneficiary, Block, Entry, Project

from ledger import origin as ledger_origin

from .. import certificates, checkout, events, origin
from ..checkout import CartLine, CheckoutDetails, CheckoutError
from ..models import Listing, Order
from ..models.api import ApiOrder
from ..models.pools import KgAllocation
from ..accounts import account_id_of, account_of
from ..database import db
from ..errors import status_for
from . import projects
from .keys import Caller
from .pagination import Page, decode, encode, page_of
from .problems import Problem, invalid_field
from . import trading
from .trading import certificate_links, kg_certificate_links

LIVE_RETIREMENT = re.compile(r"ret_([1-9][0-9]{0,15})")
KG_RETIREMENT = re.compile(r"kg_[0-9a-f]{16}")


def retirement_dict(session: Session, seq: int) -> dict[str, Any]:
    """A retirement entry as the API shows it (any retirement: the caller checks ownership)."""
    entry = session.get(Entry, seq)
    assert entry is not None and entry.kind == "retire"
    data = canonical.loads(bytes(entry.record))["data"]
    blocks = certificates.retired_blocks(session, seq)
    person = session.get(Beneficiary, seq)
    per_batch: dict[int, int] = defaultdict(int)
    refs: dict[int, dict[str, Any]] = {}
    for block in blocks:
        per_batch[block.batch_id] += block.quantity
        refs.setdefault(block.batch.project_id, projects.project_ref(block.batch.project))
    return {
        "id": f"ret_{seq}", "object": "retirement", "livemode": db.livemode,
        "status": "recorded", "seq": seq, "index": None, "pool": None,
        "hash": entry.hash, "quantity": int(data["quantity"]),
        "grams": int(data["quantity"]) * GRAMS_PER_TONNE,
        "beneficiary": person.name if person is not None else None,
        "purpose": str(data.get("purpose", "")), "note": str(data.get("note", "")),
        "country": str(data.get("country", "")),
        "period_start": dt.date.fromisoformat(str(data["period_start"])),
        "period_end": dt.date.fromisoformat(str(data["period_end"])),
        "projects": list(refs.values()),
        "allocation": [{"batch": b, "vintage": projects.vintage_label(session.get(Batch, b)),
                        "quantity": q} for b, q in per_batch.items()],
        "serials": [queries.serial_string(b.batch, b.first_serial, b.last_serial) for b in blocks],
        "created_at": projects.aware(entry.created_at),
        "certificate": certificate_links(seq),
        "origin": origin.origin_dict(ledger_origin.retirement_origin(session, seq)),
        "labels": origin.batch_labels(session, list({b.batch_id: b.batch for b in blocks}
                                                    .values()), before=seq),
    }


def _owned(session: Session, caller: Caller, seq: int) -> bool:
    account = account_id_of(session, caller.organisation)
    return account is not None and session.scalar(select(Block.id).where(
        Block.created_by == seq, Block.state == "retired",
        Block.account_id == account).limit(1)) is not None


def kg_retirement_dict(session: Session, allocation: KgAllocation) -> dict[str, Any]:
    """A kilogram retirement (an allocation from a pool) as the API shows it."""
    order = session.get(Order, allocation.order_id)
    listing = session.get(Listing, allocation.listing_id)
    assert order is not None and listing is not None
    sealed = allocation.state == "sealed"
    entry = session.get(Entry, allocation.seq) if sealed and allocation.seq else None
    person = session.get(AllocationRow, (allocation.seq, allocation.idx)) if sealed else None
    pool: list[dict[str, Any]] = []
    for seq, grams in allocation.draw_pairs:
        blocks = certificates.retired_blocks(session, seq)
        pool.append({"seq": seq, "grams": grams, "serials": [
            queries.serial_string(b.batch, b.first_serial, b.last_serial) for b in blocks]})
    status = {"sealed": "recorded", "allocated": "pending",
              "reserved": "awaiting_payment"}.get(allocation.state, "failed")
    return {
        "id": allocation.reference, "object": "retirement", "livemode": db.livemode,
        "status": status, "seq": allocation.seq if sealed else None,
        "index": allocation.idx if sealed else None,
        "hash": entry.hash if entry is not None else None, "quantity": 0,
        "grams": allocation.grams, "pool": pool,
        "beneficiary": (person.name if person is not None else
                        None if sealed else order.beneficiary),
        "purpose": order.purpose, "note": order.note, "country": order.country,
        "period_start": order.period_start, "period_end": order.period_end,
        "projects": [projects.project_ref(listing.project)], "allocation": [],
        "serials": [serial for draw in pool for serial in draw["serials"]],
        "created_at": projects.aware(allocation.allocated_at or allocation.created_at),
        "certificate": (kg_certificate_links(allocation.reference)
                        if status in ("recorded", "pending") else None),
        "origin": None, "labels": [],
    }


def find_kg_allocation(session: Session, caller: Caller, public_id: str) -> KgAllocation | None:
    """The caller's organisation's kilogram retirement, paid for (or failed), in this mode."""
    if not KG_RETIREMENT.fullmatch(public_id):
        return None
    return session.scalars(
        select(KgAllocation).join(Order, Order.id == KgAllocation.order_id)
        .where(KgAllocation.reference == public_id,
               Order.organisation_id == caller.organisation.id)
        .execution_options(populate_existing=True)).one_or_none()


def retire_kilograms(session: Session, caller: Caller, data: Mapping[str, Any]
                     ) -> tuple[KgAllocation, Order]:
    """Buy grams of a project's kilogram pool and retire them at once, billed on the
    organisation's monthly statement: an order placed and fulfilled in this transaction."""
    listing = projects.listing_for_project(session, int(data["project"]))
    if listing is None:
        raise invalid_field("#/project", f"No project {data['project']} is on sale.")
    details = CheckoutDetails(beneficiary=data["beneficiary"], purpose=data["purpose"],
                              country=data["country"], period_start=data["period_start"],
                              period_end=data["period_end"], action="retire",
                              note=data.get("note", ""))
    try:
        order = checkout.place_order(
            session, user=caller.user, lines=[CartLine(listing.id, 0, None, int(data["grams"]))],
            details=details, gateway=trading.gateway_name("account"),
            organisation=caller.organisation)
    except CheckoutError as exc:
        raise trading.checkout_problem(exc) from None
    session.add(ApiOrder(order_id=order.id, api_key_id=caller.key.id, payment_method="account"))
    session.flush()
    trading.bill_to_account(session, order)
    allocation = session.scalars(select(KgAllocation).where(
        KgAllocation.order_id == order.id).execution_options(populate_existing=True)).one()
    return allocation, order


def find_retirement(session: Session, caller: Caller, public_id: str) -> int | None:
    match = LIVE_RETIREMENT.fullmatch(public_id)
    if match is None:
        return None
    seq = int(match.group(1))
    return seq if _owned(session, caller, seq) else None


def _newer_or_same(first: dt.datetime, second: dt.datetime) -> bool:
    a, b = projects.aware(first), projects.aware(second)
    assert a is not None and b is not None
    return a >= b


def list_retirements(session: Session, caller: Caller,
                     query: Mapping[str, Any]) -> Page[dict[str, Any]]:
    """Tonne retirements (newest ledger entry first) and kilogram retirements (newest
    allocation first), merged by time. The cursor holds a keyset for each, the last entry and
    the last allocation shown, so paging on never repeats one; a kilogram retirement paid
    late appears where its order was placed."""
    after = decode("retirements", query.get("cursor"), (int, int))
    limit = int(query["limit"])
    account = account_id_of(session, caller.organisation)
    stmt = (select(Block.created_by).where(Block.account_id == account,
                                           Block.state == "retired").distinct())
    if after is not None:
        stmt = stmt.where(Block.created_by < after[0])
    seqs = list(session.scalars(stmt.order_by(Block.created_by.desc()).limit(limit + 1)))
    times = dict(session.execute(select(Entry.seq, Entry.created_at)
                                 .where(Entry.seq.in_(seqs))).all()) if seqs else {}
    kg_stmt = (select(KgAllocation).join(Order, Order.id == KgAllocation.order_id)
               .where(Order.organisation_id == caller.organisation.id,
                      KgAllocation.state.in_(("allocated", "sealed"))))
    if after is not None:
        kg_stmt = kg_stmt.where(KgAllocation.id < after[1])
    kilos = list(session.scalars(kg_stmt.order_by(KgAllocation.id.desc()).limit(limit + 1)
                                 .execution_options(populate_existing=True)))
    shown: list[tuple[str, int]] = []
    i = j = 0
    while len(shown) < limit and (i < len(seqs) or j < len(kilos)):
        take_tonnes = j >= len(kilos) or (i < len(seqs) and _newer_or_same(
            times[seqs[i]], kilos[j].allocated_at or kilos[j].created_at))
        if take_tonnes:
            shown.append(("t", seqs[i]))
            i += 1
        else:
            shown.append(("kg", j))
            j += 1
    more = i < len(seqs) or j < len(kilos)
    last_seq = seqs[i - 1] if i else (after[0] if after else 2**53)
    last_kg = kilos[j - 1].id if j else (after[1] if after else 2**53)
    items = [retirement_dict(session, key) if kind == "t" else
             kg_retirement_dict(session, kilos[key]) for kind, key in shown]
    return Page(items, encode("retirements", [last_seq, last_kg]) if more else None)


def retire(session: Session, caller: Caller, data: Mapping[str, Any]) -> int:
    """Retire the organisation's held credits; returns the entry's seq."""
    batch_id, project_id = data.get("batch"), data.get("project")
    if project_id is not None and session.get(Project, project_id) is None:
        raise invalid_field("#/project", f"There is no project {project_id}.")
    if batch_id is not None:
        batch = session.get(Batch, batch_id)
        if batch is None:
            raise invalid_field("#/batch", f"There is no batch {batch_id}.")
        if project_id is not None and batch.project_id != project_id:
            raise invalid_field("#/batch", f"Batch {batch_id} is not a vintage of project "
                                           f"{project_id}.")
    try:
        receipt = operations.retire(
            session, account_id=account_of(session, caller.organisation).id,
            quantity=data["quantity"], beneficiary=data["beneficiary"],
            purpose=data["purpose"], note=data.get("note", ""), country=data["country"],
            period_start=data["period_start"], period_end=data["period_end"],
            batch_id=batch_id, project_id=project_id)
        events.record(session, events.RetirementCreated(receipt.seq))
    except InsufficientCreditsError as exc:
        raise Problem(409, "Not enough credits held", str(exc).capitalize() + ".",
                      slug="insufficient-credits") from None
    except LedgerError as exc:
        raise Problem(status_for(exc), "The retirement was refused", str(exc),
                      slug="ledger-refused") from None
    return receipt.seq


def list_holdings(session: Session, caller: Caller,
                  query: Mapping[str, Any]) -> Page[dict[str, Any]]:
    after = decode("holdings", query.get("cursor"), (int,))
    account = account_id_of(session, caller.organisation)
    held = sorted(queries.holdings(session, account) if account is not None else [],
                  key=lambda h: h.batch_id)
    if query.get("project") is not None:
        held = [h for h in held if h.project_id == query["project"]]
    if after is not None:
        held = [h for h in held if h.batch_id > after[0]]
    limit = int(query["limit"])
    page = page_of(held[:limit + 1], limit, "holdings", lambda h: [h.batch_id])
    return Page([{
        "object": "holding", "livemode": db.livemode,
        "project": {"id": h.project_id, "ref": h.project_ref, "name": h.project_name},
        "batch": h.batch_id, "vintage": projects.vintage_label(session.get(Batch, h.batch_id)),
        "vintage_start": h.vintage_start, "vintage_end": h.vintage_end,
        "quantity": h.quantity, "serials": [b.serial for b in h.blocks],
    } for h in page.items], page.next_cursor)
