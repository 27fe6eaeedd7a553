"""Numba kernels of the event loop: ``run_nb`` advances a book over a range of bars.

``run_nb`` is the one place the rules below live. A backtest runs it over all
bars (through ``checked_run_nb``, which checks each chunk of inputs first); a
paper session continues it from the saved book one closed bar at a time
(``engine.sim.simulate(..., state=...)``), and the parity tests check that
the two agree bit for bit.

The book holds N assets and one cash balance in the quote currency (USDT) shared
by all of them, as with USDT-margined perpetuals under cross margin. ``cash``
moves with every trade as if the contracts were bought and sold outright (a
short sale adds its proceeds), so at every bar::

    equity = cash + sum(position * price)

That is the exchange's wallet balance plus unrealised profit and loss.

Decisions
---------
At the close of bar t the strategy layer gives, per asset: a target exposure
``target`` (signed fraction of equity, NaN for no decision), a ``mode``
(``Mode.MARKET``, ``Mode.LIMIT`` or ``Mode.WAIT``), a risk scale ``risk`` in
[0, 1], a limit offset ``offset`` and stop distances ``stop_loss`` and
``take_profit`` (NaN for none).

- The fraction aimed at is ``target * risk``. The target quantity is
  ``target * risk * equity / price``, and the order is the difference between
  it and the current position. A position already within 1e-9 relative of its
  target gets no order.
- A market order keeps the fraction and is sized when it fills, at the open of
  t+1, with equity valued at the opens and ``price`` the open.
- A limit order is sized at the close of t (``price`` the close, equity at the
  close). It buys at ``close * (1 - offset)`` or sells at
  ``close * (1 + offset)``, and rests for ``limit_ttl`` bars (t+1 to
  t+limit_ttl); unfilled by then it expires.
- With equity at or below zero, an order for any target but 0 is rejected.
- A decision (finite target, mode not WAIT) replaces the asset's resting order
  without a record. ``Mode.WAIT`` or a NaN target leaves a resting order alone.
- The stop distances of bar t replace the asset's stop distances, whatever the
  mode. They are fractions of the position's average entry price: a long stops
  out at ``entry * (1 - stop_loss)`` and takes profit at
  ``entry * (1 + take_profit)``, a short the mirror image.

Bar t+1, in this order
----------------------
1. Funding settles on the position held into the open, valued at the open
   (the mark price): a long pays ``rate * position * open`` and a short
   receives it when the rate is positive. Spot books skip funding.
2. Market orders fill at the open plus slippage, as taker. The open is the
   first price of the bar, so they fill before anything that happens inside
   it: before stops and limits, whose intrabar times are unknown. (An asset
   has at most one pending order, so a market order and a limit order never
   compete.)
3. Stops are checked on the position after step 2, pessimistically: a gap
   through the stop-loss (or the take-profit) at the open fills at the open;
   otherwise, when both levels lie inside the bar's range, the stop-loss fills
   first, at its level. A stop closes the whole position as taker with
   slippage, and cancels the asset's resting limit order. A stop is touched
   when the price reaches its level (``low <= level`` for a long stop-loss).
4. Resting limit orders fill only if the price trades through them (a buy
   needs ``low < limit``, a sell ``high > limit``), at the limit price, or at
   the open when the bar opens beyond it, as maker without slippage. A
   position changed by a limit fill is stop-checked from the next bar on.
5. The book is marked to market at the close.
6. Liquidation, cross margin: when equity falls below ``maintenance_margin``
   times the gross notional at the close, every position is closed at the
   close, each paying ``liquidation_fee`` times its notional, and every resting
   order is cancelled. The kernel models no insurance fund, so a gap can leave
   equity below zero. Spot books are never liquidated.
7. The decisions of bar t+1 become orders for bar t+2.

Fill prices
-----------
Slippage moves a taker price against the trader by ``slippage`` (a fraction)
and is capped by the bar's range: a buy fills at ``min(price * (1 +
slippage), high)``. No fill lies outside its bar's [low, high].

Limits on orders
----------------
- ``Sizing.MARGIN``: a target of 1 buys ``equity / price`` units, so the
  exposure is exactly the equity; fees come on top and cash may go negative
  (borrowed margin). An order that raises an asset's exposure is cut so that
  the gross notional stays within ``max_leverage`` times equity, both valued
  at the opens.
- ``Sizing.CASH``: a buy spends at most the cash balance, fees included; a
  buy of the whole equity gets ``cash / (price * (1 + fee))`` units, while a
  short sale is unlimited. This is vectorbt's rule.
- Spot (``spot = 1``): cash sizing, long only (a sell is cut to the
  position), no funding, no liquidation.
- Quantities are rounded down to the market's ``qty_step``; an order below
  ``min_qty`` or ``min_notional`` is rejected. Stops and liquidations close
  the whole position regardless.

Every order that is cut is filled with a reason; every order that is
rejected, cancelled by a stop or a liquidation, or expires is recorded with a
reason. Nothing raises.

Inputs and state
----------------
Prices have shape (T, N). Funding and the decision inputs have shape (T, N),
or one row standing for every bar and/or one column for every asset. The
state is two structured arrays, ``account`` (one ``account_dt`` record)
and ``assets`` (one ``asset_dt`` record per asset), which ``run_nb`` updates
in place. Running it over all bars equals running it bar by bar with the
state carried over.

Costs
-----
Every cost but funding is in the fill that incurred it: ``fee`` (maker, taker
or liquidation, told apart by ``liquidity`` and ``kind``) and ``slippage``.
Funding paid at a bar's open is recorded with the change of the book at that
bar. ``engine.sim.SimResult.ledger`` sums both into the costs of each bar, the
one cost ledger of backtests and paper sessions.

Outputs
-------
The loop writes no per-bar column. It records the book after each bar that
moved its cash or a position (``change_dt`` records and the positions), and
the bars in between hold the book as it was; ``book_columns_nb`` turns these
into equity, cash and positions at every close, marked with the same
arithmetic as the loop, when they are asked for.
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from engine.sim.enums import (
    Kind,
    Liquidity,
    Mode,
    Pending,
    Reason,
    Side,
    Sizing,
)

TOL = 1e-9  # relative size below which an order is taken as nothing
MAX_EVENTS_PER_ASSET = 3  # records one asset can add in one bar
QUIET_BLOCK = 16  # bars the quiet loop checks at once
CACHE_LINE_VALUES = 8  # float64 values in a 64-byte cache line
CHECK_CHUNK = 1 << 12  # bar-asset values checked, then run while still in cache


def prefetch_nb(values, index):
    """Ask the CPU to bring ``values[index]`` into cache, without waiting for it.

    The quiet path of ``run_nb`` computes little per bar, so the memory system
    is idle while it runs; prefetching the inputs a chunk ahead lets the checks
    of ``checked_run_nb`` read them from cache instead of waiting on memory.
    It changes no value, and in pure Python (``NUMBA_DISABLE_JIT=1``) it does
    nothing.

    Assumptions
    -----------
    ``values`` is a 1-D array. An ``index`` past its end fetches nothing
    useful but is harmless: a prefetch never faults.
    """


@intrinsic
def llvm_prefetch(typingctx, values, index):
    """Compile ``prefetch_nb`` to LLVM's prefetch instruction for a read kept in every cache."""

    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        array = context.make_array(array_type)(context, builder, args[0])
        pointer = cgutils.get_item_pointer(context, builder, array_type, array, args[1:])
        byte_pointer = ir.IntType(8).as_pointer()
        int32 = ir.IntType(32)
        prefetch_type = ir.FunctionType(ir.VoidType(), [byte_pointer, int32, int32, int32])
        function = builder.module.declare_intrinsic("llvm.prefetch", [byte_pointer], prefetch_type)
        # read access (0), keep in all cache levels (3), data cache (1)
        builder.call(
            function, [builder.bitcast(pointer, byte_pointer), int32(0), int32(3), int32(1)]
        )
        return context.get_dummy_value()

    return types.void(values, index), codegen


