"""Named integer constants and record dtypes of the event loop.

The kernels in ``engine.sim.nb`` take these enums as plain integers and write
these records; the backtest output and the paper journal share them, so the
two can be compared column by column.
"""

from enum import IntEnum

import numpy as np


class Mode(IntEnum):
    """Execution mode of a bar's decision."""

    MARKET = 0  # fill at the next open, as taker
    LIMIT = 1  # rest at an offset from the close, fill as maker
    WAIT = 2  # no new order; a resting order keeps resting


class Side(IntEnum):
    """Side of an order or a fill."""

    BUY = 0
    SELL = 1


class Liquidity(IntEnum):
    """Whether a fill took or made liquidity."""

    TAKER = 0
    MAKER = 1


class Kind(IntEnum):
    """What produced an order or a fill."""

    MARKET = 0
    LIMIT = 1
    STOP_LOSS = 2
    TAKE_PROFIT = 3
    LIQUIDATION = 4


class Pending(IntEnum):
    """Order an asset has waiting for the next bar."""

    NONE = 0
    MARKET = 1
    LIMIT = 2


class Sizing(IntEnum):
    """How a buy is limited."""

    MARGIN = 0  # exposure capped at max_leverage times equity; cash may go negative
    CASH = 1  # a buy spends at most the cash balance, fees included


class Reason(IntEnum):
    """Why an order was rejected, cancelled or filled as it was."""

    NONE = 0
    BELOW_MIN_QTY = 1
    BELOW_MIN_NOTIONAL = 2
    NO_EQUITY = 3
    NO_CASH = 4
    LEVERAGE_CAP = 5
    SHORT_NOT_ALLOWED = 6
    LIMIT_EXPIRED = 7
    CANCELLED_BY_STOP = 8
    CANCELLED_BY_LIQUIDATION = 9
    CLIPPED_BY_CASH = 10
    CLIPPED_BY_LEVERAGE = 11
    CLIPPED_LONG_ONLY = 12
    GAP_AT_OPEN = 13


account_dt = np.dtype(
    [
        ("bar", np.int64),  # index of the next bar to process
        ("cash", np.float64),
        ("equity", np.float64),  # marked at the last close
    ],
    align=True,
)
"""Account-wide state: one record."""

asset_dt = np.dtype(
    [
        ("position", np.float64),  # signed quantity in base units
        ("entry_price", np.float64),  # average entry price of the position, 0 when flat
        ("stop_loss", np.float64),  # distance as a fraction of entry price, NaN for none
        ("take_profit", np.float64),
        ("pending", np.int64),  # a Pending value
        ("order_target", np.float64),  # market order: target fraction of equity
        ("order_qty", np.float64),  # limit order: signed quantity
        ("order_price", np.float64),  # limit order: limit price
        ("order_ttl", np.int64),  # limit order: bars it may still rest
    ],
    align=True,
)
"""Per-asset state: one record per asset."""

config_dt = np.dtype(
    [
        ("maker_fee", np.float64),
        ("taker_fee", np.float64),
        ("slippage", np.float64),  # fraction of the reference price
        ("liquidation_fee", np.float64),
        ("maintenance_margin", np.float64),
        ("max_leverage", np.float64),
        ("sizing", np.int64),  # a Sizing value
        ("spot", np.int64),  # 1: long only, no funding, no liquidation, cash sizing
        ("limit_ttl", np.int64),
    ],
    align=True,
)
"""Simulation settings: one record."""

market_dt = np.dtype(
    [
        ("qty_step", np.float64),  # 0 for no rounding
        ("min_qty", np.float64),
        ("min_notional", np.float64),
    ],
    align=True,
)
"""Exchange rules of one market: one record per asset."""

fill_dt = np.dtype(
    [
        ("bar", np.int64),
        ("asset", np.int64),
        ("side", np.int8),
        ("quantity", np.float64),
        ("price", np.float64),
        ("fee", np.float64),  # trading fee, or the liquidation fee of a liquidation
        ("slippage", np.float64),  # cost of slippage in quote currency
        ("liquidity", np.int8),
        ("kind", np.int8),
        ("reason", np.int8),
    ],
    align=True,
)
"""A fill."""

reject_dt = np.dtype(
    [
        ("bar", np.int64),
        ("asset", np.int64),
        ("side", np.int8),
        ("quantity", np.float64),  # requested quantity, NaN when never sized
        ("price", np.float64),
        ("kind", np.int8),
        ("reason", np.int8),
    ],
    align=True,
)
"""An order that was rejected, skipped, cancelled or expired."""

change_dt = np.dtype(
    [
        ("bar", np.int64),
        ("cash", np.float64),  # at the bar's close
        ("funding", np.float64),  # paid at the bar's open, all assets together
    ],
    align=True,
)
"""The book after a bar that moved its cash or a position: a fill or a funding payment."""

ledger_dt = np.dtype(
    [
        ("maker_fee", np.float64),
        ("taker_fee", np.float64),
        ("slippage", np.float64),
        ("funding", np.float64),
        ("liquidation_fee", np.float64),
    ],
    align=True,
)
"""Costs of one bar, all assets together."""

range_dt = np.dtype(
    [
        ("low", np.float64),  # the lowest value in the range
        ("high", np.float64),  # the highest value in the range
        ("nan_ok", np.int8),  # 1: NaN is in the range
    ],
    align=True,
)
"""The range an input's values must lie in: one record per input checked."""
