"""The crash-safe journal of a paper session: one SQLite database per session.

The database runs in WAL mode with ``synchronous=FULL``. Everything one bar
produced for every asset of the session (the bar, its funding rate and
representation, the component outputs, the portfolio weight, the decision and
the decision state, fills, rejected orders, the balance, the positions with
their open orders, the event loop's state arrays, and the bar's drift reading
and new encoder version when it has them) is written in one transaction, so
after a crash (even ``kill -9``) the journal holds either all of a bar or
none of it. Every per-bar table is keyed by (session, bar timestamp), with
the asset (its index in the session's ``symbols``) where a table has a row
per asset: writing a bar twice is an integrity error, never a silent
duplicate.

The event loop's state is stored as the raw bytes of its ``account_dt`` and
``asset_dt`` records, read back with ``numpy.frombuffer``: nothing is pickled.
"""

from __future__ import annotations

import fcntl
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from engine.errors import ConfigError, DataError, EngineError
from engine.runner.decisions import DecisionState
from engine.runner.drift import READING_FIELDS, Reading
from engine.sim.enums import account_dt, asset_dt, fill_dt, reject_dt

if TYPE_CHECKING:
    from engine.runner.encoders import EncoderVersion

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bars (
    session TEXT NOT NULL, ts INTEGER NOT NULL, asset INTEGER NOT NULL,
    open REAL NOT NULL, high REAL NOT NULL, low REAL NOT NULL, close REAL NOT NULL,
    volume REAL NOT NULL, funding REAL NOT NULL,
    received_ms INTEGER NOT NULL, latency_ms REAL NOT NULL, z BLOB NOT NULL,
    PRIMARY KEY (session, ts, asset));
CREATE TABLE IF NOT EXISTS outputs (
    session TEXT NOT NULL, ts INTEGER NOT NULL, asset INTEGER NOT NULL, name TEXT NOT NULL,
    value REAL, PRIMARY KEY (session, ts, asset, name));
CREATE TABLE IF NOT EXISTS decisions (
    session TEXT NOT NULL, ts INTEGER NOT NULL, asset INTEGER NOT NULL,
    target REAL, risk_scale REAL, mode INTEGER, limit_offset REAL,
    stop_loss REAL, take_profit REAL, weight REAL, refit INTEGER NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (session, ts, asset));
CREATE TABLE IF NOT EXISTS fills (
    session TEXT NOT NULL, ts INTEGER NOT NULL, seq INTEGER NOT NULL, asset INTEGER,
    side INTEGER, quantity REAL, price REAL, fee REAL, slippage REAL,
    liquidity INTEGER, kind INTEGER, reason INTEGER,
    PRIMARY KEY (session, ts, seq));
CREATE TABLE IF NOT EXISTS rejects (
    session TEXT NOT NULL, ts INTEGER NOT NULL, seq INTEGER NOT NULL, asset INTEGER,
    side INTEGER, quantity REAL, price REAL, kind INTEGER, reason INTEGER,
    PRIMARY KEY (session, ts, seq));
CREATE TABLE IF NOT EXISTS balances (
    session TEXT NOT NULL, ts INTEGER NOT NULL, equity REAL, cash REAL, funding REAL,
    maker_fee REAL, taker_fee REAL, slippage REAL, liquidation_fee REAL,
    PRIMARY KEY (session, ts));
CREATE TABLE IF NOT EXISTS positions (
    session TEXT NOT NULL, ts INTEGER NOT NULL, asset INTEGER NOT NULL, symbol TEXT,
    position REAL, entry_price REAL, pending INTEGER, order_target REAL,
    order_qty REAL, order_price REAL, order_ttl INTEGER,
    PRIMARY KEY (session, ts, asset));
CREATE TABLE IF NOT EXISTS book (
    session TEXT NOT NULL, ts INTEGER NOT NULL, account BLOB NOT NULL, assets BLOB NOT NULL,
    PRIMARY KEY (session, ts));
