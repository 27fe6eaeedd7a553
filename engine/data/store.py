"""The candle store: one parquet file per exchange, market, symbol and timeframe.

Layout of a store folder (the same as ``../shared/data``, which therefore
works as a read-only store as it is)::

    {exchange}_{market}_{SYMBOL}_{timeframe}.parquet   timestamp, open, high, low, close, volume
    {exchange}_{market}_{SYMBOL}_funding_8h.parquet    timestamp, rate

``timestamp`` is int64 milliseconds since the epoch (UTC): the bar's open time,
or the funding settlement time. All other columns are float64. Files are
written with pyarrow, zstd-compressed, atomically (a temporary file in the same
folder, then ``os.replace``), so a reader never sees half a file and a failed
write leaves the previous file intact. Every load is validated.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from engine.atomic import atomic_path
from engine.data.symbols import check_market, split_symbol, timeframe_ms, to_ccxt
from engine.data.times import iso_utc
from engine.data.validate import (
    CANDLE_COLUMNS,
    DEFAULT_MAX_GAP_BARS,
    FUNDING_COLUMNS,
    FUNDING_INTERVAL_MS,
    GapPolicy,
    Report,
    Violation,
    apply_gap_policy,
    check_frame,
    find_violations,
    raise_on_violations,
)
from engine.errors import DataError

DATA_DIR_ENV = "ENGINE_DATA_DIR"
FUNDING_SUFFIX = "funding_8h"
_EXCHANGE_PATTERN = re.compile(r"^[a-z0-9]+$")
_FILENAME_PATTERN = re.compile(
    r"^(?P<exchange>[a-z0-9]+)_(?P<market>[a-z]+)_(?P<symbol>[A-Z0-9]+)_(?P<series>[0-9a-z_]+)\.parquet$"
)


def default_store_root() -> Path:
    """Return the store folder: ``$ENGINE_DATA_DIR`` if set, else ``data/`` here."""
    return Path(os.environ.get(DATA_DIR_ENV) or "data")


def _check_exchange(exchange: str) -> None:
    if not _EXCHANGE_PATTERN.match(exchange):
        raise DataError(
            f"exchange {exchange!r} is not a lower-case ccxt id; expected for example 'bybit'"
        )


@dataclass(frozen=True)
class SeriesKey:
    """The identity of one candle series: exchange, market, symbol and timeframe."""

    exchange: str
    market: str
    symbol: str
    timeframe: str

    def __post_init__(self) -> None:
        _check_exchange(self.exchange)
        check_market(self.market)
        split_symbol(self.symbol)
        timeframe_ms(self.timeframe)

    @property
    def filename(self) -> str:
        """Return the file name of the series in a store."""
        return f"{self.exchange}_{self.market}_{self.symbol}_{self.timeframe}.parquet"

    @property
    def interval_ms(self) -> int:
        """Return the length of one bar in milliseconds."""
        return timeframe_ms(self.timeframe)

    @property
    def ccxt_symbol(self) -> str:
        """Return ccxt's unified symbol of the market."""
        return to_ccxt(self.symbol, self.market)


@dataclass(frozen=True)
class FundingKey:
    """The identity of one funding-rate series (8-hourly settlements of a perpetual)."""

    exchange: str
    market: str
    symbol: str

    def __post_init__(self) -> None:
        _check_exchange(self.exchange)
        if check_market(self.market) != "linear":
            raise DataError(f"funding rates exist for perpetuals only; market {self.market!r}")
        split_symbol(self.symbol)

    @property
    def filename(self) -> str:
        """Return the file name of the series in a store."""
        return f"{self.exchange}_{self.market}_{self.symbol}_{FUNDING_SUFFIX}.parquet"

    @property
    def interval_ms(self) -> int:
        """Return the settlement interval in milliseconds."""
        return FUNDING_INTERVAL_MS

    @property
    def ccxt_symbol(self) -> str:
        """Return ccxt's unified symbol of the market."""
        return to_ccxt(self.symbol, self.market)


