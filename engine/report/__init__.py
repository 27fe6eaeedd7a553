"""Metrics, the QuantStats tearsheet and the run folder of a backtest or a paper session."""
