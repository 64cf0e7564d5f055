"""Argument types for ``add_argument(type=...)``, shared by every command (light: imports argparse only)."""

from __future__ import annotations

import argparse


def _int_at_least(text: str, minimum: int, meaning: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be a {meaning} integer, got {text}")
    return value


def positive_int(text: str) -> int:
    """``type=`` for an option that takes an integer >= 1."""
    return _int_at_least(text, 1, "positive")


def non_negative_int(text: str) -> int:
    """``type=`` for an option that takes an integer >= 0."""
    return _int_at_least(text, 0, "non-negative")