@overload(prefetch_nb)
def prefetch_nb_compiled(values, index):
    """Route ``prefetch_nb`` in compiled code to ``llvm_prefetch``."""
    return lambda values, index: llvm_prefetch(values, index)


@njit(cache=True)
def flex_steps_nb(values):
    """Return the row and column steps that broadcast ``values`` over (T, N).

    ``values[t * row_step, i * col_step]`` is the value of bar ``t`` and asset
    ``i``, whether ``values`` holds one row for every bar, one column for every
    asset, or both.

    Assumptions
    -----------
    ``values`` is 2-D with 1 or T rows and 1 or N columns.
    """
    return (1 if values.shape[0] > 1 else 0), (1 if values.shape[1] > 1 else 0)


@njit(cache=True)
def flex_nb(values, t, i):
    """Return the value of bar ``t`` and asset ``i`` in a broadcast ``values``.

    Assumptions
    -----------
    As for ``flex_steps_nb``.
    """
    row_step, col_step = flex_steps_nb(values)
    return values[t * row_step, i * col_step]


@njit(cache=True)
def round_qty_nb(qty, step):
    """Return ``qty`` rounded down to a multiple of ``step``.

    Assumptions
    -----------
    ``qty >= 0``. A ``step`` of 0 means no rounding. A quantity within 1e-9
    steps below a multiple rounds up to it, so that 0.3 with a step of 0.1
    stays 0.3.
    """
    if step <= 0.0:
        return qty
    return np.floor(qty / step + TOL) * step


@njit(cache=True)
def book_value_nb(account, assets, price, t):
    """Return cash plus the value of every position at ``price``.

    Assumptions
    -----------
    ``price`` holds one price per asset.
    """
    value = account[0]["cash"]
    for i in range(assets.shape[0]):
        value += assets[i]["position"] * price[t, i]
    return value


@njit(cache=True)
def gross_nb(assets, price, t, skip):
    """Return the gross notional of every asset but ``skip`` at ``price``.

    Assumptions
    -----------
    ``skip`` is an asset index, or -1 to include every asset.
    """
    total = 0.0
    for i in range(assets.shape[0]):
        if i != skip:
            total += abs(assets[i]["position"]) * price[t, i]
    return total


@njit(cache=True)
def slipped_price_nb(price, side, slippage, high, low):
    """Return ``price`` moved against a taker by ``slippage``, within [low, high].

    Assumptions
    -----------
    ``low <= price <= high`` and ``slippage >= 0``.
    """
    if side == Side.BUY:
        return min(price * (1.0 + slippage), high)
    return max(price * (1.0 - slippage), low)


@njit(cache=True)
def record_fill_nb(fills, n, bar, asset, side, qty, price, fee, slippage, liquidity, kind, reason):
    """Write one fill at ``fills[n]`` and return ``n + 1``.

    Assumptions
    -----------
    ``fills`` has room for record ``n``.
    """
    fill = fills[n]
    fill["bar"] = bar
    fill["asset"] = asset
    fill["side"] = side
    fill["quantity"] = qty
    fill["price"] = price
    fill["fee"] = fee
    fill["slippage"] = slippage
    fill["liquidity"] = liquidity
    fill["kind"] = kind
    fill["reason"] = reason
    return n + 1


@njit(cache=True)
def record_reject_nb(rejects, n, bar, asset, side, qty, price, kind, reason):
    """Write one rejected order at ``rejects[n]`` and return ``n + 1``.

    Assumptions
    -----------
    ``rejects`` has room for record ``n``.
    """
    reject = rejects[n]
    reject["bar"] = bar
    reject["asset"] = asset
    reject["side"] = side
    reject["quantity"] = qty
    reject["price"] = price
    reject["kind"] = kind
    reject["reason"] = reason
    return n + 1


@njit(cache=True)
def apply_fill_nb(account, assets, i, side, qty, price, fee):
    """Move cash and the position of asset ``i`` for one fill.

    The average entry price grows with a position, stays when it shrinks and
    restarts at ``price`` when it flips. A remainder within 1e-9 relative of
    the traded size is closed to exactly zero.

    Assumptions
    -----------
    ``qty > 0``, ``price > 0`` and ``fee`` is what the fill costs.
    """
    asset = assets[i]
    pos = asset["position"]
    signed = qty if side == Side.BUY else -qty
    account[0]["cash"] -= signed * price + fee
    new_pos = pos + signed
    if abs(new_pos) <= TOL * max(abs(pos), qty):
        new_pos = 0.0
    if new_pos == 0.0:
        asset["entry_price"] = 0.0
    elif pos == 0.0 or (pos > 0.0) != (new_pos > 0.0):
        asset["entry_price"] = price
    elif abs(new_pos) > abs(pos):
        asset["entry_price"] = (abs(pos) * asset["entry_price"] + qty * price) / abs(new_pos)
    asset["position"] = new_pos


