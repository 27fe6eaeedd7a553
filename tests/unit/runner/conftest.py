"""Synthetic histories for runner tests: the strategy tests' own."""

from __future__ import annotations

from strategy.conftest import history

__all__ = ["history"]
