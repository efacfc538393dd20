"""People and organisations. A user buys for themselves or for an organisation they belong
to; each holds credits in a ledger account of its own."""

from __future__ import annotations

import datetime as dt

from flask_login import UserMixin
from sqlalchemy import CheckConstraint, DateTime, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ledger.schema import Base, utcnow

ROLES = ("customer", "operator", "auditor")
MEMBER_ROLES = ("admin", "member")


class User(UserMixin, Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('customer', 'operator', 'auditor')", name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20), default="customer")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    email_confirmed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    """When the user proved the address is theirs (a link sent to it); accounts an operator
    created are confirmed by them. Needed before an organisation's live API keys."""

    memberships: Mapped[list[Membership]] = relationship(back_populates="user",
                                                          cascade="all, delete-orphan")

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"

    @property
    def is_auditor(self) -> bool:
        return self.role in ("auditor", "operator")

    @property
    def account_name(self) -> str:
        """The name of this user's account in each mode's ledger."""
        return f"user:{self.id}"


class Organisation(Base):
    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(160))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    memberships: Mapped[list[Membership]] = relationship(back_populates="organisation",
                                                          cascade="all, delete-orphan")

    @property
    def account_name(self) -> str:
        """The name of this organisation's account in each mode's ledger."""
        return f"org:{self.id}"


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (
        UniqueConstraint("user_id", "organisation_id", name="uq_memberships_user_org"),
        CheckConstraint("role IN ('admin', 'member')", name="role"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(10), default="member")

    user: Mapped[User] = relationship(back_populates="memberships")
    organisation: Mapped[Organisation] = relationship(back_populates="memberships")