@njit(cache=True)
def check_minimums_nb(markets, i, qty, price):
    """Return ``qty`` rounded to the step of market ``i`` and a reject reason.

    Assumptions
    -----------
    ``qty >= 0``; the reason is ``Reason.NONE`` when the order may go.
    """
    market = markets[i]
    qty = round_qty_nb(qty, market["qty_step"])
    if qty <= 0.0 or qty < market["min_qty"]:
        return qty, Reason.BELOW_MIN_QTY
    if qty * price < market["min_notional"]:
        return qty, Reason.BELOW_MIN_NOTIONAL
    return qty, Reason.NONE


@njit(cache=True)
def constrain_nb(account, assets, config, markets, t, i, side, qty, price, fee_rate, ref_price):
    """Return the quantity an order may fill, its fill reason and a reject reason.

    Applies, in order: long only (spot), the cash limit (cash sizing or spot),
    the leverage cap (margin sizing), then the step and the minimums.

    Assumptions
    -----------
    ``qty > 0`` is the requested quantity, ``price`` the fill price and
    ``ref_price`` the prices the book is valued at (the bar's opens).
    """
    cfg = config[0]
    spot = cfg["spot"] != 0
    pos = assets[i]["position"]
    reason = Reason.NONE
    if spot and side == Side.SELL:
        if pos <= 0.0:
            return 0.0, reason, Reason.SHORT_NOT_ALLOWED
        if qty > pos:
            qty = pos
            reason = Reason.CLIPPED_LONG_ONLY
    if side == Side.BUY and (spot or cfg["sizing"] == Sizing.CASH):
        cash = account[0]["cash"]
        if cash <= 0.0:
            return 0.0, reason, Reason.NO_CASH
        max_qty = cash / (price * (1.0 + fee_rate))
        if qty > max_qty:
            qty = max_qty
            reason = Reason.CLIPPED_BY_CASH
    if not spot and cfg["sizing"] == Sizing.MARGIN:
        new_abs = abs(pos + qty) if side == Side.BUY else abs(pos - qty)
        if new_abs > abs(pos):
            equity = book_value_nb(account, assets, ref_price, t)
            room = (cfg["max_leverage"] * equity - gross_nb(assets, ref_price, t, i)) / ref_price[
                t, i
            ]
            if new_abs > room * (1.0 + TOL):
                room = max(room, 0.0)
                if pos == 0.0 or (pos > 0.0) == (side == Side.BUY):
                    allowed = room - abs(pos)
                else:
                    allowed = abs(pos) + room
                if allowed <= 0.0:
                    return 0.0, reason, Reason.LEVERAGE_CAP
                qty = allowed
                reason = Reason.CLIPPED_BY_LEVERAGE
    qty, reject = check_minimums_nb(markets, i, qty, price)
    return qty, reason, reject


@njit(cache=True)
def fill_market_order_nb(
    account, assets, config, markets, open_, high, low, t, i, fills, n_fills, rejects, n_rejects
):
    """Fill the pending market order of asset ``i`` at the open; return the counts.

    Assumptions
    -----------
    The order was decided at the previous close and holds its target fraction
    of equity; it is sized here with equity valued at the opens.
    """
    cfg = config[0]
    bar = account[0]["bar"]
    asset = assets[i]
    asset["pending"] = Pending.NONE
    frac = asset["order_target"]
    equity = book_value_nb(account, assets, open_, t)
    if equity <= 0.0 and frac != 0.0:
        side = Side.BUY if frac > 0.0 else Side.SELL
        n_rejects = record_reject_nb(
            rejects, n_rejects, bar, i, side, np.nan, open_[t, i], Kind.MARKET, Reason.NO_EQUITY
        )
        return n_fills, n_rejects
    pos = asset["position"]
    target_qty = frac * equity / open_[t, i]
    delta = target_qty - pos
    if abs(delta) <= TOL * max(abs(target_qty), abs(pos)):
        return n_fills, n_rejects
    side = Side.BUY if delta > 0.0 else Side.SELL
    price = slipped_price_nb(open_[t, i], side, cfg["slippage"], high[t, i], low[t, i])
    qty, reason, reject = constrain_nb(
        account, assets, config, markets, t, i, side, abs(delta), price, cfg["taker_fee"], open_
    )
    if reject != Reason.NONE:
        n_rejects = record_reject_nb(
            rejects, n_rejects, bar, i, side, abs(delta), price, Kind.MARKET, reject
        )
        return n_fills, n_rejects
    fee = qty * price * cfg["taker_fee"]
    slippage = qty * abs(price - open_[t, i])
    apply_fill_nb(account, assets, i, side, qty, price, fee)
    n_fills = record_fill_nb(
        fills,
        n_fills,
        bar,
        i,
        side,
        qty,
        price,
        fee,
        slippage,
        Liquidity.TAKER,
        Kind.MARKET,
        reason,
    )
    return n_fills, n_rejects


@njit(cache=True)
def stop_trigger_nb(asset, open_, high, low):
    """Return whether a stop of ``asset`` triggers, its kind, level and reason.

    Assumptions
    -----------
    ``asset`` holds a position. Gaps at the open decide first; inside the bar
    the stop-loss wins over the take-profit. NaN distances never trigger.
    """
    entry = asset["entry_price"]
    sl = asset["stop_loss"]
    tp = asset["take_profit"]
    if asset["position"] > 0.0:
        sl_price = entry * (1.0 - sl)
        tp_price = entry * (1.0 + tp)
        if open_ <= sl_price:
            return True, Kind.STOP_LOSS, open_, Reason.GAP_AT_OPEN
        if open_ >= tp_price:
            return True, Kind.TAKE_PROFIT, open_, Reason.GAP_AT_OPEN
        if low <= sl_price:
            return True, Kind.STOP_LOSS, sl_price, Reason.NONE
        if high >= tp_price:
            return True, Kind.TAKE_PROFIT, tp_price, Reason.NONE
        return False, Kind.STOP_LOSS, 0.0, Reason.NONE
    sl_price = entry * (1.0 + sl)
    tp_price = entry * (1.0 - tp)
    if open_ >= sl_price:
        return True, Kind.STOP_LOSS, open_, Reason.GAP_AT_OPEN
    if open_ <= tp_price:
        return True, Kind.TAKE_PROFIT, open_, Reason.GAP_AT_OPEN
    if high >= sl_price:
        return True, Kind.STOP_LOSS, sl_price, Reason.NONE
    if low <= tp_price:
        return True, Kind.TAKE_PROFIT, tp_price, Reason.NONE
    return False, Kind.STOP_LOSS, 0.0, Reason.NONE


