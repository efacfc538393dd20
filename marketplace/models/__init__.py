"""The marketplace's tables. They share the ledger's metadata, so Alembic has one target."""

from . import api, footprints, mail, pools, rendered  # noqa: F401  (their tables register on the shared metadata)
from .listings import Listing
from .orders import Order, OrderLine, PaymentEvent, Reservation
from .users import Membership, Organisation, User

__all__ = ["Listing", "Membership", "Order", "OrderLine", "Organisation", "PaymentEvent",
           "Reservation", "User"]
