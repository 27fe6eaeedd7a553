"""Paper sessions append the bars they process to the candle store, and never lose one."""

from __future__ import annotations

import pandas as pd
import pytest
from paper_replays import CANDLES, FUNDING, _config, _ms, _replay, store, strategy_file

from engine.data.store import CandleStore, SeriesKey

__all__ = ["store"]  # the fixture

KEY = SeriesKey("bybit", "linear", "BTCUSDT", "1h")


class _Killed(BaseException):
    # The process dies: nothing after it runs, not even the session's own error handling.
    pass


def _source(shared_data, until_ms: int, since_ms: int = 0) -> pd.DataFrame:
    candles = pd.read_parquet(shared_data / CANDLES)
    return candles[(candles.timestamp >= since_ms) & (candles.timestamp < until_ms)].reset_index(
        drop=True
    )


def test_a_session_appends_exactly_the_bars_it_processed_to_its_store(store, shared_data, tmp_path):
    config = _config("2025-06-01", "2025-06-30")
    until = _ms("2025-06-03")
    funding = (store.root / FUNDING).read_bytes()
    tables, _ = _replay(config, store, shared_data, tmp_path / "j", until, bar_store=store.root)
    assert len(tables["bars"]) == 48
    # The warm-up bars and the 48 new ones: the exchange's candles, as `engine data fetch` stores.
    pd.testing.assert_frame_equal(store.load(KEY), _source(shared_data, until), check_exact=True)
    assert (store.root / FUNDING).read_bytes() == funding
    assert not tables["events"]["level"].eq("WARNING").any()


def test_bars_journaled_but_not_stored_before_a_crash_are_stored_when_it_runs_again(
    store, shared_data, tmp_path, monkeypatch
):
    config = _config("2025-06-01", "2025-06-30")
    until = _ms("2025-06-02")
    bars = CandleStore(tmp_path / "bars")
    append, calls = CandleStore.append, []

    def killed_on_the_fifth_write(self, *args, **kwargs):
        calls.append(args[1]["timestamp"].tolist())
        if len(calls) == 5:
            raise _Killed
        return append(self, *args, **kwargs)

    monkeypatch.setattr(CandleStore, "append", killed_on_the_fifth_write)
    with pytest.raises(_Killed):
        _replay(config, store, shared_data, tmp_path / "j", until, bar_store=bars.root)
    # Killed after the fifth bar's commit, before its write: the store lacks the journaled bar.
    assert len(bars.load(KEY)) == 4
    monkeypatch.setattr(CandleStore, "append", append)
    resumed, _ = _replay(config, store, shared_data, tmp_path / "j", until, bar_store=bars.root)
    clean, _ = _replay(config, store, shared_data, tmp_path / "clean", until)
    pd.testing.assert_frame_equal(resumed["balances"], clean["balances"], check_exact=True)
    stored = bars.load(KEY)
    pd.testing.assert_frame_equal(stored, _source(shared_data, until, _ms("2025-06-01")))
    assert stored["timestamp"].tolist() == resumed["bars"]["ts"].tolist()


def test_a_failed_store_write_is_logged_and_done_with_the_next_bar(
    store, shared_data, tmp_path, monkeypatch
):
    config = _config("2025-06-01", "2025-06-30")
    until = _ms("2025-06-01") + 6 * 3_600_000
    bars = CandleStore(tmp_path / "bars")
    append, written, refused = CandleStore.append, [], []

    def disk_full_on_the_second_write(self, key, candles, *args):
        if len(written) == 1 and not refused:
            refused.append(candles["timestamp"].tolist())
            raise OSError("No space left on device")
        written.append(candles["timestamp"].tolist())
        return append(self, key, candles, *args)

    monkeypatch.setattr(CandleStore, "append", disk_full_on_the_second_write)
    tables, _ = _replay(config, store, shared_data, tmp_path / "j", until, bar_store=bars.root)
    warnings = tables["events"][tables["events"]["level"] == "WARNING"]["message"]
    assert len(warnings) == 1 and "No space left on device" in warnings.iloc[0]
    # The next write carries the bar the refused one could not store.
    assert [len(stamps) for stamps in written] == [1, 2, 1, 1, 1]
    assert written[1][0] == refused[0][0]
    pd.testing.assert_frame_equal(
        bars.load(KEY), _source(shared_data, until, _ms("2025-06-01")), check_exact=True
    )


def test_a_replay_writes_into_no_store_unless_one_is_named(store, shared_data, tmp_path, run_cli):
    strategy = strategy_file(_config("2025-06-01", "2025-06-30"), store, tmp_path)
    before = {path.name: path.read_bytes() for path in store.root.iterdir()}
    replay = [
        "paper",
        "run",
        strategy,
        "--replay",
        shared_data / CANDLES,
        "--since",
        "2025-06-01",
        "--until",
        "2025-06-01T03:00",
    ]
    result = run_cli(*replay, "--session", "a", "--journal-dir", tmp_path / "j")
    assert result.exit_code == 0, result.stderr
    assert {path.name: path.read_bytes() for path in store.root.iterdir()} == before
    named = tmp_path / "replayed"
    result = run_cli(
        *replay, "--session", "b", "--journal-dir", tmp_path / "j", "--bar-store", named
    )
    assert result.exit_code == 0, result.stderr
    pd.testing.assert_frame_equal(
        CandleStore(named).load(KEY),
        _source(shared_data, _ms("2025-06-01") + 3 * 3_600_000, _ms("2025-06-01")),
        check_exact=True,
    )
