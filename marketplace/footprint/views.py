"""The calculator's pages: the form, the result with every line of the calculation, the
airport search, the sources, saved footprints and their history, the account page with the
monthly subscription, and the public page a person may opt into.

The calculator needs no login and travels in the query string; only saving, subscribing
and the public page's settings need an account. "Offset this" is a form posting to the
cart's own ``/cart/add`` with the rounded-up tonnes, so the cart logic stays in one place.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from markupsafe import Markup, escape
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from ledger.schema import Batch, Block, Project

from .. import catalogue, payments
from .. import kilograms as pools
from ..accounts import account_id_of
from ..database import db
from ..models import Listing, Order, User
from ..models.footprints import FootprintProfile, OffsetSubscription, SavedFootprint

from . import airports, forms, subscriptions
from .calculator import (
    CABIN_LABELS,
    CATEGORIES,
    DIET_LABELS,
    FUEL_LABELS,
    GRAMS_PER_TONNE,
    SIZE_LABELS,
    Footprint,
    calculate,
    comparison,
    kilograms,
    tonnes,
)
from .factors import FactorSet

bp = Blueprint("footprint", __name__, url_prefix="/footprint")


def factors() -> FactorSet:
    loaded: FactorSet = current_app.extensions["footprint_factors"]
    return loaded


@bp.app_template_filter("fp_kg")
def _kg(grams: int) -> str:
    return f"{kilograms(grams):,}"


@bp.app_template_filter("fp_t")
def _t(grams: int) -> str:
    return f"{tonnes(grams):,}"


@bp.app_template_filter("fp_num")
def _num(value: Any) -> str:
    return f"{value:,}"


def _choices() -> dict[str, Any]:
    loaded = factors()
    return {"countries": loaded.countries, "cabins": CABIN_LABELS, "fuels": FUEL_LABELS,
            "sizes": SIZE_LABELS, "diets": DIET_LABELS, "factors": loaded}


CHART_WIDTH = 300
"""Pixels of the longest bar in the category chart (the largest category)."""
_ROW = 34


def chart(footprint: Footprint) -> list[dict[str, Any]]:
    """Bars for the category chart: lengths in whole pixels relative to the largest category,
    and each category's share of the total in whole percent."""
    rows = footprint.by_category
    largest = max((g for _, g in rows), default=0)
    total = footprint.total_grams
    return [{"key": key, "label": CATEGORIES[key], "grams": grams,
             "px": max(2, grams * CHART_WIDTH // largest) if largest and grams else 0,
             "share": (grams * 100 + total // 2) // total if total else 0}
            for key, grams in rows]


def chart_svg(footprint: Footprint) -> Markup:
    """The footprint by category as a horizontal bar chart, drawn here as SVG: readable at a
    glance, with the figures written beside the bars and in the SVG's description."""
    bars = chart(footprint)
    described = "; ".join(f"{b['label']}: {tonnes(b['grams'])} t ({b['share']}%)" for b in bars)
    parts = [
        '<figure class="fp-chart-figure"><svg class="fp-chart" xmlns="http://www.w3.org/2000/svg"'
        ' role="img" aria-labelledby="fp-chart-title fp-chart-desc" width="100%"'
        f' viewBox="0 0 {190 + CHART_WIDTH + 150} {len(bars) * _ROW + 8}"'
        ' preserveAspectRatio="xMinYMin meet">'
        '<title id="fp-chart-title">Footprint by category</title>',
        f'<desc id="fp-chart-desc">{escape(described)}</desc>',
    ]
    for i, bar in enumerate(bars):
        parts.append(
            f'<g class="fp-bar fp-{bar["key"]}" transform="translate(0 {i * _ROW + 4})">'
            f'<text class="fp-bar-label" x="182" y="19" text-anchor="end">{escape(bar["label"])}'
            f'</text><rect x="190" y="3" width="{bar["px"]}" height="22" rx="3"></rect>'
            f'<text class="fp-bar-value" x="{190 + bar["px"] + 8}" y="19">'
            f'{tonnes(bar["grams"]):,} t · {bar["share"]}%</text></g>')
    parts.append("</svg></figure>")
    return Markup("".join(parts))


def offers(session: Session, tonnes_needed: int) -> list[dict[str, Any]]:
    """Projects on sale, read from the ledger now, with what ``tonnes_needed`` would cost."""
    found = catalogue.build_offers(session, catalogue.listed(session))
    return [{"offer": o, "cost_minor": o.listing.price_minor * tonnes_needed,
             "enough": o.for_sale >= tonnes_needed}
            for o in found if o.for_sale > 0]


@dataclass(frozen=True)
class Choice:
    """A project on sale, as "offset this" lists it (plain values, safe to keep between
    requests)."""

    listing_id: int
    name: str
    price_minor: int
    currency: str
    for_sale: int


OFFERS_TTL = 10.0
"""Seconds the result page reuses the list of projects on sale. The page only offers the
choice; the cart prices every line from the database and checkout reserves the tonnes, so a
list a few seconds old can at worst offer a project that has since sold out (the cart then
says so)."""


def project_choices() -> list[Choice]:
    """The projects on sale for the result page, from a short-lived per-app cache, so that
    the calculator (public, and anonymous) does not read the ledger on every view."""
    cache: dict[str, Any] = current_app.extensions.setdefault("footprint_choices", {})
    ttl = float(current_app.config.get("FOOTPRINT_OFFERS_TTL", OFFERS_TTL))
    now = time.monotonic()
    if "value" in cache and now - cache["at"] < ttl:
        found: list[Choice] = cache["value"]
        return found
    with db.session.begin():
        found = [Choice(o.listing.id, o.project.name, o.listing.price_minor,
                        o.listing.currency, o.for_sale)
                 for o in catalogue.build_offers(db.session, catalogue.listed(db.session))
                 if o.for_sale > 0]
    cache.update(value=found, at=now)
    return found


# -- the calculator -------------------------------------------------------------------------------


@bp.get("")
def calculator() -> str:
    return render_template("footprint/calculator.html", values=request.args.to_dict(),
                           errors={}, rows=forms.flight_rows_in(request.args), **_choices())


@bp.get("/result")
def result() -> ResponseReturnValue:
    loaded = factors()
    parsed = forms.parse(request.args, loaded)
    if not parsed.ok or parsed.inputs is None:
        return render_template("footprint/calculator.html", values=parsed.values,
                               errors=parsed.errors, rows=parsed.flight_rows,
                               **_choices()), 400
    footprint = calculate(parsed.inputs, loaded)
    params = forms.to_params(parsed.inputs)
    compare = comparison(footprint.country, loaded)
    ratio = None
    if footprint.lines and not parsed.inputs.typical and compare.tonnes:
        exact = Decimal(footprint.total_grams * 100) / (compare.tonnes * GRAMS_PER_TONNE)
        ratio = int(exact.quantize(Decimal(1), ROUND_HALF_UP))
    needed = footprint.offset_tonnes
    grams = footprint.total_grams
    projects = [{"choice": c, "cost_minor": c.price_minor * needed,
                 "enough": c.for_sale >= needed,
                 "exact_minor": pools.price_minor(c.price_minor, grams),
                 "exact_enough": c.for_sale * GRAMS_PER_TONNE >= grams}
                for c in project_choices()] if needed else []
    query = urlencode(params)
    flipped = urlencode(dict(params, rf="without" if parsed.inputs.include_rf else "with"))
    here = f"{url_for('footprint.result')}?{query}"
    return render_template(
        "footprint/result.html", footprint=footprint, chart=chart_svg(footprint),
        compare=compare, ratio=ratio, params=params, query=query, projects=projects,
        country_name=loaded.countries.get(footprint.country, footprint.country),
        links={"self": here, "next": quote(here, safe=""),
               "flipped": f"{url_for('footprint.result')}?{flipped}",
               "change": f"{url_for('footprint.calculator')}?{query}",
               "sources": url_for("footprint.sources")},
    )


@bp.get("/airports")
def airport_search() -> Response:
    query = request.args.get("q", "")
    found = airports.search(query)
    response = jsonify(results=[a.as_json() for a in found])
    response.cache_control.public = True
    response.cache_control.max_age = 3600
    return response


@bp.get("/sources")
def sources() -> str:
    return render_template("footprint/sources.html", factors=factors())


# -- saved footprints -----------------------------------------------------------------------------


def _saved(session: Session, user_id: int, limit: int = 100) -> list[SavedFootprint]:
    return list(session.scalars(
        select(SavedFootprint).where(SavedFootprint.user_id == user_id)
        .order_by(SavedFootprint.created_at.desc(), SavedFootprint.id.desc()).limit(limit)))


def _summary(saved: SavedFootprint) -> dict[str, Any]:
    lines = json.loads(saved.lines)
    by_category: dict[str, int] = {}
    for line in lines:
        by_category[line["category"]] = by_category.get(line["category"], 0) + int(line["grams"])
    return {"saved": saved, "params": json.loads(saved.inputs), "lines": lines,
            "by_category": [(CATEGORIES[c], g) for c, g in by_category.items()
                            if c in CATEGORIES]}


@bp.post("/save")
@login_required
def save() -> Response:
    params = dict(parse_qsl(request.form.get("params", ""), keep_blank_values=False))
    parsed = forms.parse(params, factors())
    if not parsed.ok or parsed.inputs is None:
        flash("That footprint has mistakes in it: correct them and save again.", "error")
        return redirect(url_for("footprint.calculator", **params))  # type: ignore[arg-type]
    footprint = calculate(parsed.inputs, factors())
    canonical = forms.to_params(parsed.inputs)
    with db.session.begin():
        db.session.add(SavedFootprint(
            user_id=current_user.id, country=footprint.country,
            inputs=json.dumps(canonical, sort_keys=True),
            lines=json.dumps([line.as_json() for line in footprint.lines]),
            total_grams=footprint.total_grams, factor_versions=factors().versions,
        ))
    flash(f"Saved: {footprint.tonnes:,} t CO2e a year.", "success")
    return redirect(url_for("footprint.history"))


@bp.get("/history")
@login_required
def history() -> str:
    with db.session.begin():
        saved = [_summary(s) for s in _saved(db.session, current_user.id)]
        return render_template("footprint/history.html", saved=saved)


# -- the account page: subscription and public page -----------------------------------------------


def retirements(session: Session, account_id: int | None) -> list[dict[str, Any]]:
    """Every retirement out of ``account_id``: ledger entry, tonnes, project; oldest first."""
    if account_id is None:
        return []
    quantity = func.sum(Block.last_serial - Block.first_serial + 1)
    rows = session.execute(
        select(Block.created_by, quantity, func.min(Project.name))
        .join(Batch, Batch.id == Block.batch_id).join(Project, Project.id == Batch.project_id)
        .where(Block.account_id == account_id, Block.state == "retired")
        .group_by(Block.created_by).order_by(Block.created_by)
    ).all()
    return [{"seq": int(seq), "tonnes": int(total), "project": name} for seq, total, name in rows]


def _latest_subscription(session: Session, user_id: int) -> OffsetSubscription | None:
    return session.scalars(
        select(OffsetSubscription).where(OffsetSubscription.user_id == user_id)
        .order_by(OffsetSubscription.created_at.desc(), OffsetSubscription.id.desc()).limit(1)
    ).one_or_none()


def _invoice_rows(session: Session, subscription: OffsetSubscription | None
                  ) -> list[dict[str, Any]]:
    if subscription is None:
        return []
    rows = []
    for invoice in subscription.invoices:
        seqs: list[int] = []
        references: list[str] = []
        if invoice.order_id is not None:
            order = session.get(Order, invoice.order_id)
            seqs = [r.retire_seq for r in order.reservations if r.retire_seq] if order else []
            references = [a.reference for a in pools.allocations_of(session, invoice.order_id)
                          if a.state in ("allocated", "sealed")]
        rows.append({"invoice": invoice, "seqs": seqs, "references": references})
    return rows


@bp.get("/account")
@login_required
def account() -> str:
    with db.session.begin():
        session = db.session
        saved = _saved(session, current_user.id, limit=1)
        subscription = _latest_subscription(session, current_user.id)
        profile = session.get(FootprintProfile, current_user.id)
        return render_template(
            "footprint/account.html", current=_summary(saved[0]) if saved else None,
            subscription=subscription, invoices=_invoice_rows(session, subscription),
            profile=profile, retired=retirements(session, account_id_of(session, current_user)),
            demo=current_app.config["PAYMENT_GATEWAY"] == "demo",
        )


@bp.post("/profile")
@login_required
def profile() -> Response:
    public = request.form.get("public") == "on"
    name = " ".join((request.form.get("display_name") or "").split())[:120] or current_user.name
    with db.session.begin():
        found = db.session.get(FootprintProfile, current_user.id)
        if found is None:
            found = FootprintProfile(user_id=current_user.id, slug=secrets.token_urlsafe(9),
                                     display_name=name, public=public)
            db.session.add(found)
        else:
            found.display_name, found.public = name, public
    flash("Your public page is on: anyone with its address can see it." if public
          else "Your public page is off.", "success")
    return redirect(url_for("footprint.account"))


@bp.get("/people/<slug>")
def person(slug: str) -> str:
    with db.session.begin():
        profile = db.session.scalars(
            select(FootprintProfile).where(FootprintProfile.slug == slug[:32])).one_or_none()
        if profile is None or not profile.public:
            abort(404)
        user = db.session.get(User, profile.user_id)
        rows = retirements(db.session, account_id_of(db.session, user) if user else None)
        return render_template("footprint/person.html", profile=profile, retired=rows,
                               total=sum(r["tonnes"] for r in rows))


# -- subscribing ----------------------------------------------------------------------------------


@bp.route("/subscribe", methods=["GET", "POST"])
@login_required
def subscribe() -> ResponseReturnValue:
    with db.session.begin():
        saved = _saved(db.session, current_user.id, limit=1)
        live = subscriptions.live_subscription(db.session, current_user.id)
        projects = offers(db.session, 1)
    if not saved:
        flash("Save your footprint first: the subscription offsets a twelfth of it each month.",
              "info")
        return redirect(url_for("footprint.calculator"))
    footprint = saved[0]
    monthly = subscriptions.monthly_grams(footprint.total_grams)
    error = None
    if request.method == "POST":
        listing_id = request.form.get("listing_id", "")
        gateway = payments.gateway()
        try:
            with db.session.begin():
                wanted = listing_id.isascii() and listing_id.isdigit() and len(listing_id) < 10
                listing = db.session.get(Listing, int(listing_id)) if wanted else None
                if listing is None:
                    raise subscriptions.SubscriptionError("Choose a project.")
                subscription = subscriptions.start(
                    db.session, user=current_user._get_current_object(), footprint=footprint,
                    listing=listing, gateway=gateway.name)
                description = (f"Monthly offset: {tonnes(monthly)} t CO2e a month from "
                               f"{listing.project.name}")
        except subscriptions.SubscriptionError as exc:
            error = str(exc)
        else:
            try:
                hosted = gateway.create_subscription_checkout(
                    subscription,
                    success_url=url_for("footprint.account", _external=True),
                    cancel_url=url_for("footprint.subscribe", _external=True),
                    customer_email=current_user.email, description=description)
            except payments.GatewayError as exc:
                with db.session.begin():
                    stale = db.session.get(OffsetSubscription, subscription.id)
                    if stale is not None:
                        subscriptions.cancel(stale)
                error = str(exc)
            else:
                with db.session.begin():
                    fresh = db.session.get(OffsetSubscription, subscription.id)
                    assert fresh is not None
                    fresh.checkout_session_id, fresh.checkout_url = hosted.id, hosted.url
                return redirect(hosted.url)
    return render_template(
        "footprint/subscribe.html", footprint=footprint, monthly=monthly, live=live,
        projects=[dict(p, monthly_minor=subscriptions.monthly_price_minor(
            monthly, p["offer"].listing.price_minor)) for p in projects],
        error=error), (400 if error else 200)


@bp.post("/subscription/cancel")
@login_required
def cancel_subscription() -> Response:
    with db.session.begin():
        live = subscriptions.live_subscription(db.session, current_user.id)
    if live is None:
        flash("You have no monthly subscription to cancel.", "info")
        return redirect(url_for("footprint.account"))
    try:
        payments.gateway().cancel_subscription(live)
    except payments.GatewayError as exc:
        flash(str(exc), "error")
        return redirect(url_for("footprint.account"))
    with db.session.begin():
        fresh = db.session.get(OffsetSubscription, live.id)
        if fresh is not None:
            subscriptions.cancel(fresh)
    flash("Your monthly subscription is cancelled: nothing more will be charged. What was "
          "already retired stays retired.", "success")
    return redirect(url_for("footprint.account"))