@njit(cache=True)
def fill_stop_nb(
    account,
    assets,
    config,
    high,
    low,
    t,
    i,
    kind,
    level,
    reason,
    fills,
    n_fills,
    rejects,
    n_rejects,
):
    """Close the position of asset ``i`` at a stop ``level``; return the counts.

    Assumptions
    -----------
    ``stop_trigger_nb`` fired with ``kind``, ``level`` and ``reason``. The
    asset's resting limit order, if any, is cancelled.
    """
    cfg = config[0]
    bar = account[0]["bar"]
    asset = assets[i]
    pos = asset["position"]
    side = Side.SELL if pos > 0.0 else Side.BUY
    price = slipped_price_nb(level, side, cfg["slippage"], high[t, i], low[t, i])
    qty = abs(pos)
    fee = qty * price * cfg["taker_fee"]
    slippage = qty * abs(price - level)
    apply_fill_nb(account, assets, i, side, qty, price, fee)
    n_fills = record_fill_nb(
        fills, n_fills, bar, i, side, qty, price, fee, slippage, Liquidity.TAKER, kind, reason
    )
    if asset["pending"] == Pending.LIMIT:
        n_rejects = cancel_limit_nb(asset, rejects, n_rejects, bar, i, Reason.CANCELLED_BY_STOP)
    return n_fills, n_rejects


@njit(cache=True)
def cancel_limit_nb(asset, rejects, n_rejects, bar, i, reason):
    """Drop the resting limit order of ``asset``, record why, return the count.

    Assumptions
    -----------
    The asset has a resting limit order.
    """
    qty = asset["order_qty"]
    side = Side.BUY if qty > 0.0 else Side.SELL
    asset["pending"] = Pending.NONE
    return record_reject_nb(
        rejects, n_rejects, bar, i, side, abs(qty), asset["order_price"], Kind.LIMIT, reason
    )


@njit(cache=True)
def fill_limit_order_nb(
    account, assets, config, markets, open_, high, low, t, i, fills, n_fills, rejects, n_rejects
):
    """Fill the resting limit order of asset ``i`` if the bar trades through it.

    Return the counts.

    Assumptions
    -----------
    A buy fills when ``low < limit``, a sell when ``high > limit``, at the
    limit or at a better open. An unfilled order loses one bar of life.
    """
    cfg = config[0]
    bar = account[0]["bar"]
    asset = assets[i]
    signed = asset["order_qty"]
    limit = asset["order_price"]
    if signed > 0.0:
        side = Side.BUY
        touched = low[t, i] < limit
        price = min(limit, open_[t, i])
    else:
        side = Side.SELL
        touched = high[t, i] > limit
        price = max(limit, open_[t, i])
    if not touched:
        asset["order_ttl"] -= 1
        if asset["order_ttl"] <= 0:
            n_rejects = cancel_limit_nb(asset, rejects, n_rejects, bar, i, Reason.LIMIT_EXPIRED)
        return n_fills, n_rejects
    asset["pending"] = Pending.NONE
    qty, reason, reject = constrain_nb(
        account, assets, config, markets, t, i, side, abs(signed), price, cfg["maker_fee"], open_
    )
    if reject != Reason.NONE:
        n_rejects = record_reject_nb(
            rejects, n_rejects, bar, i, side, abs(signed), price, Kind.LIMIT, reject
        )
        return n_fills, n_rejects
    if reason == Reason.NONE and price != limit:
        reason = Reason.GAP_AT_OPEN
    fee = qty * price * cfg["maker_fee"]
    apply_fill_nb(account, assets, i, side, qty, price, fee)
    n_fills = record_fill_nb(
        fills, n_fills, bar, i, side, qty, price, fee, 0.0, Liquidity.MAKER, Kind.LIMIT, reason
    )
    return n_fills, n_rejects


@njit(cache=True)
def liquidate_nb(account, assets, config, close, t, fills, n_fills, rejects, n_rejects):
    """Close every position at the close and cancel every resting order.

    Return the counts.

    Assumptions
    -----------
    Margin fell short at the close (cross margin: one equity backs every
    position). Each position pays ``liquidation_fee`` on its notional.
    """
    cfg = config[0]
    acc = account[0]
    bar = acc["bar"]
    for i in range(assets.shape[0]):
        asset = assets[i]
        pos = asset["position"]
        price = close[t, i]
        if pos != 0.0:
            side = Side.SELL if pos > 0.0 else Side.BUY
            qty = abs(pos)
            fee = qty * price * cfg["liquidation_fee"]
            apply_fill_nb(account, assets, i, side, qty, price, fee)
            n_fills = record_fill_nb(
                fills,
                n_fills,
                bar,
                i,
                side,
                qty,
                price,
                fee,
                0.0,
                Liquidity.TAKER,
                Kind.LIQUIDATION,
                Reason.NONE,
            )
        if asset["pending"] == Pending.LIMIT:
            n_rejects = cancel_limit_nb(
                asset, rejects, n_rejects, bar, i, Reason.CANCELLED_BY_LIQUIDATION
            )
    acc["equity"] = book_value_nb(account, assets, close, t)
    return n_fills, n_rejects


@njit(cache=True)
def place_limit_order_nb(
    account, assets, config, markets, close, offset, t, i, frac, rejects, n_rejects
):
    """Turn a limit decision for asset ``i`` at this close into a resting order.

    Return the reject count.

    Assumptions
    -----------
    ``account`` is marked at ``close``; ``frac`` is target times risk, finite.
    """
    bar = account[0]["bar"]
    equity = account[0]["equity"]
    asset = assets[i]
    if equity <= 0.0 and frac != 0.0:
        side = Side.BUY if frac > 0.0 else Side.SELL
        return record_reject_nb(
            rejects, n_rejects, bar, i, side, np.nan, close[t, i], Kind.LIMIT, Reason.NO_EQUITY
        )
    pos = asset["position"]
    target_qty = frac * equity / close[t, i]
    delta = target_qty - pos
    if abs(delta) <= TOL * max(abs(target_qty), abs(pos)):
        return n_rejects
    if delta > 0.0:
        side = Side.BUY
        limit = close[t, i] * (1.0 - flex_nb(offset, t, i))
    else:
        side = Side.SELL
        limit = close[t, i] * (1.0 + flex_nb(offset, t, i))
    qty, reject = check_minimums_nb(markets, i, abs(delta), limit)
    if reject != Reason.NONE:
        return record_reject_nb(
            rejects, n_rejects, bar, i, side, abs(delta), limit, Kind.LIMIT, reject
        )
    asset["pending"] = Pending.LIMIT
    asset["order_qty"] = qty if side == Side.BUY else -qty
    asset["order_price"] = limit
    asset["order_ttl"] = config[0]["limit_ttl"]
    return n_rejects


