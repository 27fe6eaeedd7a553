"""Strategy components fitted walk-forward on encoder representations; per-bar decisions."""
