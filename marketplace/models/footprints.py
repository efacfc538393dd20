"""Saved footprints and monthly offset subscriptions (issue: individuals)."""

from __future__ import annotations