@njit(cache=True, inline="always")
def settles_nb(position, rate):
    """Return whether funding at ``rate`` settles on ``position``: both nonzero, rate not NaN."""
    return position != 0.0 and rate == rate and rate != 0.0


@njit(cache=True, inline="always")
def mark_nb(cash, assets, close, t):
    """Return the book's equity and gross notional at the close of bar ``t``.

    Assumptions
    -----------
    ``cash`` is the account's cash; ``close`` has one column per asset.
    """
    value = cash
    gross = 0.0
    for i in range(assets.shape[0]):
        pos = assets[i]["position"]
        value += pos * close[t, i]
        gross += abs(pos) * close[t, i]
    return value, gross


@njit(cache=True, inline="always")
def record_change_nb(changes, held, n, bar, cash, paid, assets):
    """Write the book after bar ``bar`` at ``changes[n]`` and ``held[n]``; return ``n + 1``.

    Assumptions
    -----------
    ``changes`` and ``held`` have room for record ``n``; ``cash`` is the
    account's cash at the close and ``paid`` the funding paid at the open.
    """
    change = changes[n]
    change["bar"] = bar
    change["cash"] = cash
    change["funding"] = paid
    for i in range(assets.shape[0]):
        held[n, i] = assets[i]["position"]
    return n + 1


@njit(cache=True, inline="always")
def rows_nb(n_rows, n_cols, t, stop):
    """Return the range of flat indices of bars ``t`` to ``stop - 1`` in an (n_rows, n_cols) input.

    An input with one row standing for every bar gives that row.
    """
    if n_rows == 1:
        return 0, n_cols
    return t * n_cols, stop * n_cols


@njit(cache=True, inline="always")
def decides_nb(frac, decided):
    """Return whether a bar's ``target`` and ``mode`` make a decision: a target, mode not WAIT."""
    return (frac == frac) & (decided != Mode.WAIT)


@njit(cache=True, inline="always")
def due_phases_nb(assets):
    """Return whether any asset has a market order, a limit order or a stop distance.

    ``run_nb`` skips a phase of the next bar when no asset has work in it.

    Assumptions
    -----------
    ``assets`` holds the state after a bar's decisions.
    """
    market = False
    limit = False
    stops = False
    for i in range(assets.shape[0]):
        asset = assets[i]
        market |= asset["pending"] == Pending.MARKET
        limit |= asset["pending"] == Pending.LIMIT
        stops |= asset["stop_loss"] == asset["stop_loss"]
        stops |= asset["take_profit"] == asset["take_profit"]
    return market, limit, stops


