"""Run a paper session with a bar stream against the fake Bybit server until SIGTERM or SIGINT.

``python tests/e2e/streamed_session.py STRATEGY CANDLES JOURNAL_DIR SPEED`` serves the
candles (and the store's funding) from the fake server, watches its stream and
stops as ``engine paper run`` does on a signal: after the current bar. It
prints ``processed N bars``.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

from fakes.exchange import fake_client, fake_exchange  # noqa: E402

from engine.config import StrategyConfig, load_config  # noqa: E402
from engine.data.store import CandleStore  # noqa: E402
from engine.paper.session import PaperSession, SessionOptions  # noqa: E402


def main() -> None:
    """Run the session until a signal, then print how many bars it processed."""
    strategy, candles, journal_dir, speed = sys.argv[1:5]
    config = load_config(Path(strategy), StrategyConfig)
    store = CandleStore(config.store.path)
    options = SessionOptions("s", journal_dir=Path(journal_dir))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with fake_exchange(config, Path(candles), store, options.retry) as (fake, source, clock):
        clock.speed = float(speed)
        stream = fake_client(fake, config.market.exchange, streaming=True)
        session = PaperSession(config, options, source, clock, store, stream)
        clock.jump(session.last_ts + session.interval)
        try:
            processed = session.run(stop)
        finally:
            session.close()
    print(f"processed {processed} bars")


if __name__ == "__main__":
    main()
