"""Candles and funding rates: exchange feed, parquet store, validation, features."""
