"""The numpy-facing wrapper of the event loop: validate inputs, run the kernel.

``simulate`` checks the shapes and dtypes of every input, resolves defaults,
shapes scalars and (T,) arrays so that the kernels broadcast them without
copies, then calls ``engine.sim.nb.checked_run_nb`` over all bars (again only
when its record buffers fill up), which checks the values a chunk at a time
and runs each chunk with ``run_nb``. When a chunk breaks a rule, the checks
run again input by input, in the order ``simulate`` lists them, to raise the
error naming the first bad value. The kernel records the book only where it
changes; ``SimResult`` turns that into per-bar columns when they are first
read. The rules of the simulation are written in the docstring of
``engine.sim.nb``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from engine.errors import ConfigError, DataError
from engine.sim.enums import (
    Kind,
    Liquidity,
    Mode,
    Sizing,
    account_dt,
    asset_dt,
    change_dt,
    config_dt,
    fill_dt,
    ledger_dt,
    market_dt,
    range_dt,
    reject_dt,
)
from engine.sim.nb import (
    MAX_EVENTS_PER_ASSET,
    book_columns_nb,
    checked_run_nb,
    first_not_increasing_nb,
    first_outside_nb,
    price_violation_nb,
)

SETTLEMENT_MS = 8 * 3_600_000  # funding settles at 00:00, 08:00 and 16:00 UTC
BUFFER_BYTES = (1 << 22) - 1  # a record buffer's starting size at most: numpy's huge-page size
MODES = ", ".join(f"{int(m)} ({m.name})" for m in Mode)
# the range each decision input must lie in, in the order checked_run_nb takes them:
# name, low, high, whether each end is in it, whether NaN is, and the error's wording
RANGES = (
    ("target", -np.inf, np.inf, (False, False), True, "finite or NaN"),
    ("mode", min(Mode), max(Mode), (True, True), False, f"one of {MODES}"),
    ("risk", 0.0, 1.0, (True, True), False, "in [0, 1]"),
    ("limit_offset", 0.0, 1.0, (True, False), False, "in [0, 1)"),
    ("stop_loss", 0.0, np.inf, (False, False), True, "> 0 and finite, or NaN"),
    ("take_profit", 0.0, np.inf, (False, False), True, "> 0 and finite, or NaN"),
    ("funding", -np.inf, np.inf, (False, False), True, "finite or NaN"),
)
SPOT_FUNDING = ("funding", 0.0, 0.0, (True, True), True, "0 or NaN for spot")


def _ends(low: float, high: float, closed: tuple[bool, bool]) -> tuple[float, float]:
    # the lowest and highest float in the range: an open end moves to the next float
    # inside it, so that (0, 1) is [5e-324, 1 - 2**-53]
    low, high = float(low), float(high)
    return (
        low if closed[0] else float(np.nextafter(low, np.inf)),
        high if closed[1] else float(np.nextafter(high, -np.inf)),
    )


# the ranges as checked_run_nb takes them; a spot book's funding range lies inside the
# general one, so its chunks are checked against that range alone
BOUNDS, SPOT_BOUNDS = (
    np.array([(*_ends(*row[1:4]), row[4]) for row in ranges], range_dt)
    for ranges in (RANGES, RANGES[:-1] + (SPOT_FUNDING,))
)


@dataclass(frozen=True)
class SimConfig:
    """Costs and rules of a simulation.

    Parameters
    ----------
    maker_fee, taker_fee : float
        Fee per side as a fraction of notional; 0.0003 each, so a market
        round trip costs 0.06%.
    slippage_bps : float
        Adverse move of market and stop fills, in basis points.
    liquidation_fee : float
        Fee on the notional of a liquidated position.
    maintenance_margin : float
        Equity below this fraction of gross notional liquidates the book.
    max_leverage : float
        Cap on gross notional over equity under margin sizing.
    sizing : {"margin", "cash"}
        ``"margin"`` caps exposure at ``max_leverage``; ``"cash"`` limits a buy
        to the cash balance, fees included (vectorbt's rule).
    spot : bool
        Long only, cash sizing, no funding and no liquidation.
    limit_ttl : int
        Bars a limit order rests before it expires.
    """

    maker_fee: float = 0.0003
    taker_fee: float = 0.0003
    slippage_bps: float = 0.0
    liquidation_fee: float = 0.005
    maintenance_margin: float = 0.005
    max_leverage: float = 5.0
    sizing: str = "margin"
    spot: bool = False
    limit_ttl: int = 1

    def __post_init__(self) -> None:
        for name in ("maker_fee", "taker_fee", "slippage_bps", "liquidation_fee"):
            _check_config_range(name, getattr(self, name), 0.0, np.inf)
        _check_config_range("maintenance_margin", self.maintenance_margin, 0.0, 1.0)
        if not (np.isfinite(self.max_leverage) and self.max_leverage > 0):
            raise ConfigError(f"max_leverage must be finite and > 0; got {self.max_leverage!r}")
        if self.sizing not in ("margin", "cash"):
            raise ConfigError(f"sizing must be 'margin' or 'cash'; got {self.sizing!r}")
        if self.spot and self.sizing != "cash":
            raise ConfigError(f"spot requires sizing 'cash'; got {self.sizing!r}")
        if not isinstance(self.limit_ttl, int | np.integer) or self.limit_ttl < 1:
            raise ConfigError(f"limit_ttl must be an integer >= 1; got {self.limit_ttl!r}")

    def to_record(self) -> np.ndarray:
        """Return the settings as a one-record ``config_dt`` array for the kernels."""
        record = np.zeros(1, config_dt)
        record["maker_fee"] = self.maker_fee
        record["taker_fee"] = self.taker_fee
        record["slippage"] = self.slippage_bps / 1e4
        record["liquidation_fee"] = self.liquidation_fee
        record["maintenance_margin"] = self.maintenance_margin
        record["max_leverage"] = self.max_leverage
        record["sizing"] = Sizing.CASH if self.sizing == "cash" else Sizing.MARGIN
        record["spot"] = int(self.spot)
        record["limit_ttl"] = self.limit_ttl
        return record


@dataclass(frozen=True)
class MarketSpec:
    """Exchange rules of one market: quantity step (0 for none) and minimum order size."""

    qty_step: float = 0.0
    min_qty: float = 0.0
    min_notional: float = 0.0

    def __post_init__(self) -> None:
        for name in ("qty_step", "min_qty", "min_notional"):
            _check_config_range(name, getattr(self, name), 0.0, np.inf)


@dataclass(frozen=True)
class SimResult:
    """Outputs of a simulation.

    ``fills`` and ``rejects`` are ``fill_dt`` and ``reject_dt`` records;
    ``account`` and ``assets`` are the state after the last bar, to continue
    from. ``start`` is the number the records' ``bar`` gives the first bar
    (the bars the book had run before). ``changes`` (``change_dt`` records)
    and ``held`` (positions, shape (K, N)) are the book after each bar that
    moved it, the first record being the book before the first bar.

    The per-bar columns ``equity``, ``cash`` and ``funding`` (paid at each
    bar's open, all assets together), shape (T,), ``position``, shape (T, N),
    and ``ledger`` are computed from these records when first read, bit for
    bit what the run held, and kept; a simulation that only needs its fills
    or its final book never pays for them.
    """

    fills: np.ndarray
    rejects: np.ndarray
    account: np.ndarray
    assets: np.ndarray
    close: np.ndarray = field(repr=False)
    changes: np.ndarray = field(repr=False)
    held: np.ndarray = field(repr=False)
    start: int = 0

    @classmethod
    def from_columns(
        cls,
        *,
        equity: np.ndarray,
        cash: np.ndarray,
        funding: np.ndarray,
        position: np.ndarray,
        **records: np.ndarray,
    ) -> SimResult:
        """Return a result holding given per-bar columns, as a paper journal records them.

        ``records`` are ``fills``, ``rejects``, ``account``, ``assets`` and
        ``close``; the columns are kept as given.
        """
        changes = np.zeros(equity.size, change_dt)
        changes["bar"] = np.arange(equity.size)
        changes["cash"] = cash
        changes["funding"] = funding
        result = cls(**records, changes=changes, held=position)
        # the columns as given, in the cache that reading them would fill
        vars(result).update(equity=equity, cash=cash, funding=funding, position=position)
        return result

    @cached_property
    def equity(self) -> np.ndarray:
        """Return the equity at each close, shape (T,)."""
        return self._columns(equity=np.empty(self.close.shape[0]))["equity"]

    @cached_property
    def cash(self) -> np.ndarray:
        """Return the cash at each close, shape (T,)."""
        return self._columns(cash=np.empty(self.close.shape[0]))["cash"]

    @cached_property
    def position(self) -> np.ndarray:
        """Return the position of each asset at each close, shape (T, N)."""
        return self._columns(position=np.empty(self.close.shape))["position"]

    @cached_property
    def funding(self) -> np.ndarray:
        """Return the funding paid at each bar's open, all assets together, shape (T,)."""
        funding = np.zeros(self.close.shape[0])
        rows = self.changes["bar"] - self.start
        after = rows >= 0
        funding[rows[after]] = self.changes["funding"][after]
        return funding

    @property
    def notional(self) -> np.ndarray:
        """Return the signed notional of each position at each close, shape (T, N)."""
        return self.position * self.close

    @property
    def ledger(self) -> np.ndarray:
        """Return the costs of each bar as ``ledger_dt`` records, shape (T,)."""
        fills = self.fills
        rows = fills["bar"] - self.start
        n_bars = self.close.shape[0]
        ledger = np.zeros(n_bars, ledger_dt)
        liquidation = fills["kind"] == Kind.LIQUIDATION
        maker = fills["liquidity"] == Liquidity.MAKER
        for column, chosen in (
            ("maker_fee", maker),
            ("taker_fee", ~maker & ~liquidation),
            ("liquidation_fee", liquidation),
        ):
            ledger[column] = np.bincount(rows[chosen], fills["fee"][chosen], n_bars)
        ledger["slippage"] = np.bincount(rows, fills["slippage"], n_bars)
        ledger["funding"] = self.funding
        return ledger

    def _columns(self, **outputs: np.ndarray) -> dict[str, np.ndarray]:
        # the asked-for columns of equity, cash and position, written in one pass
        n_assets = self.close.shape[1]
        empty = {"equity": np.empty(0), "cash": np.empty(0), "position": np.empty((0, n_assets))}
        columns = empty | outputs
        book = np.zeros(n_assets, asset_dt)
        book_columns_nb(
            self.changes,
            self.held,
            self.start,
            self.close,
            book,
            columns["equity"],
            columns["cash"],
            columns["position"],
        )
        return outputs


def new_state(n_assets: int, cash: float) -> tuple[np.ndarray, np.ndarray]:
    """Return an empty book: the ``account`` record and one ``assets`` record per asset."""
    if not (np.isfinite(cash) and cash > 0):
        raise ValueError(f"cash must be finite and > 0; got {cash!r}")
    account = np.zeros(1, account_dt)
    account["cash"] = cash
    account["equity"] = cash
    assets = np.zeros(n_assets, asset_dt)
    assets["stop_loss"] = np.nan
    assets["take_profit"] = np.nan
    return account, assets


def align_funding(
    bar_timestamps: np.ndarray, funding_timestamps: np.ndarray, rates: np.ndarray
) -> np.ndarray:
    """Return one funding rate per bar from settlement times and rates.

    A settlement at time s belongs to the bar with ``open <= s < next open``
    (the last bar spans one median bar length); rates falling in one bar add
    up. Bars without a settlement get 0. Times are milliseconds since the
    epoch, UTC.
    """
    bars = _timestamps("bar_timestamps", bar_timestamps)
    settle = _timestamps("funding_timestamps", funding_timestamps)
    rates = np.asarray(rates, dtype=np.float64)
    if rates.shape != settle.shape:
        raise DataError(
            f"rates must have the shape of funding_timestamps {settle.shape}; got {rates.shape}"
        )
    off_grid = settle % SETTLEMENT_MS != 0
    if off_grid.any():
        raise DataError(
            "funding_timestamps must fall on 00:00, 08:00 or 16:00 UTC; "
            f"got {settle[off_grid][0]} ms"
        )
    bad = ~np.isfinite(rates)
    if bad.any():
        raise DataError(f"rates must be finite; got {rates[bad][0]} at settlement {settle[bad][0]}")
    length = np.median(np.diff(bars)) if bars.size > 1 else SETTLEMENT_MS
    inside = (settle >= bars[0]) & (settle < bars[-1] + length)
    index = np.searchsorted(bars, settle[inside], side="right") - 1
    return np.bincount(index, weights=rates[inside], minlength=bars.size)


def simulate(
    timestamps: np.ndarray,
    open: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    target: np.ndarray | float,
    *,
    mode: np.ndarray | int = Mode.MARKET,
    risk: np.ndarray | float = 1.0,
    limit_offset: np.ndarray | float = 0.0,
    stop_loss: np.ndarray | float = np.nan,
    take_profit: np.ndarray | float = np.nan,
    funding: np.ndarray | float = 0.0,
    markets: MarketSpec | Sequence[MarketSpec] | None = None,
    config: SimConfig | None = None,
    cash: float = 10_000.0,
    state: tuple[np.ndarray, np.ndarray] | None = None,
) -> SimResult:
    """Simulate the book over every bar and return the result.

    Parameters
    ----------
    timestamps : array of int, shape (T,)
        Bar open times in milliseconds since the epoch, strictly increasing.
    open, high, low, close : array of float, shape (T,) or (T, N)
        Prices, finite and > 0, with ``low <= open, close <= high``.
    target : array or float
        Signed target exposure as a fraction of equity, decided at each close;
        NaN for no decision.
    mode : array, int or str
        ``Mode.MARKET``, ``Mode.LIMIT`` or ``Mode.WAIT`` per bar and asset, as
        integers or as the names "market", "limit" and "wait".
    risk : array or float
        Scale in [0, 1] applied to the target.
    limit_offset : array or float
        Limit distance from the close as a fraction in [0, 1).
    stop_loss, take_profit : array or float
        Distances as fractions of the entry price, > 0; NaN for none.
    funding : array or float
        Funding rate settling at each bar's open, NaN or 0 for none (see
        ``align_funding``). Must be 0 or NaN for spot.
    markets : MarketSpec or sequence of MarketSpec, optional
        One for all assets or one per asset; default: no step, no minimum.
    config : SimConfig, optional
        Costs and rules; default ``SimConfig()``.
    cash : float
        Starting cash when ``state`` is not given.
    state : (account, assets), optional
        Book to continue from (for example ``result.account, result.assets``);
        it is copied, not changed.

    Returns
    -------
    SimResult
    """
    config = SimConfig() if config is None else config
    times = _read_only(_timestamp_array("timestamps", timestamps))
    n_bars = times.size
    prices = {}
    for name, values in (("open", open), ("high", high), ("low", low), ("close", close)):
        prices[name] = _read_only(_as_2d(name, values, n_bars, None))
    n_assets = prices["open"].shape[1]
    for name, values in prices.items():
        _check_shape(name, values, (n_bars, n_assets))
    inputs = {}
    for name, values in (
        ("target", target),
        ("mode", _mode_codes(mode)),
        ("risk", risk),
        ("limit_offset", limit_offset),
        ("stop_loss", stop_loss),
        ("take_profit", take_profit),
        ("funding", funding),
    ):
        dtype = np.int64 if name == "mode" else np.float64
        inputs[name] = _read_only(_as_2d(name, values, n_bars, n_assets, dtype))
    markets_array = market_records(markets, n_assets)
    if state is None:
        account, assets = new_state(n_assets, cash)
    else:
        account, assets = _copy_state(state, n_assets)
    extra = MAX_EVENTS_PER_ASSET * n_assets
    # room for every record the bars can make, in buffers just under the size from
    # which numpy asks for huge pages, so that memory is faulted in small pages and
    # only where records are written; most runs need one kernel call
    rows = min(n_bars + 1, max(BUFFER_BYTES // (extra * fill_dt.itemsize), 1))
    fills = np.empty(rows * extra, fill_dt)
    rejects = np.empty(rows * extra, reject_dt)
    changes = np.empty(rows, change_dt)
    held = np.empty((rows, n_assets))
    settings = config.to_record()
    start = int(account["bar"][0])
    # the first change is the book before the first bar
    changes[0] = (start - 1, account["cash"][0], 0.0)
    held[0] = assets["position"]
    t = n_fills = n_rejects = 0
    n_changes = 1
    while t < n_bars:
        fills = _room(fills, n_fills, extra)
        rejects = _room(rejects, n_rejects, extra)
        changes = _room(changes, n_changes, 1)
        held = _room(held, n_changes, 1)
        valid, t, n_fills, n_rejects, n_changes = checked_run_nb(
            times,
            SPOT_BOUNDS if config.spot else BOUNDS,
            account,
            assets,
            settings,
            markets_array,
            *prices.values(),
            inputs["funding"],
            inputs["target"],
            inputs["mode"],
            inputs["risk"],
            inputs["limit_offset"],
            inputs["stop_loss"],
            inputs["take_profit"],
            t,
            n_bars,
            fills,
            n_fills,
            rejects,
            n_rejects,
            changes,
            held,
            n_changes,
        )
        if not valid:
            _raise_first_violation(times, prices, inputs, config.spot)
    # the buffers shrink to their records in place, no copy; nothing else refers to them
    fills.resize(n_fills, refcheck=False)
    rejects.resize(n_rejects, refcheck=False)
    changes.resize(n_changes, refcheck=False)
    held.resize((n_changes, n_assets), refcheck=False)
    return SimResult(
        fills=fills,
        rejects=rejects,
        account=account,
        assets=assets,
        close=prices["close"],
        changes=changes,
        held=held,
        start=start,
    )


def _room(records: np.ndarray, n: int, extra: int) -> np.ndarray:
    # the first n rows in a buffer with room for extra more: the same one, or one
    # twice as long
    if n + extra <= records.shape[0]:
        return records
    grown = np.empty((2 * records.shape[0] + extra, *records.shape[1:]), records.dtype)
    grown[:n] = records[:n]
    return grown


def _check_config_range(name: str, value: float, low: float, high: float) -> None:
    # a finite number in [low, high)
    if not (
        isinstance(value, int | float | np.floating) and np.isfinite(value) and low <= value < high
    ):
        raise ConfigError(f"{name} must be a finite number in [{low}, {high}); got {value!r}")


def _read_only(array: np.ndarray) -> np.ndarray:
    # A read-only view. The kernel gets every input read-only, whatever the caller's
    # arrays are: numba compiles the kernel anew (about 15 s) for each combination of
    # writable and read-only arrays it is called with, so this way it compiles it once.
    view = array.view()
    view.flags.writeable = False
    return view


def _timestamp_array(name: str, values: np.ndarray) -> np.ndarray:
    # int64 milliseconds, one dimension
    array = np.asarray(values)
    if array.ndim != 1 or array.size == 0:
        raise DataError(f"{name} must be a non-empty 1-D array; got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise DataError(f"{name} must hold integer milliseconds; got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.int64)


def _timestamps(name: str, values: np.ndarray) -> np.ndarray:
    # int64 milliseconds, one dimension, strictly increasing
    array = _timestamp_array(name, values)
    k = first_not_increasing_nb(array)
    if k >= 0:
        raise DataError(
            f"{name} must be strictly increasing; got {array[k]} after {array[k - 1]} at index {k}"
        )
    return array


def _as_2d(
    name: str, values, n_bars: int, n_assets: int | None, dtype: type = np.float64
) -> np.ndarray:
    # a C-contiguous 2-D array of n_bars or 1 rows and n_assets or 1 columns; a scalar
    # becomes (1, 1) and a (T,) array (T, 1), which the kernels broadcast without copies
    array = np.asarray(values)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric; got dtype {array.dtype}")
    if dtype is not np.float64 and array.dtype.kind == "f":
        raise ValueError(f"{name} must hold integers; got dtype {array.dtype}")
    array = array.astype(dtype, copy=False)
    if array.ndim == 0:
        if n_assets is None:
            raise DataError(f"{name} must be an array of shape (T,) or (T, N); got a scalar")
        array = array.reshape(1, 1)
    elif array.ndim == 1:
        array = array.reshape(-1, 1)
    rows_ok = array.ndim == 2 and array.shape[0] in (1, n_bars)
    if n_assets is None:
        rows_ok = rows_ok and array.shape[0] == n_bars
    if not rows_ok:
        raise DataError(
            f"{name} must have {n_bars} rows (one per timestamp); got shape {array.shape}"
        )
    if n_assets is not None and array.shape[1] not in (1, n_assets):
        columns = "1 column" if n_assets == 1 else f"1 or {n_assets} columns"
        raise ValueError(f"{name} must have {columns} (one per asset); got shape {array.shape}")
    return np.ascontiguousarray(array)


def _mode_codes(mode) -> np.ndarray:
    # execution modes as integers; names such as "limit" map to their Mode value
    array = np.asarray(mode)
    if array.dtype.kind not in "UO":
        return array
    names = {m.name.lower(): int(m) for m in Mode}
    unknown = [str(name) for name in np.unique(array) if name not in names]
    if unknown:
        raise ValueError(f"mode names must be one of {', '.join(names)}; got {unknown[0]!r}")
    return np.vectorize(names.__getitem__, otypes=[np.int8])(array)


def _check_shape(name: str, array: np.ndarray, shape: tuple[int, int]) -> None:
    if array.shape != shape:
        raise DataError(f"{name} must have shape {shape}; got {array.shape}")


def _check_range(
    name: str,
    array: np.ndarray,
    low: float,
    high: float,
    expected: str,
    closed: tuple[bool, bool] = (False, False),
    nan_ok: bool = False,
) -> None:
    # raise on the first element outside (low, high), its ends included where closed,
    # NaN allowed where nan_ok; one compiled pass with no temporary arrays
    k = first_outside_nb(array, *_ends(low, high, closed), nan_ok)
    if k >= 0:
        bar, asset = np.unravel_index(k, array.shape)
        _raise_at(name, array, bar, asset, expected)


def _raise_first_violation(
    times: np.ndarray, prices: dict[str, np.ndarray], inputs: dict[str, np.ndarray], spot: bool
) -> None:
    # the error for the first input, in the order simulate lists them, that breaks a rule
    # checked_run_nb found broken
    _timestamps("timestamps", times)
    rule, column, bar, asset = price_violation_nb(*prices.values())
    if rule:
        name = tuple(prices)[column]
        expected = {1: "finite and > 0", 2: "<= open and close", 3: ">= open and close"}[rule]
        _raise_at(name, prices[name], bar, asset, expected)
    for name, low, high, closed, nan_ok, expected in RANGES + (SPOT_FUNDING,) * spot:
        _check_range(name, inputs[name], low, high, expected, closed, nan_ok)
    raise RuntimeError("checked_run_nb found a broken rule that the checks in order do not")


def _raise_at(name: str, array: np.ndarray, bar: int, asset: int, expected: str) -> None:
    # the error for a bad value, naming its bar and asset: DataError for market data
    # (prices, funding), ValueError for the strategy's inputs
    error = DataError if name in ("open", "high", "low", "close", "funding") else ValueError
    raise error(f"{name} must be {expected}; got {array[bar, asset]!r} at bar {bar}, asset {asset}")


def market_records(markets: MarketSpec | Sequence[MarketSpec] | None, n_assets: int) -> np.ndarray:
    """Return one ``market_dt`` record per asset from one spec for all or one per asset."""
    if markets is None:
        markets = MarketSpec()
    if isinstance(markets, MarketSpec):
        markets = [markets] * n_assets
    if len(markets) != n_assets:
        raise ValueError(
            f"markets must hold one MarketSpec per asset ({n_assets}); got {len(markets)}"
        )
    records = np.zeros(n_assets, market_dt)
    for i, spec in enumerate(markets):
        records[i] = (spec.qty_step, spec.min_qty, spec.min_notional)
    return records


def _copy_state(state, n_assets: int) -> tuple[np.ndarray, np.ndarray]:
    # copies of a saved book, checked against the record dtypes
    account, assets = state
    if account.dtype != account_dt or account.shape != (1,):
        raise ValueError(
            f"state account must be one account_dt record; got {account.dtype} {account.shape}"
        )
    if assets.dtype != asset_dt or assets.shape != (n_assets,):
        raise ValueError(
            f"state assets must be {n_assets} asset_dt records; got {assets.dtype} {assets.shape}"
        )
    return account.copy(), assets.copy()
