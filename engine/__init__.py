"""Backtesting and paper trading for crypto markets driven by self-supervised encoders."""

__version__ = "0.1.0"