def parse_filename(name: str) -> SeriesKey | FundingKey:
    """Return the key of a store file name such as ``bybit_linear_BTCUSDT_1h.parquet``."""
    match = _FILENAME_PATTERN.match(name)
    if match is None:
        raise DataError(
            f"file name {name!r} is not of the form exchange_market_SYMBOL_timeframe.parquet "
            "or exchange_market_SYMBOL_funding_8h.parquet"
        )
    exchange, market, symbol, series = match.group("exchange", "market", "symbol", "series")
    if series == FUNDING_SUFFIX:
        return FundingKey(exchange, market, symbol)
    return SeriesKey(exchange, market, symbol, series)


def merge_series(old: pd.DataFrame, new: pd.DataFrame, source: str) -> pd.DataFrame:
    """Return the rows of ``old`` and ``new`` sorted by timestamp, without repeats.

    A timestamp present in both must carry identical values; otherwise a
    ``DataError`` names the first conflicting row.
    """
    merged = pd.concat([old, new], ignore_index=True)
    repeated = merged["timestamp"].duplicated(keep=False)
    if repeated.any():
        both = merged[repeated].drop_duplicates()
        conflicts = both["timestamp"].duplicated(keep=False)
        if conflicts.any():
            stamp = int(both.loc[conflicts, "timestamp"].iloc[0])
            rows = both[both["timestamp"] == stamp].drop(columns="timestamp")
            raise DataError(
                f"{source}: the row at {iso_utc(stamp)} "
                f"differs between the store ({rows.iloc[0].to_dict()}) and the new data "
                f"({rows.iloc[1].to_dict()}); expected identical values where they overlap"
            )
    merged = merged.drop_duplicates(subset="timestamp").sort_values("timestamp")
    return merged.reset_index(drop=True)


@dataclass(frozen=True)
class SeriesInfo:
    """A file in the store with its basic statistics."""

    key: SeriesKey | FundingKey
    path: Path
    rows: int
    first_ms: int | None
    last_ms: int | None
    size_bytes: int


