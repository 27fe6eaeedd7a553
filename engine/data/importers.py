"""Import candle files into the store: parquet or CSV in the store schema, freqtrade feather.

The series a file holds is read from its name when it can be:

- a store name, ``bybit_linear_BTCUSDT_1h.parquet`` (or ``.csv``);
- a freqtrade name, ``BTC_USDT_USDT-1h-futures.feather`` (linear perpetual)
  or ``BTC_USDT-1h.feather`` (spot), with the exchange taken from freqtrade's
  folder layout (``.../data/bybit/futures/``, ``.../data/bybit/``).

Anything the name does not say is given explicitly; an explicit value wins.
The file is validated and merged with what the store already holds (rows at
the same time must agree), then written in one atomic write.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from engine.data.store import CandleStore, FundingKey, SeriesKey, parse_filename
from engine.data.validate import (
    CANDLE_COLUMNS,
    DEFAULT_MAX_GAP_BARS,
    find_violations,
    raise_on_violations,
)
from engine.errors import DataError

SUFFIXES = (".parquet", ".csv", ".feather")
_FREQTRADE_NAME = re.compile(
    r"^(?P<base>[A-Z0-9]+)_(?P<quote>[A-Z0-9]+)(?:_(?P<settle>[A-Z0-9]+))?"
    r"-(?P<timeframe>[0-9]+[mhdwM])(?:-(?P<kind>futures|spot))?\.feather$"
)


@dataclass(frozen=True)
class ImportResult:
    """What an import did: the series, its file, rows imported and rows now stored."""

    key: SeriesKey
    path: Path
    imported: int
    rows: int
    first_ms: int
    last_ms: int


def _name_fields(path: Path) -> dict[str, str]:
    # What the file name (and freqtrade's folder layout) says about the series.
    if path.suffix in (".parquet", ".csv"):
        try:
            key = parse_filename(path.stem + ".parquet")
        except DataError:
            return {}
        if isinstance(key, FundingKey):
            raise DataError(f"{path.name} holds funding rates; expected a candle file to import")
        return {k: getattr(key, k) for k in ("exchange", "market", "symbol", "timeframe")}
    match = _FREQTRADE_NAME.match(path.name)
    if match is None:
        return {}
    fields = {"symbol": match["base"] + match["quote"], "timeframe": match["timeframe"]}
    fields["market"] = "linear" if match["settle"] or match["kind"] == "futures" else "spot"
    folder = path.resolve().parent
    exchange_dir = folder.parent if folder.name == "futures" else folder
    import ccxt  # its list of exchange names; only this needs it

    if exchange_dir.name in ccxt.exchanges:
        fields["exchange"] = exchange_dir.name
    return fields


def infer_key(
    path: str | Path,
    exchange: str | None = None,
    market: str | None = None,
    symbol: str | None = None,
    timeframe: str | None = None,
) -> SeriesKey:
    """Return the series a file holds, from its name and the values given.

    Raises
    ------
    DataError
        If neither the name nor the arguments say one of the four fields.
    """
    path = Path(path)
    given = {"exchange": exchange, "market": market, "symbol": symbol, "timeframe": timeframe}
    fields = {**_name_fields(path), **{k: v for k, v in given.items() if v is not None}}
    missing = [name for name in given if name not in fields]
    if missing:
        options = " ".join(f"--{name}" for name in missing)
        raise DataError(
            f"{path.name}: the file name does not say its {', '.join(missing)}; "
            f"pass {options} (a store name looks like bybit_linear_BTCUSDT_1h.parquet, "
            "a freqtrade name like BTC_USDT_USDT-1h-futures.feather)"
        )
    return SeriesKey(**fields)


def read_candle_file(path: str | Path) -> pd.DataFrame:
    """Return the candles of a parquet, CSV or freqtrade feather file in the store schema.

    Integer prices or volumes are converted to float64; the timestamp must be
    whole milliseconds (parquet, CSV) or a time-zone-aware ``date`` (feather).
    """
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise DataError(
            f"{path}: unsupported file type {path.suffix!r}; expected {', '.join(SUFFIXES)}"
        )
    if not path.is_file():
        raise DataError(f"{path} does not exist; expected a candle file to import")
    try:
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif path.suffix == ".csv":
            frame = pd.read_csv(path, float_precision="round_trip")
        else:
            frame = _from_freqtrade(pd.read_feather(path), path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot be read as {path.suffix[1:]} ({exc})") from exc
    return _to_store_schema(frame, path)


def read_valid_candles(path: str | Path, interval_ms: int) -> pd.DataFrame:
    """Return the candles of a file (see ``read_candle_file``) of bars ``interval_ms`` long.

    Raises
    ------
    DataError
        If the file is unreadable, holds no rows, or fails the store's validation
        (NaN or non-positive prices, high below low, timestamps off the grid...).
    """
    frame = read_candle_file(path)
    if frame.empty:
        raise DataError(f"{path}: no rows; expected candles")
    raise_on_violations(find_violations(frame, CANDLE_COLUMNS, interval_ms), str(path))
    return frame


def _from_freqtrade(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    if "date" not in frame:
        raise DataError(f"{path}: no 'date' column; expected a freqtrade candle file")
    dates = frame["date"]
    if not isinstance(dates.dtype, pd.DatetimeTZDtype):
        raise DataError(
            f"{path}: column 'date' has dtype {dates.dtype}; expected time-zone-aware datetimes"
        )
    since_epoch = dates.dt.tz_convert("UTC") - pd.Timestamp(0, tz="UTC")
    stamps = since_epoch // pd.Timedelta(milliseconds=1)
    return frame.drop(columns="date").assign(timestamp=stamps.astype(np.int64))


def _to_store_schema(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    missing = [column for column in CANDLE_COLUMNS if column not in frame]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(CANDLE_COLUMNS)}"
        )
    frame = frame[list(CANDLE_COLUMNS)]
    if not pd.api.types.is_integer_dtype(frame["timestamp"]):
        raise DataError(
            f"{path}: column 'timestamp' has dtype {frame['timestamp'].dtype}; "
            "expected whole milliseconds since the epoch (int64)"
        )
    for column in CANDLE_COLUMNS[1:]:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            raise DataError(
                f"{path}: column {column!r} has dtype {frame[column].dtype}; expected numbers"
            )
    return frame.astype({"timestamp": np.int64, **dict.fromkeys(CANDLE_COLUMNS[1:], np.float64)})


def import_file(
    store: CandleStore,
    path: str | Path,
    exchange: str | None = None,
    market: str | None = None,
    symbol: str | None = None,
    timeframe: str | None = None,
    max_gap_bars: int = DEFAULT_MAX_GAP_BARS,
) -> ImportResult:
    """Validate a candle file and merge it into the store in one atomic write.

    Parameters
    ----------
    store : CandleStore
        The store to write into.
    path : str or Path
        A parquet, CSV or freqtrade feather file.
    exchange, market, symbol, timeframe : str, optional
        The series, where the file name does not say it (or to override it).
    max_gap_bars : int
        The longest gap accepted; a longer one raises a ``DataError``.

    Returns
    -------
    ImportResult
        The series, its file, and the rows imported and now stored.
    """
    key = infer_key(path, exchange, market, symbol, timeframe)
    imported = read_valid_candles(path, key.interval_ms)
    candles = store.append(key, imported, "error", max_gap_bars)
    stamps = candles["timestamp"]
    return ImportResult(
        key, store.path(key), len(imported), len(candles), int(stamps.iloc[0]), int(stamps.iloc[-1])
    )
