"""The marketplace's tables (listings, users, orders). They share the ledger's metadata."""

from __future__ import annotations
