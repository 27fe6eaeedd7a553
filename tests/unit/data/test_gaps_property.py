from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.data.validate import CANDLE_COLUMNS, fill_flat, find_gaps, find_violations

from .helpers import HOUR, make_candles


@settings(max_examples=60, deadline=None)
@given(st.lists(st.booleans(), min_size=2, max_size=120))
def test_flat_fill_restores_the_grid_and_gaps_count_what_is_missing(keep):
    keep[0] = keep[-1] = True
    full = make_candles(len(keep))
    kept = full[np.array(keep)].reset_index(drop=True)
    gaps = find_gaps(kept["timestamp"].to_numpy(), HOUR)
    assert sum(gap.bars for gap in gaps) == keep.count(False)
    filled = fill_flat(kept, HOUR)
    assert (filled["timestamp"].to_numpy() == full["timestamp"].to_numpy()).all()
    assert (filled["filled"].to_numpy() == ~np.array(keep)).all()
    assert find_violations(filled[list(CANDLE_COLUMNS)], CANDLE_COLUMNS, HOUR) == []
