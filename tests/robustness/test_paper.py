"""Paper sessions and output folders: concurrency, unfetchable bars, unwritable or full
outputs, and ``--from-run`` folders that are not what they claim."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from fakes.exchange import fake_exchange

from engine.config import StrategyConfig
from engine.data.retry import RetryPolicy
from engine.data.store import CandleStore, SeriesKey
from engine.paper.journal import session_lock
from engine.paper.session import PaperSession, SessionOptions

REPO_ROOT = Path(__file__).resolve().parents[2]
STRATEGY = REPO_ROOT / "strategies" / "ssl_cost.yaml"
CANDLES = "bybit_linear_BTCUSDT_1h.parquet"
FUNDING = "bybit_linear_BTCUSDT_funding_8h.parquet"
HOUR = 3_600_000


def _ms(day: str) -> int:
    return int(pd.Timestamp(day, tz="UTC").value // 1_000_000)


def test_second_paper_run_on_a_running_session_is_refused(refused, tmp_path):
    journals = tmp_path / "journals"
    with session_lock(journals, "s"):
        refused(
            "paper",
            "run",
            STRATEGY,
            "--session",
            "s",
            "--journal-dir",
            journals,
            "--models-dir",
            REPO_ROOT / "models",
            says="paper session 's' is already running",
        )
    assert sorted(p.name for p in journals.iterdir()) == ["s.lock"]


def test_session_lock_is_released_when_the_run_ends(tmp_path):
    with session_lock(tmp_path, "s"):
        pass
    with session_lock(tmp_path, "s"):
        pass


def test_a_bar_that_keeps_failing_logs_attempts_1_2_4_8_only(shared_data, tmp_path):
    spec = yaml.safe_load(STRATEGY.read_text())
    spec["encoder"] = None
    spec["representation"] = {"kind": "features"}
    spec["walk_forward"] = {"fit_bars": 500, "refit_every": 240, "embargo_bars": 5}
    spec["out_of_sample"] = {"start": "2025-06-01"}
    config = StrategyConfig(**spec)
    candles = pd.read_parquet(shared_data / CANDLES)
    store = CandleStore(tmp_path / "store")
    key = SeriesKey("bybit", "linear", "BTCUSDT", "1h")
    store.write(key, candles[candles.timestamp < _ms("2025-06-01")])
    shutil.copy(shared_data / FUNDING, store.root / FUNDING)
    options = SessionOptions(
        "s",
        journal_dir=tmp_path / "journals",
        models_dir=REPO_ROOT / "models",
        until_ms=_ms("2025-06-01") + 2 * HOUR,
        retry=RetryPolicy(retries=0, base_delay_s=0.0, max_delay_s=0.0),
        outage_pause_ms=HOUR,
    )
    with fake_exchange(config, shared_data / CANDLES, store, options.retry) as (
        fake,
        source,
        clock,
    ):
        paper = PaperSession(config, options, source, clock, store)
        clock.jump(paper.last_ts + paper.interval)
        fake.inject("server_error", times=100)
        processed = paper.run()
        events = paper.journal.table("events")
        paper.close()
    assert processed == 2
    attempts = events["message"].str.extract(r"\(attempt (\d+)\)")[0].dropna().astype(int)
    assert attempts.tolist() == [1, 2, 4, 8, 16, 32, 64]


@pytest.mark.parametrize("command", ["run", "compare", "evaluate", "paper_report"])
@pytest.mark.parametrize("where", ["a_file", "under_a_file"])
def test_unwritable_reports_dir_is_refused_before_any_work(command, where, refused, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    reports = blocker if where == "a_file" else blocker / "reports"
    strategies = REPO_ROOT / "strategies"
    args = {
        "run": ["run", strategies / "sma_cross.yaml"],
        "compare": ["compare", strategies / "sma_cross.yaml", strategies / "buy_and_hold.yaml"],
        "evaluate": ["evaluate", REPO_ROOT / "configs" / "evaluate" / "seed_tables.yaml"],
        "paper_report": ["paper", "report", "s", "--journal-dir", tmp_path / "j"],
    }[command]
    refused(*args, "--reports-dir", reports, stored=[blocker], says="--reports-dir", bound=2.0)


def test_unwritable_journal_dir_is_refused_before_the_session_starts(refused, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    refused(
        "paper",
        "run",
        STRATEGY,
        "--journal-dir",
        blocker,
        "--models-dir",
        REPO_ROOT / "models",
        stored=[blocker],
        says="--journal-dir",
    )


def test_full_disk_while_writing_the_run_folder_leaves_no_partial_folder(
    refused, tmp_path, monkeypatch, shared_data
):
    import engine.report.tearsheet

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(engine.report.tearsheet, "write_tearsheet", full)
    monkeypatch.setenv("ENGINE_OFFLINE", "1")
    monkeypatch.setenv("ENGINE_DATA_DIR", str(shared_data))
    reports = tmp_path / "reports"
    refused(
        "run",
        REPO_ROOT / "strategies" / "sma_cross.yaml",
        "--reports-dir",
        reports,
        says="No space left on device",
        bound=30.0,
    )
    assert list(reports.iterdir()) == []


def _run_folder(tmp_path, text: str | None) -> Path:
    folder = tmp_path / "run"
    folder.mkdir()
    if text is not None:
        (folder / "config.yaml").write_text(text, encoding="utf-8")
    return folder


FROM_RUN_CASES = {
    "from_run_config_that_is_malformed_yaml": ("name: [ssl_cost\n", "YAML syntax error"),
    "from_run_config_that_is_a_list": ("- ssl_cost\n", "expected a mapping"),
    "from_run_config_that_fails_the_schema": ("name: ssl_cost\n", "invalid strategy config"),
    "from_run_config_that_is_a_yaml_bomb": (
        "a0: &a0 [x, x]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]\n" for i in range(1, 40)),
        "aliases expand",
    ),
    "from_run_config_with_a_duplicate_key": (
        STRATEGY.read_text() + "costs: {maker_fee: 0.0}\n",
        "key 'costs' is given twice",
    ),
    "from_run_config_that_is_missing": (None, "no such file"),
    "from_run_of_another_strategy": (
        STRATEGY.read_text().replace("name: ssl_cost", "name: other"),
        "is a run of 'other'",
    ),
    "from_run_config_that_is_binary": ("\x00\x01\x02", "binary data"),
}


@pytest.mark.parametrize("case", sorted(FROM_RUN_CASES))
def test_from_run_folder_with_a_bad_config_is_refused(case, refused, tmp_path):
    text, says = FROM_RUN_CASES[case]
    folder = _run_folder(tmp_path, text)
    refused(
        "paper",
        "run",
        STRATEGY,
        "--from-run",
        folder,
        "--journal-dir",
        tmp_path / "journals",
        "--models-dir",
        REPO_ROOT / "models",
        stored=[folder],
        says=says,
    )
    assert not (tmp_path / "journals").exists()


def test_from_run_folder_that_does_not_exist_is_refused(refused, tmp_path):
    refused(
        "paper",
        "run",
        STRATEGY,
        "--from-run",
        tmp_path / "absent",
        "--models-dir",
        REPO_ROOT / "models",
        says="no such run folder",
    )
