"""A plain-Python book that follows the rules written in ``engine.sim.nb``.

It shares no code with the kernels: it reads its inputs as nested lists of
Python floats and keeps its state in dictionaries, so that a disagreement with
the kernel points at a bug in one of the two. Its arithmetic is written in the
same order as the rules state it, so the two agree to rounding.
"""

from __future__ import annotations

import math

import numpy as np

BUY, SELL = 0, 1
TAKER, MAKER = 0, 1
MARKET, LIMIT, STOP_LOSS, TAKE_PROFIT, LIQUIDATION = 0, 1, 2, 3, 4
MODE_MARKET, MODE_LIMIT, MODE_WAIT = 0, 1, 2
(
    NONE,
    BELOW_MIN_QTY,
    BELOW_MIN_NOTIONAL,
    NO_EQUITY,
    NO_CASH,
    LEVERAGE_CAP,
    SHORT_NOT_ALLOWED,
    LIMIT_EXPIRED,
    CANCELLED_BY_STOP,
    CANCELLED_BY_LIQUIDATION,
    CLIPPED_BY_CASH,
    CLIPPED_BY_LEVERAGE,
    CLIPPED_LONG_ONLY,
    GAP_AT_OPEN,
) = range(14)
TOL = 1e-9


def _grid(values, n_bars: int, n_assets: int) -> list[list[float]]:
    # a (T, N) list of lists from a scalar or an array that broadcasts to it
    array = np.asarray(values, dtype=np.float64)
    if array.ndim < 2:
        array = array.reshape(-1, 1)
    return [[float(x) for x in row] for row in np.broadcast_to(array, (n_bars, n_assets))]