@njit(cache=True)
def run_nb(
    times,
    account,
    assets,
    config,
    markets,
    open_,
    high,
    low,
    close,
    funding,
    target,
    mode,
    risk,
    offset,
    stop_loss,
    take_profit,
    start,
    stop,
    fills,
    n_fills,
    rejects,
    n_rejects,
    changes,
    held,
    n_changes,
):
    """Advance the book over bars ``start`` to ``stop - 1``, in place.

    Each bar runs funding, market fills, stops, limit fills, the mark at the
    close, the liquidation check and the new decisions, in that order (see the
    module docstring) and moves ``account[0]["bar"]`` on by one. A phase runs
    only when some asset has work in it. This loop is the one place the rules
    of a bar live.

    While no asset has an order or a stop distance, the loop runs quiet bars
    on a short path. A bar is quiet when no funding settles on a position, no
    decision is made (every target NaN or every mode ``Mode.WAIT``, both
    encodings of no decision), no stop distance is set at its close and the
    book is not liquidated at its close. Quiet bars change neither cash nor
    positions, so they skip the phases and record nothing; the account's
    equity is marked at the last of them. They are checked a block of
    ``QUIET_BLOCK`` bars at a time, in vectorisable passes over the block's
    inputs, with the closes marked as ``mark_nb`` marks them (the same
    additions in the same order); a block that may hold a busy bar is checked
    bar by bar (when only a decision can make one busy, from the first bar
    with both a target and a mode but ``Mode.WAIT``), and its first busy bar
    runs every phase. The quiet path prefetches the timestamps, the prices
    and the per-bar decision inputs a chunk of ``CHECK_CHUNK`` values ahead,
    for the checks of ``checked_run_nb``.

    Parameters
    ----------
    times : ndarray
        Bar open times, shape (T,). The rules read none of them; the quiet
        path prefetches them, like the other inputs, for ``checked_run_nb``.
    account, assets : structured ndarray
        State, one ``account_dt`` record and one ``asset_dt`` record per asset.
    config, markets : structured ndarray
        One ``config_dt`` record and one ``market_dt`` record per asset.
    open_, high, low, close : ndarray
        Prices, shape (T, N); row ``t`` is bar ``t``.
    funding, target, mode, risk, offset, stop_loss, take_profit : ndarray
        Funding at each bar's open and decisions at its close, shape (T, N),
        or 1 row for every bar and/or 1 column for every asset.
    start, stop : int
        Rows of the bars to run.
    fills, rejects : structured ndarray
        Output buffers; records go from index ``n_fills`` and ``n_rejects``.
        The caller grows them when the loop stops short of ``stop``, so that
        the loop holds no allocation.
    changes, held : ndarray
        Output buffers of the book after each bar that moved its cash or a
        position (a fill or a funding payment): ``change_dt`` records from
        index ``n_changes``, and the positions at the close in the same rows
        of ``held``, shape (K, N). Bars in between hold the book as it was,
        so these give the cash and positions of every bar, and marking them
        at each close with ``mark_nb`` gives its equity
        (``book_columns_nb``); the loop writes no per-bar output.

    Returns
    -------
    t, n_fills, n_rejects, n_changes : int
        The first bar not run, and the record counts.

    Assumptions
    -----------
    Inputs were validated: prices positive and finite with low <= open, close
    <= high; targets finite or NaN; risk in [0, 1]; modes valid. The loop
    stops early, before a bar, when the fill or reject buffer has no room for
    ``MAX_EVENTS_PER_ASSET`` records per asset, or the change buffer for one
    record.
    """
    acc = account[0]
    cfg = config[0]
    spot = cfg["spot"] != 0
    n_assets = assets.shape[0]
    extra = MAX_EVENTS_PER_ASSET * n_assets
    # broadcast steps, resolved once rather than per bar and asset
    funding_row, funding_col = flex_steps_nb(funding)
    target_row, target_col = flex_steps_nb(target)
    mode_row, mode_col = flex_steps_nb(mode)
    risk_row, risk_col = flex_steps_nb(risk)
    sl_row, sl_col = flex_steps_nb(stop_loss)
    tp_row, tp_col = flex_steps_nb(take_profit)
    stops_vary = sl_row != 0 or tp_row != 0
    # a single funding value of 0 or NaN never settles anything
    rate = funding[0, 0]
    funding_due = not spot and (
        funding_row != 0 or funding_col != 0 or (rate == rate and rate != 0.0)
    )
    market_due, limit_due, stops_due = due_phases_nb(assets)
    target_flat = target.ravel()
    mode_flat = mode.ravel()
    stop_loss_flat = stop_loss.ravel()
    take_profit_flat = take_profit.ravel()
    funding_flat = funding.ravel()
    maintenance = cfg["maintenance_margin"]
    opens, highs, lows, closes = open_.ravel(), high.ravel(), low.ravel(), close.ravel()
    chunk_rows = max(CHECK_CHUNK // n_assets, 1)
    target_full = target.shape[0] > 1 and target.shape[1] == n_assets
    mode_full = mode.shape[0] > 1 and mode.shape[1] == n_assets
    block_values = np.empty(QUIET_BLOCK)
    block_gross = np.empty(QUIET_BLOCK)
    t = start
    while (
        t < stop
        and n_fills + extra <= fills.shape[0]
        and n_rejects + extra <= rejects.shape[0]
        and n_changes < changes.shape[0]
    ):
        if not (market_due or limit_due or stops_due):
            # quiet bars: no order and no stop is due, so a bar in which no funding
            # settles on a position, no decision is made, no stop distance is set and
            # the book is not liquidated changes neither cash nor positions
            held_any = False
            for i in range(n_assets):
                held_any |= assets[i]["position"] != 0.0
            liquidable = held_any and not spot
            settling = funding_due and held_any
            cash_now = acc["cash"]
            began = t
            set_stops = stops_vary or t == start
            while t < stop:
                block_end = min(t + QUIET_BLOCK, stop)
                # about once a cache line, a chunk of CHECK_CHUNK values ahead: the
                # inputs checked_run_nb checks next, fetched while this loop computes
                ahead = min(block_end * n_assets + CHECK_CHUNK, opens.size)
                for k in range(t * n_assets + CHECK_CHUNK, ahead, CACHE_LINE_VALUES):
                    prefetch_nb(opens, k)
                    prefetch_nb(highs, k)
                    prefetch_nb(lows, k)
                    prefetch_nb(closes, k)
                    if target_full:
                        prefetch_nb(target_flat, k)
                    if mode_full:
                        prefetch_nb(mode_flat, k)
                ahead = min(block_end + chunk_rows, times.size)
                for k in range(t + chunk_rows, ahead, CACHE_LINE_VALUES):
                    prefetch_nb(times, k)
                # whole-block passes first, vectorisable: unsigned indices, so that no
                # wraparound check keeps a loop from vectorising
                first, last = rows_nb(target.shape[0], target.shape[1], t, block_end)
                set_target = False
                for k in range(np.uint64(first), np.uint64(last)):
                    set_target |= target_flat[k] == target_flat[k]
                deciding = False
                if set_target:
                    first, last = rows_nb(mode.shape[0], mode.shape[1], t, block_end)
                    for k in range(np.uint64(first), np.uint64(last)):
                        deciding |= mode_flat[k] != Mode.WAIT
                may_act = False
                if set_stops:
                    first, last = rows_nb(stop_loss.shape[0], stop_loss.shape[1], t, block_end)
                    for k in range(np.uint64(first), np.uint64(last)):
                        may_act |= stop_loss_flat[k] == stop_loss_flat[k]
                    first, last = rows_nb(take_profit.shape[0], take_profit.shape[1], t, block_end)
                    for k in range(np.uint64(first), np.uint64(last)):
                        may_act |= take_profit_flat[k] == take_profit_flat[k]
                if settling:
                    first, last = rows_nb(funding.shape[0], funding.shape[1], t, block_end)
                    for k in range(np.uint64(first), np.uint64(last)):
                        may_act |= (funding_flat[k] == funding_flat[k]) & (funding_flat[k] != 0.0)
                short = False
                if liquidable:
                    # the closes marked as mark_nb marks them, the same additions in the
                    # same order
                    n = block_end - t
                    for k in range(n):
                        block_values[k] = cash_now
                        block_gross[k] = 0.0
                    for i in range(n_assets):
                        pos = assets[i]["position"]
                        size = abs(pos)
                        for k in range(n):
                            block_values[k] += pos * close[np.uint64(t + k), i]
                            block_gross[k] += size * close[np.uint64(t + k), i]
                    for k in range(n):
                        short |= (block_gross[k] > 0.0) & (
                            block_values[k] < maintenance * block_gross[k]
                        )
                if not (deciding or may_act or short):
                    t = block_end
                    set_stops = stops_vary
                    continue
                # a block that may hold a busy bar, bar by bar; the first busy bar is
                # left for the full path below
                block_start = t
                if not (may_act or short):
                    # only a decision can make a bar busy, and none comes before the
                    # first bar with a target and the first with a mode but WAIT
                    first, last = rows_nb(target.shape[0], target.shape[1], t, block_end)
                    k = first
                    while k < last and target_flat[k] != target_flat[k]:
                        k += 1
                    deciding_from = t if target.shape[0] == 1 else k // target.shape[1]
                    first, last = rows_nb(mode.shape[0], mode.shape[1], t, block_end)
                    k = first
                    while k < last and mode_flat[k] == Mode.WAIT:
                        k += 1
                    if mode.shape[0] > 1:
                        deciding_from = max(deciding_from, k // mode.shape[1])
                    if deciding_from > t:
                        t = deciding_from
                        set_stops = stops_vary
                while t < block_end:
                    k = t - block_start
                    busy = (
                        short
                        and block_gross[k] > 0.0
                        and (block_values[k] < maintenance * block_gross[k])
                    )
                    for i in range(n_assets):
                        if set_stops:
                            sl = stop_loss[t * sl_row, i * sl_col]
                            tp = take_profit[t * tp_row, i * tp_col]
                            busy |= (sl == sl) | (tp == tp)
                        busy |= decides_nb(
                            target[t * target_row, i * target_col], mode[t * mode_row, i * mode_col]
                        )
                        if settling:
                            busy |= settles_nb(
                                assets[i]["position"], funding[t * funding_row, i * funding_col]
                            )
                    if busy:
                        break
                    set_stops = stops_vary
                    t += 1
                if t < block_end:
                    break
            if t > began:
                acc["equity"] = mark_nb(cash_now, assets, close, t - 1)[0]
            acc["bar"] += t - began
            if t == stop:
                break
        paid = 0.0
        moved = False
        fills_before = n_fills
        if funding_due:
            for i in range(n_assets):
                pos = assets[i]["position"]
                rate = funding[t * funding_row, i * funding_col]
                if settles_nb(pos, rate):
                    payment = rate * pos * open_[t, i]
                    acc["cash"] -= payment
                    paid += payment
                    moved = True
        for i in range(n_assets if market_due else 0):
            if assets[i]["pending"] == Pending.MARKET:
                n_fills, n_rejects = fill_market_order_nb(
                    account,
                    assets,
                    config,
                    markets,
                    open_,
                    high,
                    low,
                    t,
                    i,
                    fills,
                    n_fills,
                    rejects,
                    n_rejects,
                )
        for i in range(n_assets if stops_due else 0):
            if assets[i]["position"] != 0.0:
                hit, kind, level, reason = stop_trigger_nb(
                    assets[i], open_[t, i], high[t, i], low[t, i]
                )
                if hit:
                    n_fills, n_rejects = fill_stop_nb(
                        account,
                        assets,
                        config,
                        high,
                        low,
                        t,
                        i,
                        kind,
                        level,
                        reason,
                        fills,
                        n_fills,
                        rejects,
                        n_rejects,
                    )
        for i in range(n_assets if limit_due else 0):
            if assets[i]["pending"] == Pending.LIMIT:
                n_fills, n_rejects = fill_limit_order_nb(
                    account,
                    assets,
                    config,
                    markets,
                    open_,
                    high,
                    low,
                    t,
                    i,
                    fills,
                    n_fills,
                    rejects,
                    n_rejects,
                )
        value, gross = mark_nb(acc["cash"], assets, close, t)
        acc["equity"] = value
        if not spot and gross > 0.0 and value < cfg["maintenance_margin"] * gross:
            n_fills, n_rejects = liquidate_nb(
                account, assets, config, close, t, fills, n_fills, rejects, n_rejects
            )
        # stop distances given once for every bar need setting on the first bar only
        set_stops = stops_vary or t == start
        for i in range(n_assets):
            asset = assets[i]
            if set_stops:
                asset["stop_loss"] = stop_loss[t * sl_row, i * sl_col]
                asset["take_profit"] = take_profit[t * tp_row, i * tp_col]
            frac = target[t * target_row, i * target_col]
            decided = mode[t * mode_row, i * mode_col]
            if not decides_nb(frac, decided):
                continue
            frac *= risk[t * risk_row, i * risk_col]
            asset["pending"] = Pending.NONE
            if decided == Mode.MARKET:
                asset["pending"] = Pending.MARKET
                asset["order_target"] = frac
            else:
                n_rejects = place_limit_order_nb(
                    account, assets, config, markets, close, offset, t, i, frac, rejects, n_rejects
                )
        market_due, limit_due, stops_due = due_phases_nb(assets)
        if moved or n_fills != fills_before:
            n_changes = record_change_nb(
                changes, held, n_changes, acc["bar"], acc["cash"], paid, assets
            )
        acc["bar"] += 1
        t += 1
    return t, n_fills, n_rejects, n_changes


@njit(cache=True)
def book_columns_nb(changes, held, start, close, book, equity, cash, position):
    """Write the per-bar columns of a run from the changes of its book.

    Bar ``t`` of the run (row ``t``, records' bar ``start + t``) holds the
    cash and positions of the last change at or before it, and its equity is
    those marked at its close by ``mark_nb``, the arithmetic of the run
    itself, so the columns are bit for bit what the run held. An output of
    length 0 is left out.

    Assumptions
    -----------
    ``changes`` are in bar order and the first is at or before bar
    ``start``; ``held`` holds their positions, one column per asset, like
    ``close``. ``book`` is scratch ``asset_dt`` records, one per asset.
    """
    n_bars, n_assets = close.shape
    k = 0
    for i in range(n_assets):
        book[i]["position"] = held[0, i]
    for t in range(n_bars):
        if k + 1 < changes.shape[0] and changes[k + 1]["bar"] <= start + t:
            k += 1
            for i in range(n_assets):
                book[i]["position"] = held[k, i]
        if equity.shape[0]:
            equity[t] = mark_nb(changes[k]["cash"], book, close, t)[0]
        if cash.shape[0]:
            cash[t] = changes[k]["cash"]
        if position.shape[0]:
            for i in range(n_assets):
                position[t, i] = book[i]["position"]


@njit(cache=True, inline="always")
def prices_valid_nb(opens, highs, lows, closes, first, last):
    """Return whether the flat prices ``first`` to ``last - 1`` all follow the rules of a bar.

    One vectorisable pass: ``0 < low <= open, close <= high < inf`` holds for
    valid prices and fails for any NaN.
    """
    broken = 0
    for k in range(np.uint64(first), np.uint64(last)):
        lowest = lows[k]
        highest = highs[k]
        broken += not (
            (lowest > 0.0)
            & (lowest <= opens[k])
            & (lowest <= closes[k])
            & (opens[k] <= highest)
            & (closes[k] <= highest)
            & (highest < np.inf)
        )
    return broken == 0


@njit(cache=True)
def price_violation_nb(open_, high, low, close):
    """Return the first price that breaks the rules of a bar.

    Returns ``(rule, column, bar, asset)``: ``rule`` is 0 when every price is
    valid, 1 for a price that is not finite and > 0 (``column`` 0 to 3 for
    open, high, low and close, checked in that order), 2 for a low above its
    bar's open or close and 3 for a high below them.

    Assumptions
    -----------
    The four arrays have the same 2-D shape and are C-contiguous.
    """
    n_bars, n_assets = open_.shape
    # the passes below run only to find the culprit
    if prices_valid_nb(open_.ravel(), high.ravel(), low.ravel(), close.ravel(), 0, open_.size):
        return 0, 0, 0, 0
    columns = (open_, high, low, close)
    for k in range(4):
        values = columns[k]
        for t in range(n_bars):
            for i in range(n_assets):
                if not (np.isfinite(values[t, i]) and values[t, i] > 0.0):
                    return 1, k, t, i
    for t in range(n_bars):
        for i in range(n_assets):
            if low[t, i] > min(open_[t, i], close[t, i]):
                return 2, 2, t, i
    for t in range(n_bars):
        for i in range(n_assets):
            if high[t, i] < max(open_[t, i], close[t, i]):
                return 3, 1, t, i
    return 0, 0, 0, 0


@njit(cache=True, inline="always")
def inside_nb(value, low, high, nan_ok):
    """Return whether ``value`` lies in ``[low, high]``, or is NaN where ``nan_ok``."""
    return ((value >= low) & (value <= high)) | (nan_ok & (value != value))


@njit(cache=True, inline="always")
def all_inside_nb(flat, first, last, low, high, nan_ok):
    """Return whether every one of ``flat[first:last]`` is ``inside_nb``.

    One vectorisable pass that counts the values outside (a count vectorises
    better than a running boolean), with the NaN rule chosen outside the loop:
    a NaN fails every comparison.
    """
    outside = 0
    if nan_ok:
        for k in range(np.uint64(first), np.uint64(last)):
            outside += (flat[k] < low) | (flat[k] > high)
    else:
        for k in range(np.uint64(first), np.uint64(last)):
            outside += not ((flat[k] >= low) & (flat[k] <= high))
    return outside == 0


@njit(cache=True)
def first_outside_nb(values, low, high, nan_ok):
    """Return the flat index of the first value not ``inside_nb``, or -1 when every one is.

    Assumptions
    -----------
    ``values`` is C-contiguous; ``low`` and ``high`` are in the range (an
    open end is given as the next float inside it).
    """
    flat = values.ravel()
    # the second pass runs only to find the culprit
    if all_inside_nb(flat, 0, flat.size, low, high, nan_ok):
        return -1
    for k in range(flat.size):
        if not inside_nb(flat[k], low, high, nan_ok):
            return k
    return -1


@njit(cache=True, inline="always")
def increasing_nb(values, first, last):
    """Return whether each of ``values[first:last]`` is above the one before it.

    One vectorisable pass.
    """
    increasing = True
    for k in range(np.uint64(max(first, 1)), np.uint64(last)):
        increasing &= values[k] > values[k - np.uint64(1)]
    return increasing


@njit(cache=True)
def first_not_increasing_nb(values):
    """Return the first index whose value is not above the one before it, or -1 when none is.

    Assumptions
    -----------
    ``values`` is 1-D.
    """
    # the second pass runs only to find the culprit
    if increasing_nb(values, 0, values.size):
        return -1
    for k in range(1, values.size):
        if values[k] <= values[k - 1]:
            return k
    return -1


@njit(cache=True, inline="always")
def inputs_inside_nb(values, t, stop, bounds):
    """Return whether a decision input's values of bars ``t`` to ``stop - 1`` lie in ``bounds``.

    Assumptions
    -----------
    ``values`` is a C-contiguous input of ``run_nb`` (1 or T rows) and
    ``bounds`` a ``range_dt`` record.
    """
    first, last = rows_nb(values.shape[0], values.shape[1], t, stop)
    return all_inside_nb(
        values.ravel(), first, last, bounds["low"], bounds["high"], bounds["nan_ok"] != 0
    )


@njit(cache=True)
def checked_run_nb(
    times,
    bounds,
    account,
    assets,
    config,
    markets,
    open_,
    high,
    low,
    close,
    funding,
    target,
    mode,
    risk,
    offset,
    stop_loss,
    take_profit,
    start,
    stop,
    fills,
    n_fills,
    rejects,
    n_rejects,
    changes,
    held,
    n_changes,
):
    """Check the inputs of bars ``start`` to ``stop - 1`` and run them, a chunk at a time.

    Each chunk of about ``CHECK_CHUNK`` bar-asset values is checked (timestamps
    strictly increasing, the prices by the rules of ``price_violation_nb``,
    each decision input inside its range) and then run by ``run_nb`` while its
    inputs are still in cache; ``run_nb`` prefetches the next chunk's inputs
    as it runs, so the checks overlap the loop's work instead of waiting on
    memory in passes of their own. A chunk that breaks a rule is not run.

    Parameters
    ----------
    times : ndarray
        Bar open times, int64, shape (T,).
    bounds : structured ndarray
        ``range_dt`` records: the ranges of ``target``, ``mode``, ``risk``,
        ``offset``, ``stop_loss``, ``take_profit`` and ``funding`` (the
        book's: narrower for a spot book).
    Others
        As for ``run_nb``.

    Returns
    -------
    valid : bool
        False when the chunk from bar ``t`` breaks a rule.
    t, n_fills, n_rejects, n_changes : int
        As ``run_nb`` returns them.

    Assumptions
    -----------
    Shapes and dtypes were checked: prices (T, N), C-contiguous; the decision
    inputs as ``run_nb`` takes them.
    """
    n_assets = open_.shape[1]
    chunk = max(CHECK_CHUNK // n_assets, 1)
    opens, highs, lows, closes = open_.ravel(), high.ravel(), low.ravel(), close.ravel()
    t = start
    while t < stop:
        end = min(t + chunk, stop)
        valid = increasing_nb(times, t, end)
        valid &= prices_valid_nb(opens, highs, lows, closes, t * n_assets, end * n_assets)
        valid &= inputs_inside_nb(target, t, end, bounds[0])
        valid &= inputs_inside_nb(mode, t, end, bounds[1])
        valid &= inputs_inside_nb(risk, t, end, bounds[2])
        valid &= inputs_inside_nb(offset, t, end, bounds[3])
        valid &= inputs_inside_nb(stop_loss, t, end, bounds[4])
        valid &= inputs_inside_nb(take_profit, t, end, bounds[5])
        valid &= inputs_inside_nb(funding, t, end, bounds[6])
        if not valid:
            return False, t, n_fills, n_rejects, n_changes
        reached, n_fills, n_rejects, n_changes = run_nb(
            times,
            account,
            assets,
            config,
            markets,
            open_,
            high,
            low,
            close,
            funding,
            target,
            mode,
            risk,
            offset,
            stop_loss,
            take_profit,
            t,
            end,
            fills,
            n_fills,
            rejects,
            n_rejects,
            changes,
            held,
            n_changes,
        )
        if reached < end:
            return True, reached, n_fills, n_rejects, n_changes
        t = end
    return True, t, n_fills, n_rejects, n_changes
