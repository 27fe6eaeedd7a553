"""Paper trading: live bars, the backtest's kernel and components, a SQLite journal."""
