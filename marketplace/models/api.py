"""API keys, outbound webhook endpoints and their deliveries (issue: the API for companies)."""

from __future__ import annotations