CREATE TABLE IF NOT EXISTS drift (
    session TEXT NOT NULL, ts INTEGER NOT NULL,
    energy REAL, p_value REAL, psi REAL, accuracy REAL, accuracy_low REAL,
    accuracy_high REAL, reference_accuracy REAL, gaps INTEGER, stale INTEGER,
    volume_ratio REAL, alarms TEXT NOT NULL, triggered INTEGER NOT NULL,
    PRIMARY KEY (session, ts));
CREATE TABLE IF NOT EXISTS encoders (
    session TEXT NOT NULL, ts INTEGER NOT NULL, version TEXT NOT NULL, seconds REAL NOT NULL,
    PRIMARY KEY (session, ts));
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, session TEXT NOT NULL, at_ms INTEGER NOT NULL,
    level TEXT NOT NULL, message TEXT NOT NULL);
"""

DEFAULT_JOURNAL_DIR = Path("reports") / "paper"

TABLES = (
    "bars",
    "outputs",
    "decisions",
    "fills",
    "rejects",
    "balances",
    "positions",
    "drift",
    "encoders",
    "events",
)
#: How each table's rows are ordered: by bar, then asset or sequence.
_ORDER = {
    "events": "id",
    "fills": "ts, seq",
    "rejects": "ts, seq",
    "balances": "ts",
    "drift": "ts",
    "encoders": "ts",
}
_ASSET_COLUMNS = (
    "position",
    "entry_price",
    "pending",
    "order_target",
    "order_qty",
    "order_price",
    "order_ttl",
)


@dataclass(frozen=True)
class AssetRecord:
    """What one bar adds to the journal for one asset.

    ``bar`` holds open, high, low, close and volume; ``z`` the bar's
    representation (kept so that a resumed session refits on exactly the
    representations it computed); ``weight`` the portfolio weight its target
    was scaled by.
    """

    bar: dict[str, float]
    z: np.ndarray
    funding_rate: float
    outputs: dict[str, float]
    decision: dict[str, float]
    weight: float
    state: DecisionState


@dataclass(frozen=True)
class BarRecord:
    """Everything one processed bar adds to the journal, for all assets.

    ``per_asset`` holds one ``AssetRecord`` per asset, in the session's
    order; ``balance`` holds equity, cash and the costs of the bar
    (``funding``, ``maker_fee``, ``taker_fee``, ``slippage``,
    ``liquidation_fee``); ``drift`` the bar's drift reading, when it was
    evaluated, and ``encoder`` the encoder version tuned walk-forward for the
    block the bar starts (the bar is the first it encodes). Sessions with
    drift monitoring or encoder refits trade one symbol.
    """

    ts: int
    received_ms: int
    latency_ms: float
    refit: bool  # the bar starts a refit block
    per_asset: list[AssetRecord]
    fills: np.ndarray
    rejects: np.ndarray
    balance: dict[str, float]
    account: np.ndarray
    assets: np.ndarray
    drift: Reading | None = None
    encoder: EncoderVersion | None = None


@dataclass(frozen=True)
class Resume:
    """The state a session continues from: its last bar, book and each asset's decision state."""

    last_ts: int
    account: np.ndarray
    assets: np.ndarray
    states: list[DecisionState]