class CandleStore:
    """A folder of candle and funding-rate parquet files.

    Parameters
    ----------
    root : str or Path, optional
        The folder; ``default_store_root()`` when not given. It is created on
        the first write, never on a read.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else default_store_root()

    def path(self, key: SeriesKey | FundingKey) -> Path:
        """Return the path of the file holding ``key``."""
        return self.root / key.filename

    def exists(self, key: SeriesKey | FundingKey) -> bool:
        """Return True if the store holds ``key``."""
        return self.path(key).is_file()

    def load(
        self,
        key: SeriesKey,
        gap_policy: GapPolicy = "error",
        max_gap_bars: int = DEFAULT_MAX_GAP_BARS,
    ) -> pd.DataFrame:
        """Return the validated candles of ``key``.

        Parameters
        ----------
        key : SeriesKey
            The series to load.
        gap_policy : {"error", "drop", "flat"}
            What to do with missing bars; see ``engine.data.validate``.
        max_gap_bars : int
            The longest gap accepted by policy ``error``.

        Returns
        -------
        pandas.DataFrame
            Columns ``timestamp, open, high, low, close, volume`` (and ``filled``
            with policy ``flat``), sorted, one row per bar.
        """
        candles = self._read(key)
        return apply_gap_policy(
            candles, key.interval_ms, str(self.path(key)), gap_policy, max_gap_bars
        )

    def load_funding(self, exchange: str, market: str, symbol: str) -> pd.DataFrame:
        """Return the validated funding rates (``timestamp``, ``rate``) of a perpetual.

        Missing settlements are allowed here; ``check`` reports them.
        """
        return self._read(FundingKey(exchange, market, symbol))

    def write(self, key: SeriesKey, candles: pd.DataFrame) -> Path:
        """Validate ``candles`` and replace the file of ``key`` with them atomically.

        Bars inserted by gap policy ``flat`` are never stored: a frame with a
        ``filled`` column that flags any bar is refused.
        """
        if "filled" in candles and candles["filled"].any():
            raise DataError(
                f"{key.filename}: refusing to store {int(candles['filled'].sum())} filled bars; "
                "expected only bars that came from the exchange"
            )
        return self._write(key, candles, CANDLE_COLUMNS)

    def append(
        self,
        key: SeriesKey,
        candles: pd.DataFrame,
        gap_policy: GapPolicy = "error",
        max_gap_bars: int = DEFAULT_MAX_GAP_BARS,
    ) -> pd.DataFrame:
        """Merge ``candles`` into the file of ``key`` (created if missing) in one atomic write.

        Bars the file already holds must carry the same values (see
        ``merge_series``); the merged series is checked against ``gap_policy``
        and ``max_gap_bars`` before anything is written. On any error the file
        is left as it was. Returns the candles the file now holds.
        """
        path = self.path(key)
        old = self._read(key) if self.exists(key) else candles.iloc[:0]
        merged = merge_series(old, candles, str(path))
        source = f"{path} (not written)"
        stored = apply_gap_policy(merged, key.interval_ms, source, gap_policy, max_gap_bars)
        self.write(key, stored)
        return stored

    def append_funding(self, key: FundingKey, rates: pd.DataFrame) -> pd.DataFrame:
        """Merge ``rates`` into the funding file of ``key`` (created if missing) atomically.

        Settlements the file already holds must carry the same rates (see
        ``merge_series``). Returns the settlements the file now holds.
        """
        old = self._read(key) if self.exists(key) else rates.iloc[:0]
        merged = merge_series(old, rates, str(self.path(key)))
        self.write_funding(key.exchange, key.market, key.symbol, merged)
        return merged

    def write_funding(self, exchange: str, market: str, symbol: str, rates: pd.DataFrame) -> Path:
        """Validate ``rates`` (``timestamp``, ``rate``) and replace the funding file atomically."""
        return self._write(FundingKey(exchange, market, symbol), rates, FUNDING_COLUMNS)

    def series(self) -> list[SeriesInfo]:
        """Return every candle and funding file of the store with its basic statistics."""
        found = []
        for path in self._files():
            try:
                key = parse_filename(path.name)
            except DataError:
                continue
            timestamps = pq.read_table(path, columns=["timestamp"])["timestamp"].to_numpy()
            first, last = (
                (int(timestamps[0]), int(timestamps[-1])) if len(timestamps) else (None, None)
            )
            found.append(SeriesInfo(key, path, len(timestamps), first, last, path.stat().st_size))
        return found

    def check(self) -> list[Report]:
        """Return a report for every parquet file in the store, in name order."""
        return [self._check_file(path) for path in self._files()]

    def _files(self) -> list[Path]:
        if not self.root.is_dir():
            raise DataError(
                f"store folder {self.root} does not exist; expected a folder of parquet files"
            )
        return sorted(self.root.glob("*.parquet"))

    def _check_file(self, path: Path) -> Report:
        try:
            key = parse_filename(path.name)
            frame = pq.read_table(path).to_pandas()
        except (DataError, OSError, pa.ArrowException) as exc:
            return Report(path.name, 0, None, None, 0, None, [Violation("file", str(exc))])
        columns = FUNDING_COLUMNS if isinstance(key, FundingKey) else CANDLE_COLUMNS
        return check_frame(frame, columns, key.interval_ms, path.name)

    def _read(self, key: SeriesKey | FundingKey) -> pd.DataFrame:
        path = self.path(key)
        if not path.is_file():
            raise DataError(
                f"{path} does not exist: the store {self.root} has no {key.filename}; "
                "fetch it with `engine data fetch` or import it with `engine data import`"
            )
        try:
            frame = pq.read_table(path).to_pandas()
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"{path}: not a readable parquet file ({exc})") from exc
        columns = FUNDING_COLUMNS if isinstance(key, FundingKey) else CANDLE_COLUMNS
        raise_on_violations(find_violations(frame, columns, key.interval_ms), str(path))
        return frame[list(columns)]

    def _write(
        self, key: SeriesKey | FundingKey, frame: pd.DataFrame, columns: tuple[str, ...]
    ) -> Path:
        path = self.path(key)
        raise_on_violations(
            find_violations(frame, columns, key.interval_ms), f"{path} (not written)"
        )
        table = pa.Table.from_pandas(
            frame[list(columns)].reset_index(drop=True), preserve_index=False
        )
        with atomic_path(path) as temporary:
            pq.write_table(table, temporary, compression="zstd")
        return path