class ReferenceBook:
    """Cash, positions and resting orders of N assets, advanced one bar at a time."""

    def __init__(self, n_assets: int, cash: float, config: dict, markets: list[dict]) -> None:
        self.cash = cash
        self.equity = cash
        self.config = config
        self.markets = markets
        self.bar = 0
        self.assets = [
            {
                "position": 0.0,
                "entry": 0.0,
                "sl": math.nan,
                "tp": math.nan,
                "order": None,  # ("market", frac) or ("limit", signed qty, price, ttl)
            }
            for _ in range(n_assets)
        ]
        self.fills: list[tuple] = []
        self.rejects: list[tuple] = []

    # --- valuation -------------------------------------------------------------

    def value(self, prices: list[float]) -> float:
        total = self.cash
        for asset, price in zip(self.assets, prices, strict=True):
            total += asset["position"] * price
        return total

    def gross_without(self, prices: list[float], skip: int) -> float:
        total = 0.0
        for j, (asset, price) in enumerate(zip(self.assets, prices, strict=True)):
            if j != skip:
                total += abs(asset["position"]) * price
        return total

    # --- bookkeeping -----------------------------------------------------------

    def trade(self, i: int, side: int, qty: float, price: float, fee: float) -> None:
        asset = self.assets[i]
        old = asset["position"]
        signed = qty if side == BUY else -qty
        self.cash -= signed * price + fee
        new = old + signed
        if abs(new) <= TOL * max(abs(old), qty):
            new = 0.0
        if new == 0.0:
            asset["entry"] = 0.0
        elif old == 0.0 or (old > 0.0) != (new > 0.0):
            asset["entry"] = price
        elif abs(new) > abs(old):
            asset["entry"] = (abs(old) * asset["entry"] + qty * price) / abs(new)
        asset["position"] = new

    def fill(self, i, side, qty, price, fee, slip, liquidity, kind, reason) -> None:
        self.fills.append((self.bar, i, side, qty, price, fee, slip, liquidity, kind, reason))

    def reject(self, i, side, qty, price, kind, reason) -> None:
        self.rejects.append((self.bar, i, side, qty, price, kind, reason))

    def rounded(self, i: int, qty: float, price: float) -> tuple[float, int]:
        market = self.markets[i]
        step = market["qty_step"]
        if step > 0.0:
            qty = math.floor(qty / step + TOL) * step
        if qty <= 0.0 or qty < market["min_qty"]:
            return qty, BELOW_MIN_QTY
        if qty * price < market["min_notional"]:
            return qty, BELOW_MIN_NOTIONAL
        return qty, NONE

    def allowed(self, i, side, qty, price, fee_rate, opens) -> tuple[float, int, int]:
        cfg = self.config
        pos = self.assets[i]["position"]
        reason = NONE
        if cfg["spot"] and side == SELL:
            if pos <= 0.0:
                return 0.0, reason, SHORT_NOT_ALLOWED
            if qty > pos:
                qty, reason = pos, CLIPPED_LONG_ONLY
        if side == BUY and (cfg["spot"] or cfg["sizing"] == "cash"):
            if self.cash <= 0.0:
                return 0.0, reason, NO_CASH
            most = self.cash / (price * (1.0 + fee_rate))
            if qty > most:
                qty, reason = most, CLIPPED_BY_CASH
        if not cfg["spot"] and cfg["sizing"] == "margin":
            after = abs(pos + qty) if side == BUY else abs(pos - qty)
            if after > abs(pos):
                room = (
                    cfg["max_leverage"] * self.value(opens) - self.gross_without(opens, i)
                ) / opens[i]
                if after > room * (1.0 + TOL):
                    room = max(room, 0.0)
                    same_way = pos == 0.0 or (pos > 0.0) == (side == BUY)
                    most = room - abs(pos) if same_way else abs(pos) + room
                    if most <= 0.0:
                        return 0.0, reason, LEVERAGE_CAP
                    qty, reason = most, CLIPPED_BY_LEVERAGE
        qty, refusal = self.rounded(i, qty, price)
        return qty, reason, refusal

    def taker_price(self, price, side, high, low) -> float:
        slip = self.config["slippage"]
        return min(price * (1.0 + slip), high) if side == BUY else max(price * (1.0 - slip), low)

    # --- the bar ---------------------------------------------------------------

    def step(self, o, h, lo, c, funding, target, mode, risk, offset, sl, tp) -> dict:
        cfg = self.config
        ledger = dict.fromkeys(
            ("maker_fee", "taker_fee", "slippage", "funding", "liquidation_fee"), 0.0
        )
        n = len(self.assets)
        # 1. funding
        if not cfg["spot"]:
            for i, asset in enumerate(self.assets):
                rate = funding[i]
                if asset["position"] != 0.0 and rate == rate and rate != 0.0:
                    paid = rate * asset["position"] * o[i]
                    self.cash -= paid
                    ledger["funding"] += paid
        # 2. market orders at the open
        for i, asset in enumerate(self.assets):
            order = asset["order"]
            if order is None or order[0] != "market":
                continue
            asset["order"] = None
            frac = order[1]
            equity = self.value(o)
            if equity <= 0.0 and frac != 0.0:
                self.reject(i, BUY if frac > 0.0 else SELL, math.nan, o[i], MARKET, NO_EQUITY)
                continue
            pos = asset["position"]
            want = frac * equity / o[i]
            delta = want - pos
            if abs(delta) <= TOL * max(abs(want), abs(pos)):
                continue
            side = BUY if delta > 0.0 else SELL
            price = self.taker_price(o[i], side, h[i], lo[i])
            qty, reason, refusal = self.allowed(i, side, abs(delta), price, cfg["taker_fee"], o)
            if refusal != NONE:
                self.reject(i, side, abs(delta), price, MARKET, refusal)
                continue
            fee = qty * price * cfg["taker_fee"]
            slip = qty * abs(price - o[i])
            self.trade(i, side, qty, price, fee)
            ledger["taker_fee"] += fee
            ledger["slippage"] += slip
            self.fill(i, side, qty, price, fee, slip, TAKER, MARKET, reason)
        # 3. stops
        for i, asset in enumerate(self.assets):
            pos = asset["position"]
            if pos == 0.0:
                continue
            entry, sl_dist, tp_dist = asset["entry"], asset["sl"], asset["tp"]
            hit = None
            if pos > 0.0:
                sl_level, tp_level = entry * (1.0 - sl_dist), entry * (1.0 + tp_dist)
                if o[i] <= sl_level:
                    hit = (STOP_LOSS, o[i], GAP_AT_OPEN)
                elif o[i] >= tp_level:
                    hit = (TAKE_PROFIT, o[i], GAP_AT_OPEN)
                elif lo[i] <= sl_level:
                    hit = (STOP_LOSS, sl_level, NONE)
                elif h[i] >= tp_level:
                    hit = (TAKE_PROFIT, tp_level, NONE)
            else:
                sl_level, tp_level = entry * (1.0 + sl_dist), entry * (1.0 - tp_dist)
                if o[i] >= sl_level:
                    hit = (STOP_LOSS, o[i], GAP_AT_OPEN)
                elif o[i] <= tp_level:
                    hit = (TAKE_PROFIT, o[i], GAP_AT_OPEN)
                elif h[i] >= sl_level:
                    hit = (STOP_LOSS, sl_level, NONE)
                elif lo[i] <= tp_level:
                    hit = (TAKE_PROFIT, tp_level, NONE)
            if hit is None:
                continue
            kind, level, reason = hit
            side = SELL if pos > 0.0 else BUY
            price = self.taker_price(level, side, h[i], lo[i])
            qty = abs(pos)
            fee = qty * price * cfg["taker_fee"]
            slip = qty * abs(price - level)
            self.trade(i, side, qty, price, fee)
            ledger["taker_fee"] += fee
            ledger["slippage"] += slip
            self.fill(i, side, qty, price, fee, slip, TAKER, kind, reason)
            self.cancel_limit(i, CANCELLED_BY_STOP)
        # 4. resting limit orders
        for i, asset in enumerate(self.assets):
            order = asset["order"]
            if order is None or order[0] != "limit":
                continue
            _, signed, limit, ttl = order
            if signed > 0.0:
                side, touched, price = BUY, lo[i] < limit, min(limit, o[i])
            else:
                side, touched, price = SELL, h[i] > limit, max(limit, o[i])
            if not touched:
                if ttl - 1 <= 0:
                    self.cancel_limit(i, LIMIT_EXPIRED)
                else:
                    asset["order"] = ("limit", signed, limit, ttl - 1)
                continue
            asset["order"] = None
            qty, reason, refusal = self.allowed(i, side, abs(signed), price, cfg["maker_fee"], o)
            if refusal != NONE:
                self.reject(i, side, abs(signed), price, LIMIT, refusal)
                continue
            if reason == NONE and price != limit:
                reason = GAP_AT_OPEN
            fee = qty * price * cfg["maker_fee"]
            self.trade(i, side, qty, price, fee)
            ledger["maker_fee"] += fee
            self.fill(i, side, qty, price, fee, 0.0, MAKER, LIMIT, reason)
        # 5. mark at the close
        self.equity = self.value(c)
        gross = 0.0
        for asset, price in zip(self.assets, c, strict=True):
            gross += abs(asset["position"]) * price
        # 6. liquidation (cross margin)
        if not cfg["spot"] and gross > 0.0 and self.equity < cfg["maintenance_margin"] * gross:
            for i, asset in enumerate(self.assets):
                pos = asset["position"]
                if pos != 0.0:
                    side = SELL if pos > 0.0 else BUY
                    fee = abs(pos) * c[i] * cfg["liquidation_fee"]
                    self.trade(i, side, abs(pos), c[i], fee)
                    ledger["liquidation_fee"] += fee
                    self.fill(i, side, abs(pos), c[i], fee, 0.0, TAKER, LIQUIDATION, NONE)
                self.cancel_limit(i, CANCELLED_BY_LIQUIDATION)
            self.equity = self.value(c)
        # 7. decisions for the next bar
        for i in range(n):
            asset = self.assets[i]
            asset["sl"], asset["tp"] = sl[i], tp[i]
            frac = target[i] * risk[i]
            if mode[i] == MODE_WAIT or frac != frac:
                continue
            asset["order"] = None
            if mode[i] == MODE_MARKET:
                asset["order"] = ("market", frac)
                continue
            if self.equity <= 0.0 and frac != 0.0:
                self.reject(i, BUY if frac > 0.0 else SELL, math.nan, c[i], LIMIT, NO_EQUITY)
                continue
            pos = asset["position"]
            want = frac * self.equity / c[i]
            delta = want - pos
            if abs(delta) <= TOL * max(abs(want), abs(pos)):
                continue
            if delta > 0.0:
                side, limit = BUY, c[i] * (1.0 - offset[i])
            else:
                side, limit = SELL, c[i] * (1.0 + offset[i])
            qty, refusal = self.rounded(i, abs(delta), limit)
            if refusal != NONE:
                self.reject(i, side, abs(delta), limit, LIMIT, refusal)
                continue
            asset["order"] = ("limit", qty if side == BUY else -qty, limit, cfg["limit_ttl"])
        self.bar += 1
        return ledger

    def cancel_limit(self, i: int, reason: int) -> None:
        order = self.assets[i]["order"]
        if order is None or order[0] != "limit":
            return
        _, signed, limit, _ = order
        self.assets[i]["order"] = None
        self.reject(i, BUY if signed > 0.0 else SELL, abs(signed), limit, LIMIT, reason)


