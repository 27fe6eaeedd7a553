"""The state of a paper session, read from its journal."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.data.times import iso_utc
from engine.paper.journal import Journal, journal_path
from engine.sim.enums import Pending


@dataclass(frozen=True)
class Status:
    """A session's last bar, equity, position and open order, as text where it is shown."""

    last_ts: int | None
    bars: int
    equity: float | None
    position: str
    open_order: str
    fills: int
    drift: str = "-"


def session_status(journal_dir: Path, session: str) -> Status:
    """Return the status of ``session`` from its journal, opened read-only.

    Raises
    ------
    DataError
        If there is no such journal, or the file is not a readable journal.
    """
    journal = Journal.open_existing(journal_path(journal_dir, session), session)
    try:
        return _status(journal)
    finally:
        journal.close()


def _status(journal: Journal) -> Status:
    # The status fields, read from an open journal.
    balances = journal.table("balances")
    if balances.empty:
        return Status(None, 0, None, "-", "-", 0, _drift(journal))
    last = balances.iloc[-1]
    positions = journal.table("positions")
    now = positions[positions["ts"] == last["ts"]]
    held = ", ".join(f"{r.symbol} {r.position:+g}" for r in now.itertuples())
    orders = []
    for r in now.itertuples():
        if r.pending == Pending.MARKET:
            orders.append(f"{r.symbol} market to {r.order_target:+.4f} of equity")
        elif r.pending == Pending.LIMIT:
            orders.append(f"{r.symbol} limit {r.order_qty:+g} at {r.order_price:g}")
    fills = len(journal.table("fills"))
    return Status(
        int(last["ts"]),
        len(balances),
        float(last["equity"]),
        held,
        "; ".join(orders) or "-",
        fills,
        _drift(journal),
    )


def _drift(journal: Journal) -> str:
    # The last drift reading: its alarms (or "ok") and its bar; "-" without one.
    if not journal.has_table("drift"):
        return "-"
    drift = journal.table("drift")
    if drift.empty:
        return "-"
    last = drift.iloc[-1]
    return f"{last['alarms'] or 'ok'} at {iso_utc(int(last['ts']))}"
