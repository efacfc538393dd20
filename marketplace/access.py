"""Who may see and do what, in one place for the pages, the API and the commands.

- *Operators* run the marketplace and the registry: every back-office page and action.
- *Auditors* see what operators see and change nothing: the back office's pages (stock,
  orders, refunds, the origin reconciliation) answer their GETs; every POST is a 403.
- *Organisation members* see their organisation's orders and holdings; its *admins* also
  manage its members, API keys and webhooks. Someone who is not a member gets a 404 for the
  organisation and everything in it (others' objects are not even acknowledged); a member who
  lacks the role gets a 403.
- *Buyers* see their own orders, and those of their organisations.
"""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, request
from flask_login import current_user
from sqlalchemy import Select, exists, or_, select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from .models import Membership, Order

OPERATOR = "operator"
AUDITOR = "auditor"
STAFF = (OPERATOR, AUDITOR)
ROLES = ("member", "admin")
"""Roles inside an organisation; an admin can do all a member can."""
READ_METHODS = ("GET", "HEAD", "OPTIONS")


def is_operator(user: Any) -> bool:
    return bool(getattr(user, "is_authenticated", False)) and getattr(user, "role", None) == OPERATOR


def is_staff(user: Any) -> bool:
    return bool(getattr(user, "is_authenticated", False)) and getattr(user, "role", None) in STAFF


def _login() -> Response:
    return current_app.login_manager.unauthorized()  # type: ignore[attr-defined,no-any-return]


def require_operator() -> Response | None:
    """For a view or a ``before_request``: the login page for visitors, 403 for anyone who is
    not an operator."""
    if not current_user.is_authenticated:
        return _login()
    if not is_operator(current_user):
        abort(403, description="This is for the marketplace's operators.")
    return None


def require_staff() -> Response | None:
    """Operators may do anything here; auditors may look (GET) and change nothing (403)."""
    if not current_user.is_authenticated:
        return _login()
    if not is_staff(current_user):
        abort(403, description="This page is for the registry's operators and auditors.")
    if request.method not in READ_METHODS and not is_operator(current_user):
        abort(403, description="Auditors can see this page but not change anything.")
    return None


def membership(session: Session, user_id: int, organisation_id: int,
               role: str | None = None) -> Membership:
    """The user's membership of the organisation: 404 if there is none, 403 if ``role`` is
    ``admin`` and the member is not one."""
    if role is not None and role not in ROLES:
        raise ValueError(f"unknown organisation role {role!r}")
    found = session.scalars(select(Membership).where(
        Membership.organisation_id == organisation_id,
        Membership.user_id == user_id)).one_or_none()
    if found is None:
        abort(404)
    if role == "admin" and found.role != "admin":
        abort(403, description="Only the organisation's admins can do this.")
    return found


def organisations_of(user_id: int) -> Select[int]:
    """The ids of the organisations the user belongs to (a subquery)."""
    return select(Membership.organisation_id).where(Membership.user_id == user_id)


def visible_orders(*, user_id: int | None = None,
                   organisation_id: int | None = None) -> Select[Order]:
    """The orders a person (theirs and their organisations') or an organisation (an API key's)
    may see, less API quotes never turned into orders."""
    from .models.api import ApiQuote

    if (user_id is None) == (organisation_id is None):
        raise ValueError("visible_orders: give a user or an organisation")
    whose = (Order.organisation_id == organisation_id if organisation_id is not None
             else or_(Order.user_id == user_id, Order.organisation_id.in_(
                 organisations_of(user_id))))  # type: ignore[arg-type]
    unordered_quote = exists(select(ApiQuote.id).where(ApiQuote.order_id == Order.id,
                                                       ApiQuote.ordered_at.is_(None)))
    return select(Order).where(whose, ~unordered_quote)