def reference_run(
    open_,
    high,
    low,
    close,
    *,
    target,
    mode,
    risk,
    offset,
    stop_loss,
    take_profit,
    funding,
    config: dict,
    markets: list[dict],
    cash: float,
) -> dict:
    """Run the reference book over every bar and return its outputs as arrays and lists.

    ``config`` holds maker_fee, taker_fee, slippage (a fraction), liquidation_fee,
    maintenance_margin, max_leverage, sizing ("margin" or "cash"), spot and
    limit_ttl. Per-bar inputs broadcast to (T, N) as in ``engine.sim.simulate``.
    """
    prices = [np.asarray(p, dtype=np.float64) for p in (open_, high, low, close)]
    prices = [p.reshape(-1, 1) if p.ndim == 1 else p for p in prices]
    n_bars, n_assets = prices[0].shape
    o, h, lo, c = ([[float(x) for x in row] for row in p] for p in prices)
    grids = [
        _grid(x, n_bars, n_assets)
        for x in (funding, target, mode, risk, offset, stop_loss, take_profit)
    ]
    book = ReferenceBook(n_assets, cash, config, markets)
    equity, cash_out, ledgers, position = [], [], [], []
    for t in range(n_bars):
        row = [g[t] for g in grids]
        row[2] = [int(m) for m in row[2]]
        ledger = book.step(o[t], h[t], lo[t], c[t], *row)
        equity.append(book.equity)
        cash_out.append(book.cash)
        ledgers.append(ledger)
        position.append([a["position"] for a in book.assets])
    return {
        "equity": np.array(equity),
        "cash": np.array(cash_out),
        "funding": np.array([ledger["funding"] for ledger in ledgers]),
        "ledger": {name: np.array([ledger[name] for ledger in ledgers]) for name in ledgers[0]},
        "position": np.array(position),
        "fills": book.fills,
        "rejects": book.rejects,
    }