class Journal:
    """The journal of one session, in ``<folder>/<session>.sqlite``.

    Parameters
    ----------
    path : Path
        The database file; created with its tables when missing.
    session : str
        The session's name, the first part of every key.
    """

    def __init__(self, path: Path, session: str, read_only: bool = False) -> None:
        self.path, self.session = path, session
        self._symbol_names: list[str] | None = None
        if path.is_file() and path.stat().st_size > 0:
            self._db = _open_journal(path, read_only)
            if read_only:
                return
        elif read_only:
            raise DataError(f"{path}: not a paper journal (an empty file)")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    @classmethod
    def open_existing(cls, path: Path, session: str) -> Journal:
        """Open the journal of an existing session read-only, or raise a clear error."""
        if not path.is_file():
            raise DataError(f"no paper session {session!r}: {path} does not exist")
        return cls(path, session, read_only=True)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def meta(self) -> dict[str, str]:
        """Return the session's metadata (config hash, strategy, first bar, ...)."""
        return dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    def start(self, meta: dict[str, str], force: bool) -> None:
        """Record a new session's metadata, or check a resumed one's config hash.

        Raises
        ------
        ConfigError
            If the session exists with another config hash and ``force`` is false.
        """
        known = self.meta()
        if known and known["config_sha256"] != meta["config_sha256"] and not force:
            raise ConfigError(
                f"paper session {self.session!r} was started with another configuration "
                f"(config hash {known['config_sha256'][:12]}, now {meta['config_sha256'][:12]}); "
                "resume it with the same strategy, or pass --force to continue with this one"
            )
        rows = [*meta.items(), ("session", self.session)]
        if known:
            rows = [
                (name, meta[name]) for name in ("config_sha256", "config", "model") if name in meta
            ]
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(rows))

    def log(self, at_ms: int, level: str, message: str) -> None:
        """Record an event (a retry, an outage, a catch-up) in the journal."""
        self._db.execute(
            "INSERT INTO events (session, at_ms, level, message) VALUES (?, ?, ?, ?)",
            (self.session, at_ms, level, message),
        )

    def record(self, record: BarRecord) -> None:
        """Write everything one bar produced in one transaction.

        Raises
        ------
        DataError
            If SQLite cannot write (a full disk, a read-only file); the
            transaction is rolled back, so the journal ends at the bar before.
        """
        s, ts = self.session, record.ts
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for i, a in enumerate(record.per_asset):
                bar = a.bar
                db.execute(
                    "INSERT INTO bars VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (s, ts, i, bar["open"], bar["high"], bar["low"], bar["close"], bar["volume"])
                    + (a.funding_rate, record.received_ms, record.latency_ms, a.z.tobytes()),
                )
                db.executemany(
                    "INSERT INTO outputs VALUES (?, ?, ?, ?, ?)",
                    [(s, ts, i, name, float(value)) for name, value in sorted(a.outputs.items())],
                )
                d = a.decision
                db.execute(
                    "INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (s, ts, i, d["target"], d["risk_scale"], int(d["mode"]), d["limit_offset"])
                    + (d["stop_loss"], d["take_profit"], float(a.weight), int(record.refit))
                    + (json.dumps(asdict(a.state)),),
                )
            db.executemany(
                "INSERT INTO fills VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(s, ts, k, *_plain(f, fill_dt.names[1:])) for k, f in enumerate(record.fills)],
            )
            db.executemany(
                "INSERT INTO rejects VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(s, ts, k, *_plain(r, reject_dt.names[1:])) for k, r in enumerate(record.rejects)],
            )
            b = record.balance
            db.execute(
                "INSERT INTO balances VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (s, ts, b["equity"], b["cash"], b["funding"], b["maker_fee"], b["taker_fee"])
                + (b["slippage"], b["liquidation_fee"]),
            )
            db.executemany(
                "INSERT INTO positions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (s, ts, i, symbol, *_plain(a, _ASSET_COLUMNS))
                    for i, (symbol, a) in enumerate(zip(self.symbols, record.assets, strict=True))
                ],
            )
            db.execute(
                "INSERT INTO book VALUES (?, ?, ?, ?)",
                (s, ts, record.account.tobytes(), record.assets.tobytes()),
            )
            if record.drift is not None:
                reading = asdict(record.drift)
                db.execute(
                    f"INSERT INTO drift VALUES (?, ?{', ?' * len(READING_FIELDS)})",  # noqa: S608
                    (s, ts, *(reading[name] for name in READING_FIELDS)),
                )
            if record.encoder is not None:
                db.execute(
                    "INSERT INTO encoders VALUES (?, ?, ?, ?)",
                    (s, ts, record.encoder.version, record.encoder.seconds),
                )
            db.execute("COMMIT")
        except BaseException as exc:
            # SQLite may already have rolled back (a full disk does): a second
            # rollback would hide the real error.
            if db.in_transaction:
                db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError):
                raise DataError(
                    f"{self.path}: bar {ts} not journaled ({exc}); the journal holds every "
                    "bar before it, and the session resumes from there"
                ) from None
            raise

    @property
    def symbols(self) -> list[str]:
        """Return the symbols the session trades, in asset order."""
        if self._symbol_names is None:
            self._symbol_names = json.loads(self.meta()["symbols"])
        return self._symbol_names

    def resume(self) -> Resume | None:
        """Return the state after the last bar, or None for a session with no bar yet.

        Raises
        ------
        DataError
            If the saved book does not fit this engine's record dtypes.
        """
        row = self._db.execute(
            "SELECT ts, account, assets FROM book WHERE session = ? ORDER BY ts DESC LIMIT 1",
            (self.session,),
        ).fetchone()
        if row is None:
            return None
        if len(row[1]) != account_dt.itemsize or len(row[2]) % asset_dt.itemsize:
            raise DataError(
                f"{self.path}: the saved book of session {self.session!r} does not match this "
                "engine's account and asset records (a journal of another version); "
                "start a new session"
            )
        states = self._db.execute(
            "SELECT state FROM decisions WHERE session = ? AND ts = ? ORDER BY asset",
            (self.session, row[0]),
        ).fetchall()
        account = np.frombuffer(row[1], dtype=account_dt).copy()
        assets = np.frombuffer(row[2], dtype=asset_dt).copy()
        states = [DecisionState(**json.loads(state)) for (state,) in states]
        return Resume(int(row[0]), account, assets, states)

    def has_table(self, name: str) -> bool:
        """Return whether the journal has table ``name`` (older journals lack newer tables)."""
        row = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()
        return row is not None

    def table(self, name: str) -> pd.DataFrame:
        """Return one table of this session, ordered by bar (and sequence)."""
        if name not in TABLES:
            raise ValueError(f"unknown journal table {name!r}; expected one of {TABLES}")
        order = _ORDER.get(name, "ts, asset")
        try:
            return pd.read_sql_query(
                f"SELECT * FROM {name} WHERE session = ? ORDER BY {order}",  # noqa: S608
                self._db,
                params=(self.session,),
            )
        except (sqlite3.DatabaseError, pd.errors.DatabaseError) as exc:
            raise DataError(f"{self.path}: not a readable paper journal ({exc})") from None


def _open_journal(path: Path, read_only: bool) -> sqlite3.Connection:
    # A connection to the journal at `path`, after checking that the file is a
    # journal: SQLite that passes its quick check, with every table of one.
    # Read-only, nothing is written: with no write-ahead log beside it (no
    # session running) the file is opened as immutable, so that SQLite does
    # not create one.
    mode = "rw"
    if read_only:
        mode = "ro" if path.with_name(path.name + "-wal").exists() else "ro&immutable=1"
    try:
        db = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode={mode}", uri=True, isolation_level=None
        )
        check = db.execute("PRAGMA quick_check").fetchone()[0]
        found = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    except sqlite3.Error as exc:
        raise DataError(f"{path}: not a paper journal ({exc})") from None
    missing = [name for name in ("meta", "book", *TABLES) if name not in found]
    if check != "ok" or missing:
        db.close()
        problem = f"no table {', '.join(missing)}" if check == "ok" else check
        raise DataError(
            f"{path}: not a paper journal ({problem}); "
            "expected a journal written by `engine paper run`"
        )
    return db


def journal_path(journal_dir: Path, session: str) -> Path:
    """Return the journal file of a session."""
    return journal_dir / f"{session}.sqlite"


@contextmanager
def session_lock(journal_dir: Path, session: str) -> Iterator[Path]:
    """Hold the lock of a session while it runs, so that no second run opens its journal.

    The lock is an ``flock`` on ``journal_dir/<session>.lock``: the system
    releases it when the process ends, however it ends.

    Raises
    ------
    EngineError
        If another process holds the lock.
    """
    journal_dir.mkdir(parents=True, exist_ok=True)
    path = journal_dir / f"{session}.lock"
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EngineError(
                f"paper session {session!r} is already running (another process holds {path}); "
                "stop it before starting it again"
            ) from None
        yield path


def _plain(record: np.void, names: tuple[str, ...]) -> list[float | int]:
    # The named fields of a structured record as Python numbers, for sqlite.
    return [record[name].item() for name in names]
