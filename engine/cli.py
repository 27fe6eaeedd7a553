"""The ``engine`` command line: parse, call, print.

Every command is thin: it turns arguments into calls into the package and
prints the result for a person. Errors a user can cause are ``EngineError``s:
they are printed as one message, without a traceback unless ``--debug`` is
given, and the exit code is 2.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from engine import config
from engine.atomic import check_writable
from engine.errors import ConfigError, DataError, EngineError
from engine.progress import Progress


def _conventional_help() -> None:
    # Typer shows arguments as {strategy} and values as <bool>, <list[Path]>; show them as
    # well-kept command lines do: arguments as STRATEGY or STRATEGIES..., values as PATH,
    # TEXT, INTEGER or [rest|ws] (or an option's own metavar), and flags bare.
    from typer.core import TyperArgument, TyperOption

    def argument_name(param) -> str:
        return param.metavar or param.name.upper()

    def argument_usage(param) -> str:
        name = argument_name(param) if param.required else f"[{argument_name(param)}]"
        return name + ("..." if param.nargs != 1 else "")

    typed = TyperOption.display_type  # "<str>", "<int range>", "<rest|ws>", ...
    names = {"str": "TEXT", "int": "INTEGER"}

    def option_value(param, ctx) -> str | None:
        if param.is_flag or param.count:
            return None
        if param.metavar is not None:
            return param.metavar
        label = typed(param, ctx).strip("<>")
        if param.type_descriptor.is_choice or param.type_descriptor.is_datetime:
            value = f"[{label}]"  # the choices, or the formats of a date
        else:
            word = label.split()[0]
            value = names.get(word, word.upper())
        return value + ("..." if param.nargs != 1 else "")

    TyperArgument.display_name_raw = property(argument_name)
    TyperArgument._usage_display_name = argument_usage
    TyperArgument.display_type_rich = lambda param, ctx: None
    TyperOption.display_type_rich = option_value


_conventional_help()
app = typer.Typer(
    help="Backtest and paper-trade crypto strategies built on self-supervised encoders.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
data_app = typer.Typer(
    help="The candle store: fetch, import, list and check.", no_args_is_help=True
)
app.add_typer(data_app, name="data")
paper_app = typer.Typer(
    help="Paper trading on live bars: run (or resume) a session, its status, its report.",
    no_args_is_help=True,
)
app.add_typer(paper_app, name="paper")
models_app = typer.Typer(
    help="The model registry: list versions, show one, compare two, migrate old folders.",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")

# Output that is not a terminal (a log, a pipe) gets wide tables rather than
# tables cut to 80 columns.
_WIDTH = None if sys.stdout.isatty() else 160
console = Console(width=_WIDTH)
err_console = Console(stderr=True, width=_WIDTH)
_options = {"debug": False}


# Commands that fit nothing: they answer without loading the libraries whose thread pools
# `_fit_on_one_thread` limits (scikit-learn alone takes a second or more to import).
# `paper run` limits them itself, once it has said what it is starting.
_FITS_NOTHING = ("validate", "data", "models", "paper")


def _fit_on_one_thread(ctx: typer.Context) -> None:
    # BLAS and scikit-learn's OpenMP run on one thread for the rest of the command
    # (`engine.threads`): the engine's matrices are small, and waiting for a second thread
    # on a busy machine made walk-forward fitting several times slower than one thread.
    from engine.threads import one_thread

    ctx.with_resource(one_thread())


@app.callback()
def _root(
    ctx: typer.Context,
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback on errors."),
) -> None:
    _options["debug"] = debug
    if ctx.invoked_subcommand not in _FITS_NOTHING:
        _fit_on_one_thread(ctx)


_MODELS_HELP = "The model registry: versions of pretrained encoders (models/<name>/<version>/)."
_MLFLOW_HELP = (
    "Log to MLflow (the [mlflow] extra): to $ENGINE_MLFLOW_URI, else a local store in "
    "reports/mlflow/. Setting ENGINE_MLFLOW_URI turns logging on without this flag."
)


def _tracking(enabled: bool, reports_dir: Path) -> str | None:
    # The tracking URI, checked before any work starts; None when tracking is off.
    from engine.tracking import require_mlflow, tracking_uri

    uri = tracking_uri(enabled, reports_dir)
    if uri is not None:
        require_mlflow()
    return uri


_STORE_HELP = "Candle store folder; default $ENGINE_DATA_DIR, else ./data."
# How a time is given on the command line (engine.data.times.parse_utc_ms reads it).
_TIME = "TIME"
_TIME_FORMAT = "YYYY-MM-DD or YYYY-MM-DDTHH:MM, UTC"
_CONFIG_STORE_HELP = (
    "Candle store folder; default the file's store.path, else $ENGINE_DATA_DIR, else ./data."
)
# For the commands whose whole job is to fetch (ENGINE_OFFLINE stops fetching on the side).
_ALWAYS_FETCHES = "This command fetches whatever ENGINE_OFFLINE says."
_FETCHING_STORE_HELP = (
    f"{_CONFIG_STORE_HELP} A series the store lacks is fetched from the exchange unless "
    "ENGINE_OFFLINE=1."
)


@app.command()
def validate(
    file: Path = typer.Argument(..., help="A strategy, data, pretraining or evaluation YAML file."),
    kind: str | None = typer.Option(
        None,
        help=f"{', '.join(config.SCHEMAS)}; by default taken from the file's folder "
        f"({', '.join(f'{folder}/' for folder in config.FOLDER_KINDS)}).",
    ),
    models_dir: Path = typer.Option(Path("models"), help=_MODELS_HELP),
) -> None:
    """Check a config file without running anything.

    A strategy file gets every check a run makes before it loads candles: its
    encoder's model folder is sound, and every component loads for its role
    with its parameters.
    """
    schema = config.schema_for(file, kind)
    if schema is config.StrategyConfig:
        _strategy(file, models_dir)
    else:
        config.load_config(file, schema)
    console.print(f"{file}: valid")


def _strategy(path: Path, models_dir: Path) -> config.StrategyConfig:
    from engine.preflight import check_strategy

    cfg = config.load_config(path, config.StrategyConfig)
    check_strategy(cfg, models_dir)
    return cfg


_CHECKING = "checking the strategy, its model and its candles"


def _candles(cfg: config.StrategyConfig, store: Path | None):
    # A strategy's candle store (--store, else the file's store.path, else the default),
    # checked for candles that are missing and cannot be fetched before any fetching, so
    # that no network fails at once rather than after every retry.
    from engine.data.store import CandleStore
    from engine.runner.sources import check_candles

    candles = CandleStore(store or cfg.store.path)
    check_candles(cfg, candles)
    return candles


def _metrics_table(title: str, columns: list[tuple[str, dict]]) -> Table:
    # The headline figures of one or more runs, one (heading, metrics) column per run.
    from engine.report.metrics import HEADLINE, format_metric

    table = Table(title=title)
    table.add_column("metric")
    for heading, _ in columns:
        table.add_column(heading, justify="right")
    for key, (label, _) in HEADLINE.items():
        table.add_row(label, *(format_metric(metrics, key) for _, metrics in columns))
    return table


def _print_metrics(title: str, metrics: dict) -> None:
    # The metrics table of one run folder, as `engine run` and `engine paper report` print it.
    console.print(_metrics_table(title, [("value", metrics)]))


@app.command()
def run(
    strategy: Path = typer.Argument(..., help="A strategy file, e.g. strategies/ssl_cost.yaml."),
    store: Path | None = typer.Option(None, help=_FETCHING_STORE_HELP),
    models_dir: Path = typer.Option(Path("models"), help=_MODELS_HELP),
    reports_dir: Path = typer.Option(Path("reports"), help="Where the run folder is written."),
    mlflow: bool = typer.Option(False, "--mlflow", help=_MLFLOW_HELP),
    workers: int = typer.Option(
        1,
        min=1,
        help="Walk-forward refit blocks fitted at a time; more than 1 fits them on Ray "
        "(local, or the cluster of --address), with the same results.",
    ),
    address: str | None = typer.Option(
        None, envvar="RAY_ADDRESS", help="A Ray cluster HOST:PORT for --workers; default local."
    ),
) -> None:
    """Backtest a strategy out-of-sample and write a run folder with a QuantStats tearsheet.

    The run folder reports/<strategy>-<UTC time>/ holds tearsheet.html,
    metrics.json, trades.csv, equity.csv, config.yaml (resolved), inputs.json
    (hashes of the data, model and strategy file, and the exact model
    version, NAME@VERSION) and timings.json.
    """
    from engine.executor import make_executor

    with Progress(console, f"run {strategy}") as progress:
        progress.step(_CHECKING)
        cfg = _strategy(strategy, models_dir)
        check_writable(reports_dir, "--reports-dir")
        uri = _tracking(mlflow, reports_dir)
        candles = _candles(cfg, store)
        from engine.runner.warmup import compile_ahead

        # On a fresh numba cache the event loop compiles meanwhile, from here on.
        with compile_ahead():
            from engine.report.run import write_run
            from engine.runner.backtest import STAGES, run_backtest

            progress.expect(len(STAGES) + 2)
            executor = (
                None
                if workers == 1
                else make_executor(workers, address, ["engine.runner.backtest"])
            )
            try:
                result = run_backtest(
                    cfg, models_dir, candles, progress=progress.step, executor=executor
                )
            finally:
                if executor is not None:
                    executor.close()
        progress.step("writing the run folder and tearsheet")
        folder = write_run(result, reports_dir, strategy)
    _print_metrics(
        f"{cfg.name}: {result.inputs['first_bar']} to {result.inputs['last_bar']}", result.metrics
    )
    timings = ", ".join(f"{k.removesuffix('_s')} {v:.2f}s" for k, v in result.timings.items())
    console.print(f"time: {timings}")
    console.print(f"wrote {folder}")
    if uri is not None:
        from engine.tracking import track_backtest

        console.print(f"logged MLflow run {track_backtest(uri, result, folder)} to {uri}")


@app.command()
def compare(
    strategies: list[Path] = typer.Argument(..., help="Two or more strategy files."),
    store: Path | None = typer.Option(None, help=_FETCHING_STORE_HELP),
    models_dir: Path = typer.Option(Path("models"), help=_MODELS_HELP),
    reports_dir: Path = typer.Option(Path("reports"), help="Where the comparison is written."),
) -> None:
    """Backtest several strategies and print and write a side-by-side table.

    Writes reports/compare-<UTC time>.csv and .md with one row per strategy.
    """
    results = []
    with Progress(console, "compare") as progress:
        progress.step(_CHECKING)
        configs = [_strategy(path, models_dir) for path in strategies]
        check_writable(reports_dir, "--reports-dir")
        checked = [(cfg, _candles(cfg, store)) for cfg in configs]
        from engine.report.compare import write_comparison
        from engine.runner.backtest import STAGES, run_backtest

        progress.expect(1 + len(STAGES) * len(checked))
        for cfg, candles in checked:
            say = lambda stage, name=cfg.name: progress.step(f"{name}: {stage}")  # noqa: E731
            results.append(run_backtest(cfg, models_dir, candles, progress=say))
    columns = [(result.config.name, result.metrics) for result in results]
    console.print(_metrics_table("out-of-sample comparison", columns))
    for path in write_comparison(results, reports_dir):
        console.print(f"wrote {path}")


@app.command()
def audit(
    strategy: Path = typer.Argument(..., help="A strategy file."),
    samples: int = typer.Option(4, min=1, help="Bars t at which the future is changed."),
    store: Path | None = typer.Option(None, help=_FETCHING_STORE_HELP),
    models_dir: Path = typer.Option(Path("models"), help=_MODELS_HELP),
) -> None:
    """Check a strategy for lookahead: change the bars after t; nothing up to t may change.

    Exits 1 if any output at or before a sampled bar changed.
    """
    with Progress(console, f"audit {strategy}", steps=samples + 3) as progress:
        progress.step(_CHECKING)
        cfg = _strategy(strategy, models_dir)
        candles = _candles(cfg, store)
        from engine.audit import audit as run_audit

        findings = run_audit(cfg, models_dir, candles, samples=samples, progress=progress.step)
    table = Table(title=f"lookahead audit of {cfg.name}")
    for column in ("bar time t", "output", "values <= t", "changed <= t", "moved > t"):
        table.add_column(column, justify="right" if column != "output" else "left")
    for f in findings:
        style = "bold red" if f.changed else None
        table.add_row(
            f.time, f.output, str(f.compared), str(f.changed), str(f.moved_after), style=style
        )
    console.print(table)
    leaks = sum(f.changed for f in findings)
    console.print(f"changed values at or before t: {leaks}")
    if leaks:
        raise typer.Exit(1)


# --- engine data: fetch, import, ls, check -----------------------------------
# The data modules are imported inside the commands: ccxt and pandas take half
# a second to import, which every other command would pay.


def _store(root: Path | None):
    from engine.data.store import CandleStore

    return CandleStore(root)


def _bar_time(ms: int | None) -> str:
    from engine.data.times import iso_utc

    return "-" if ms is None else iso_utc(ms).replace("T", " ").removesuffix(":00Z")


@data_app.command("fetch")
def data_fetch(
    symbol: str = typer.Option(..., help="Exchange symbol, e.g. BTCUSDT."),
    since: str = typer.Option(..., metavar=_TIME, help=f"First bar ({_TIME_FORMAT})."),
    until: str | None = typer.Option(
        None, metavar=_TIME, help=f"Stop before this time ({_TIME_FORMAT}); default now."
    ),
    exchange: str = typer.Option("bybit", help="ccxt exchange id."),
    market: str = typer.Option("linear", help="linear (USDT perpetual) or spot."),
    timeframe: str = typer.Option("1h", help="Bar length, e.g. 1m, 5m, 1h, 1d."),
    funding: bool = typer.Option(False, "--funding", help="Also fetch funding rates."),
    max_gap_bars: int = typer.Option(0, help="Longest gap accepted; a longer one is an error."),
    store: Path | None = typer.Option(None, help=f"{_STORE_HELP} {_ALWAYS_FETCHES}"),
) -> None:
    """Download the bars the store lacks through ccxt and store them atomically."""
    from engine.data.feed import make_exchange
    from engine.data.store import SeriesKey
    from engine.data.times import parse_utc_ms

    key = SeriesKey(exchange, market, symbol, timeframe)
    since_ms = parse_utc_ms(since)
    until_ms = None if until is None else parse_utc_ms(until)
    _fetch_series(
        _store(store), make_exchange(exchange), key, since_ms, until_ms, max_gap_bars, funding
    )


def _fetch_series(candle_store, client, key, since_ms, until_ms, max_gap_bars, funding) -> None:
    from engine.data.feed import update_candles, update_funding
    from engine.data.store import FundingKey

    with Progress(console, f"fetch {key.filename}") as progress:
        progress.stage("candles")
        results = [
            update_candles(
                candle_store, client, key, since_ms, until_ms, max_gap_bars, progress.update
            )
        ]
        if funding:
            funding_key = FundingKey(key.exchange, key.market, key.symbol)
            progress.stage("funding rates")
            results.append(
                update_funding(
                    candle_store, client, funding_key, since_ms, until_ms, progress.update
                )
            )
    for result in results:
        console.print(
            f"{result.path}: fetched {result.fetched:,} rows; holds {result.rows:,} "
            f"from {_bar_time(result.first_ms)} to {_bar_time(result.last_ms)}"
        )


@data_app.command("sync")
def data_sync(
    file: Path = typer.Argument(..., help="A data file, e.g. configs/data/bybit_majors.yaml."),
    store: Path | None = typer.Option(None, help=f"{_CONFIG_STORE_HELP} {_ALWAYS_FETCHES}"),
) -> None:
    """Fetch every series a data file names (symbols, timeframe, range, funding)."""
    from engine.data.feed import make_exchange
    from engine.data.store import SeriesKey

    spec = config.load_config(file, config.DataConfig)
    from engine.data.times import day_range_ms

    series = spec.series
    since_ms, until_ms = day_range_ms(spec.range.start, spec.range.end)
    candle_store = _store(store or spec.store.path)
    client = make_exchange(series.exchange)
    for symbol in series.symbols:
        key = SeriesKey(series.exchange, series.market, symbol, series.timeframe)
        funding = spec.funding and series.market == "linear"
        _fetch_series(
            candle_store, client, key, since_ms, until_ms, spec.store.max_gap_bars, funding
        )


@data_app.command("import")
def data_import(
    file: Path = typer.Argument(..., help="Parquet or CSV (store schema), or freqtrade feather."),
    exchange: str | None = typer.Option(None, help="ccxt exchange id, if the name does not say."),
    market: str | None = typer.Option(None, help="linear or spot, if the name does not say."),
    symbol: str | None = typer.Option(None, help="Exchange symbol, if the name does not say."),
    timeframe: str | None = typer.Option(None, help="Bar length, if the name does not say."),
    max_gap_bars: int = typer.Option(0, help="Longest gap accepted; a longer one is an error."),
    store: Path | None = typer.Option(None, help=_STORE_HELP),
) -> None:
    """Validate a candle file and merge it into the store atomically."""
    from engine.data.importers import import_file

    result = import_file(_store(store), file, exchange, market, symbol, timeframe, max_gap_bars)
    console.print(
        f"{result.path}: imported {result.imported:,} rows; holds {result.rows:,} "
        f"from {_bar_time(result.first_ms)} to {_bar_time(result.last_ms)}"
    )


@data_app.command("ls")
def data_ls(store: Path | None = typer.Option(None, help=_STORE_HELP)) -> None:
    """List the series in the store."""
    from rich.table import Table

    candle_store = _store(store)
    table = Table(title=f"store {candle_store.root}")
    for column in ("file", "rows", "first", "last", "MB"):
        table.add_column(column, justify="left" if column == "file" else "right")
    for info in candle_store.series():
        table.add_row(
            info.path.name,
            f"{info.rows:,}",
            _bar_time(info.first_ms),
            _bar_time(info.last_ms),
            f"{info.size_bytes / 1e6:.2f}",
        )
    console.print(table)


@data_app.command("check")
def data_check(store: Path | None = typer.Option(None, help=_STORE_HELP)) -> None:
    """Validate every file of the store; exit 1 if any has violations (gaps are not)."""
    from rich.table import Table

    candle_store = _store(store)
    table = Table(title=f"store {candle_store.root}")
    for column in ("file", "rows", "first bar", "last bar", "missing", "largest gap"):
        table.add_column(column, justify="left" if column in ("file", "largest gap") else "right")
    table.add_column("zero vol", justify="right")
    table.add_column("violations")
    reports = candle_store.check()
    for report in reports:
        gap = report.largest_gap
        table.add_row(
            report.name,
            f"{report.rows:,}",
            _bar_time(report.first_ms),
            _bar_time(report.last_ms),
            f"{report.missing:,}",
            "-" if gap is None else f"{gap.bars:,} at {_bar_time(gap.start_ms)}",
            "-" if report.zero_volume is None else f"{report.zero_volume:,}",
            "\n".join(v.describe() for v in report.violations) or "none",
        )
    console.print(table)
    failed = sum(not report.ok for report in reports)
    console.print(f"{len(reports)} files, {failed} with violations")
    if failed:
        raise typer.Exit(1)


# --- end of engine data ------------------------------------------------------


# --- engine pretrain ---------------------------------------------------------


@app.command()
def pretrain(
    file: Path = typer.Argument(..., help="A pretraining YAML file (configs/pretrain/*.yaml)."),
    resume: bool = typer.Option(
        True, "--resume/--no-resume", help="Continue from the last checkpoint of this run."
    ),
    store: Path | None = typer.Option(
        None,
        help=f"{_CONFIG_STORE_HELP} Nothing is fetched: a missing series is an error, as under "
        "ENGINE_OFFLINE=1.",
    ),
    models_dir: Path = typer.Option(Path("models"), help=_MODELS_HELP),
    parent: str | None = typer.Option(
        None,
        "--from",
        help="Continue pretraining this version (NAME or NAME@VERSION) on the bars it never saw.",
    ),
    until: datetime | None = typer.Option(
        None,
        formats=["%Y-%m-%d"],
        help="With --from: the last day (UTC) of the newer bars; default the last bar.",
    ),
    mlflow: bool = typer.Option(False, "--mlflow", help=_MLFLOW_HELP),
    reports_dir: Path = typer.Option(
        Path("reports"), help="Where the local MLflow store is (with --mlflow)."
    ),
) -> None:
    """Pretrain a self-supervised encoder and write a new version models/<name>/<version>/.

    With --from, continue pretraining that version on the bars from its
    unseen-from date to --until, and write a child version that names it as
    its parent.
    """
    from engine.pretraining import pretrain as run_pretraining

    spec = config.load_config(file, config.PretrainConfig)
    if until is not None and parent is None:
        raise ConfigError("--until: continues a version; name it with --from NAME@VERSION")
    uri = _tracking(mlflow, reports_dir)
    if store is not None:
        # The card records the store the encoder was trained from.
        stored = spec.data.store.model_copy(update={"path": store})
        spec = spec.model_copy(update={"data": spec.data.model_copy(update={"store": stored})})
    with Progress(console, f"pretrain {spec.name}") as progress:
        progress.stage("training")

        def trained(iteration: int, iters: int, loss: float) -> None:
            progress.update(iteration, iters, f"loss {loss:.4f}")

        result = run_pretraining(
            spec,
            models_dir=models_dir,
            resume=resume,
            progress=trained,
            parent=parent,
            until=None if until is None else until.date(),
        )
    card, training = result.card, result.card["training"]
    if training["resumed_from"] is not None:
        console.print(f"resumed from iteration {training['resumed_from']}")
    version = result.version
    console.print(
        f"{version.ref} ({version.path}): {card['kind']}, "
        f"{card['encoder']['parameters']:,} parameters, "
        f"{training['iters']} iterations in {training['seconds']:.0f} s, "
        f"final loss {training['final_loss']:.4f}; trained on {card['data']['first_bar_utc']} "
        f"to {card['data']['last_bar_utc']}, unseen from {card['data']['unseen_from_utc']}"
        + (f"; parent {version.parent}" if version.parent else "")
    )
    if uri is not None:
        from engine.tracking import track_pretraining

        console.print(f"logged MLflow run {track_pretraining(uri, version)} to {uri}")


# --- engine models -----------------------------------------------------------


@models_app.command("ls")
def models_ls(
    models_dir: Path = typer.Option(Path("models"), help=_MODELS_HELP),
) -> None:
    """List every model's versions, oldest first; * marks the one a bare name resolves to."""
    from engine.models.registry import Registry

    registry = Registry(models_dir)
    table = Table(title=f"models in {models_dir}")
    for column in ("model", "version", "created (UTC)", "origin", "parent", "kind"):
        table.add_column(column)
    table.add_column("bars")
    table.add_column("unseen from")
    for name in registry.names():
        versions = registry.versions(name)
        for version in versions:
            data = version.card.get("data") or {}
            table.add_row(
                name,
                version.version + (" *" if version is versions[-1] else ""),
                version.created_utc[:19].replace("T", " "),
                str(version.lineage.get("origin", "")),
                version.parent or "",
                str(version.card.get("kind", "")),
                f"{data.get('first_bar_utc', '?')[:10]} to {data.get('last_bar_utc', '?')[:10]}",
                str(data.get("unseen_from_utc", "?"))[:16],
            )
    console.print(table)
    unversioned = registry.unversioned()
    if unversioned:
        console.print(
            f"unversioned model folders: {', '.join(unversioned)}; "
            f"run `engine models migrate --models-dir {models_dir}`"
        )


@models_app.command("show")
def models_show(
    model: str = typer.Argument(..., help="NAME (the latest version) or NAME@VERSION."),
    models_dir: Path = typer.Option(Path("models"), help=_MODELS_HELP),
) -> None:
    """Show a version: lineage, data, features, encoder, training."""
    from engine.models.compare import card_sections
    from engine.models.registry import Registry

    registry = Registry(models_dir)
    version = registry.resolve(model)
    console.print(f"{version.ref}  {version.path}", highlight=False)
    console.print(f"lineage: {' <- '.join(_ancestry(registry, version))}", highlight=False)
    for section, values in card_sections(version.card).items():
        table = Table(title=section, show_header=False)
        table.add_column("key")
        table.add_column("value", overflow="fold")
        for key, value in values.items():
            table.add_row(key, _shown(value))
        console.print(table)


def _ancestry(registry, version) -> list[str]:
    # The version's reference, its parent's, and so on, as far as they are stored.
    chain, seen = [version.ref], {version.ref}
    while version.parent and version.parent not in seen:
        try:
            version = registry.resolve(version.parent)
        except ConfigError:
            chain.append(f"{version.parent} (not stored)")
            break
        chain.append(version.ref)
        seen.add(version.ref)
    return chain


def _shown(value, width: int = 200) -> str:
    text = str(value)
    return text if len(text) <= width else f"{text[: width - 3]}..."


@models_app.command("diff")
def models_diff(
    a: str = typer.Argument(..., help="NAME or NAME@VERSION."),
    b: str = typer.Argument(..., help="NAME or NAME@VERSION."),
    models_dir: Path = typer.Option(Path("models"), help=_MODELS_HELP),
) -> None:
    """Compare two versions: configuration, data and metrics, key by key."""
    from engine.models.compare import diff_cards
    from engine.models.registry import Registry

    registry = Registry(models_dir)
    left, right = registry.resolve(a), registry.resolve(b)
    for section, rows in diff_cards(left.card, right.card).items():
        if not rows:
            console.print(f"{section}: the same", highlight=False)
            continue
        table = Table(title=section)
        table.add_column("key")
        table.add_column(left.ref, overflow="fold")
        table.add_column(right.ref, overflow="fold")
        for key, x, y in rows:
            table.add_row(key, _shown(x, 80), _shown(y, 80))
        console.print(table)


@models_app.command("migrate")
def models_migrate(
    models_dir: Path = typer.Option(Path("models"), help=_MODELS_HELP),
) -> None:
    """Move every unversioned model folder models/<name>/ into models/<name>/<version>/."""
    from engine.models.registry import Registry

    made = Registry(models_dir).migrate()
    for version in made:
        console.print(f"{version.ref}: {version.path}", highlight=False)
    console.print(f"migrated {len(made)} model folder(s)")


# --- engine evaluate --------------------------------------------------------


@app.command()
def evaluate(
    file: Path = typer.Argument(
        ..., help="An evaluation file, e.g. configs/evaluate/seed_tables.yaml."
    ),
    store: Path | None = typer.Option(
        None,
        help=f"{_CONFIG_STORE_HELP} Nothing is fetched: a missing series is an error, as under "
        "ENGINE_OFFLINE=1.",
    ),
    models_dir: Path = typer.Option(Path("models"), help=_MODELS_HELP),
    reports_dir: Path = typer.Option(Path("reports"), help="Where the run folder is written."),
    mlflow: bool = typer.Option(False, "--mlflow", help=_MLFLOW_HELP),
) -> None:
    """Measure what representations know, out of sample, with bootstrap intervals.

    Runs the file's tasks (linear probe, transfer, fine-tuning, label
    efficiency, anomaly detection, volatility forecast) for every named
    representation: models from models/ and the baselines features,
    indicators, pca, supervised, lstm and majority. Writes
    reports/evaluate-<name>-<UTC time>/ with results.json, Markdown and CSV
    tables beside the article's claims, and report.html with plots.
    Representations and fits are cached in $ENGINE_CACHE_DIR (default .cache/).
    """
    from engine.research.evaluate import count_steps
    from engine.research.evaluate import evaluate as run_evaluation
    from engine.research.report import main_rows, write_run
    from engine.strategy.representations import default_cache_dir

    spec = config.load_config(file, config.EvaluateConfig)
    check_writable(reports_dir, "--reports-dir")
    uri = _tracking(mlflow, reports_dir)
    with Progress(console, f"evaluate {spec.name}", steps=count_steps(spec) + 1) as progress:
        candles = _store(store or spec.store.path)
        result = run_evaluation(spec, candles, models_dir, default_cache_dir(), progress.step)
        progress.step("writing the report")
        folder = write_run(result, reports_dir, file.read_text(encoding="utf-8"))
    train = spec.train_series[0]
    ranges = result.results["ranges"][train]
    table = Table(
        title=f"{spec.name}: linear probe trained on {train} {ranges['train'][0][:10]} to "
        f"{ranges['train'][1][:10]}, tested from {ranges['test'][0][:10]}"
    )
    shown = ("representation", "probe accuracy", "probe 95% CI", "minus features CI")
    shown += ("minus majority CI", "minus its inputs CI", "fine-tuned accuracy")
    shown += ("transfer accuracy", "article probe")
    for column in shown:
        table.add_column(column, justify="left" if column == "representation" else "right")
    for row in main_rows(result.results, train):
        table.add_row(*(row[c] for c in shown))
    console.print(table)
    if result.results["pretraining_overlap"]:
        names = ", ".join(result.results["pretraining_overlap"])
        console.print(
            f"[bold red]{names} saw these test bars unlabelled in pretraining: "
            "these figures choose among encoders; they are not out-of-sample results"
        )
    console.print(f"wrote {folder}")
    if uri is not None:
        from engine.tracking import track_evaluation

        run_id = track_evaluation(uri, result.results, folder)
        console.print(f"logged MLflow run {run_id} to {uri}")


# --- engine paper: run, status, report --------------------------------------


_JOURNALS_HELP = "Folder of session journals (<session>.sqlite)."


class Feed(StrEnum):
    """How a paper session learns that a bar has closed."""

    rest = "rest"
    ws = "ws"


@paper_app.command("run")
def paper_run(
    ctx: typer.Context,
    strategy: Path = typer.Argument(..., help="A strategy file, e.g. strategies/ssl_cost.yaml."),
    session: str | None = typer.Option(None, help="Session name; default the strategy's name."),
    from_run: Path | None = typer.Option(
        None, help="A run folder of this strategy: use its config.yaml and refit schedule."
    ),
    replay: Path | None = typer.Option(
        None,
        help="Recorded candles to replay, released as a simulated clock passes them: a parquet "
        "file of a single-symbol strategy, or a folder holding each symbol's file named as the "
        "store names it (e.g. bybit_linear_BTCUSDT_1h.parquet). The session warms up on the "
        "store's bars before the first replayed bar and ends after the last one.",
    ),
    since: str | None = typer.Option(
        None,
        help="Replay: the first bar to replay, a UTC date or date-time; default the file's "
        "first bar.",
    ),
    speed: float = typer.Option(0.0, min=0.0, help="Replay: simulated s per real s; 0 instant."),
    feed: Feed = typer.Option(
        Feed.rest,
        help="rest: poll the public kline endpoint 2 s after each bar's close. ws: watch "
        "ccxt.pro's public kline stream (watch_ohlcv) and fetch a bar through the same REST "
        "path as soon as the stream shows it closed (a later bar streaming); the stream's own "
        "values are never used, and while it is down the session polls.",
    ),
    bar_store: Path | None = typer.Option(
        None,
        help="Store folder the processed bars are appended to (as `engine data fetch` writes "
        "them). Default: the strategy's store when live, none in a replay.",
    ),
    until: str | None = typer.Option(
        None, metavar=_TIME, help=f"Stop before the bar opening at this time ({_TIME_FORMAT})."
    ),
    store_dir: Path | None = typer.Option(None, "--store", help=_FETCHING_STORE_HELP),
    force: bool = typer.Option(False, "--force", help="Resume even if the config changed."),
    journal_dir: Path = typer.Option(Path("reports/paper"), help=_JOURNALS_HELP),
    models_dir: Path = typer.Option(Path("models"), help=_MODELS_HELP),
) -> None:
    """Run a paper session (resuming it if its journal exists) until SIGINT or SIGTERM.

    Fills are simulated by the backtest's event loop; no order or account
    endpoint is ever called and no API key is needed. Each bar's time,
    decision, position, equity and latency are shown as it is processed: on a
    status line in a terminal, one line per bar otherwise. A replay ends by
    itself after its file's last bar; every session ends with a summary.
    """
    from engine.data.store import CandleStore
    from engine.data.symbols import timeframe_ms
    from engine.data.times import day_start_ms, parse_utc_ms

    if replay is not None and feed is Feed.ws:
        raise EngineError("--feed ws watches a live exchange; a --replay reads bars from its file")
    if since is not None and replay is None:
        raise EngineError("--since chooses the first bar of a --replay; a live session has none")
    if session is not None:
        config.check_name(session, "--session")
    cfg = config.load_config(strategy, config.StrategyConfig)
    name = session or cfg.name
    with _status_lines(f"{name}: loading the numerical libraries") as say:
        _fit_on_one_thread(ctx)
        say(f"{name}: loading the session's modules")
        from engine.paper.journal import session_lock
        from engine.paper.session import SessionOptions
        from engine.paper.sources import load_replay
        from engine.preflight import check_strategy

        say(f"{name}: checking {strategy}, its encoder and its components")
        check_strategy(cfg, models_dir)
        anchor_ms = None
        if from_run is not None:
            if not from_run.is_dir():
                raise EngineError(f"--from-run {from_run}: no such run folder")
            run_cfg = _strategy(from_run / "config.yaml", models_dir)
            if run_cfg.name != cfg.name:
                raise EngineError(
                    f"--from-run {from_run} is a run of {run_cfg.name!r}, not of {cfg.name!r}"
                )
            cfg = run_cfg
            anchor_ms = day_start_ms(cfg.out_of_sample.start)
        store = CandleStore(store_dir or cfg.store.path)
        until_ms = None if until is None else parse_utc_ms(until)
        recorded, first_ms = None, None
        if replay is not None:
            recorded = load_replay(cfg, replay)
            if since is not None:
                first = parse_utc_ms(since)
                recorded = [frame[frame["timestamp"] >= first] for frame in recorded]
                if any(frame.empty for frame in recorded):
                    raise DataError(f"--replay {replay} has no bar at or after --since {since}")
            first_ms = min(int(frame["timestamp"].iloc[0]) for frame in recorded)
            # The replay ends after the last bar every symbol has, or at --until if earlier.
            last_ms = min(int(frame["timestamp"].iloc[-1]) for frame in recorded)
            end_ms = last_ms + timeframe_ms(cfg.market.timeframe)
            until_ms = end_ms if until_ms is None else min(until_ms, end_ms)
            say(f"{name}: replaying {replay}, {_bar_time(first_ms)} to {_bar_time(last_ms)}")
        options = SessionOptions(
            session=name,
            journal_dir=journal_dir,
            models_dir=models_dir,
            force=force,
            anchor_ms=anchor_ms,
            until_ms=until_ms,
            # A replay writes into no store unless one is named: its bars are not the user's.
            bar_store=bar_store or (None if replay is not None else store.root),
            warmup_before_ms=first_ms,
        )
        check_writable(journal_dir, "--journal-dir")
        with session_lock(journal_dir, name):
            processed = _run_session(cfg, options, recorded, speed, feed is Feed.ws, store, say)
    _print_session_summary(cfg, options, processed)


@contextmanager
def _status_lines(first: str):
    # Yield a function that shows a message: on a rich status line in a terminal, else on a
    # line of its own (a log or a pipe gets one line per message, with no animation).
    with console.status(first) as status:

        def say(text: str) -> None:
            status.update(text)
            if not console.is_terminal:
                console.print(text, highlight=False)

        say(first)
        yield say


def _bar_line(record, symbols: list[str]) -> str:
    # One processed bar: its time; each asset's close, decision and position after the bar;
    # the equity and the latency.
    from engine.sim.enums import Mode

    assets = []
    for symbol, asset, position in zip(
        symbols, record.per_asset, record.assets["position"], strict=True
    ):
        decision = asset.decision
        exposure = decision["target"] * decision["risk_scale"]
        mode = Mode(int(decision["mode"])).name.lower()
        prefix = f"{symbol} " if len(symbols) > 1 else ""
        assets.append(
            f"{prefix}close {asset.bar['close']:,.2f}  decision {mode} to {exposure:+.3f}  "
            f"position {float(position):+g}"
        )
    return (
        f"{_bar_time(record.ts)}  {'; '.join(assets)}  "
        f"equity {record.balance['equity']:,.2f}  latency {record.latency_ms:.0f} ms"
    )


def _print_session_summary(cfg, options, processed: int) -> None:
    # What a session holds once it ends: bars, trades, equity and return on its capital.
    from engine.paper.journal import journal_path
    from engine.paper.status import session_status

    status = session_status(options.journal_dir, options.session)
    console.print(
        f"{options.session}: processed {processed} bars; the session holds {status.bars:,} bars",
        highlight=False,
    )
    if status.equity is not None:
        change = status.equity / cfg.initial_capital - 1
        console.print(
            f"  last bar {_bar_time(status.last_ts)}, {status.fills:,} trades (fills), "
            f"equity {status.equity:,.2f}, return {change:+.2%}, position {status.position}",
            highlight=False,
        )
    console.print(
        f"  journal {journal_path(options.journal_dir, options.session)}; "
        f"`engine paper report {options.session}` writes its run folder",
        highlight=False,
    )


def _run_session(cfg, options, recorded, speed, streaming, store, say) -> int:
    # Run a paper session (live, or replaying the candles `recorded`) with its log file,
    # until a signal stops it or its `until` is reached; `say` shows its progress.
    import logging
    import signal
    import threading

    from engine.paper.session import PaperSession, WallClock
    from engine.paper.sources import ExchangeSource, ReplayClock, replay_source, series_keys

    handler = logging.FileHandler(options.journal_dir / f"{options.session}.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("engine.paper")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    before = options.warmup_before_ms
    say(
        f"{options.session}: warming up on the store's bars"
        + ("" if before is None else f" before {_bar_time(before)}")
    )
    try:
        if recorded is None:
            from engine.data.feed import make_exchange

            exchange_id = cfg.market.exchange
            stream = make_exchange(exchange_id, streaming=True) if streaming else None
            source = ExchangeSource(make_exchange(exchange_id), series_keys(cfg), options.retry)
            session_run = PaperSession(cfg, options, source, WallClock(), store, stream)
        else:
            clock = ReplayClock(0, speed)
            source = replay_source(cfg, recorded, store, clock)
            session_run = PaperSession(cfg, options, source, clock, store)
            clock.jump(session_run.last_ts + session_run.interval)
        say(f"{options.session}: waiting for the bar after {_bar_time(session_run.last_ts)}")
        try:
            symbols = cfg.market.symbols
            return session_run.run(stop, lambda record: say(_bar_line(record, symbols)))
        finally:
            session_run.close()
    finally:
        logger.removeHandler(handler)
        handler.close()


@paper_app.command("status")
def paper_status(
    session: str | None = typer.Argument(None, help="A session; all sessions when not given."),
    journal_dir: Path = typer.Option(Path("reports/paper"), help=_JOURNALS_HELP),
) -> None:
    """Show each session's last bar, equity, position, open orders and drift state.

    Journals are opened read-only. Listing all sessions, a file that is not a
    readable journal is skipped and reported below the table.
    """
    from engine.paper.status import session_status

    if session is not None:
        names = [config.check_name(session, "session")]
    else:
        names = sorted(p.stem for p in journal_dir.glob("*.sqlite"))
    table = Table(title=f"paper sessions in {journal_dir}")
    columns = ("session", "last bar", "bars", "equity", "position", "open order", "fills", "drift")
    for column in columns:
        table.add_column(column, justify="left" if column == "session" else "right", no_wrap=True)
    skipped = []
    for name in names:
        try:
            s = session_status(journal_dir, name)
        except DataError as exc:
            if session is not None:
                raise
            skipped.append(str(exc))
            continue
        table.add_row(
            name,
            _bar_time(s.last_ts),
            f"{s.bars:,}",
            "-" if s.equity is None else f"{s.equity:,.2f}",
            s.position,
            s.open_order,
            f"{s.fills:,}",
            s.drift,
        )
    console.print(table, width=max(console.width, 130))
    for problem in skipped:
        console.print(f"skipped {problem}", highlight=False, soft_wrap=True)


@paper_app.command("report")
def paper_report(
    session: str = typer.Argument(..., help="The session."),
    journal_dir: Path = typer.Option(Path("reports/paper"), help=_JOURNALS_HELP),
    reports_dir: Path = typer.Option(Path("reports"), help="Where the run folder is written."),
) -> None:
    """Write a session's run folder from its journal, as `engine run` writes a backtest's.

    The folder reports/paper-<session>-<UTC time>/ holds the files of a run
    folder; its timings.json holds the session's decision latencies. Prints
    the metrics table `engine run` prints.
    """
    config.check_name(session, "session")
    check_writable(reports_dir, "--reports-dir")
    with _status_lines(f"paper session {session}: loading QuantStats") as say:
        # The report's slowest import, first, so that no stage is silent for long.
        import quantstats  # noqa: F401

        say(f"paper session {session}: loading the strategy's modules")
        from engine.paper.report import session_backtest
        from engine.report.run import write_run

        say(f"paper session {session}: reading its journal and computing its metrics")
        result = session_backtest(journal_dir, session)
        say(f"paper session {session}: writing its run folder and tearsheet")
        folder = write_run(result, reports_dir, name=f"paper-{session}")
    inputs = result.inputs
    _print_metrics(
        f"paper session {session}: {inputs['first_bar']} to {inputs['last_bar']}", result.metrics
    )
    console.print(f"wrote {folder}")


# --- engine sweep -------------------------------------------------------------


@app.command()
def sweep(
    strategy: Path = typer.Argument(..., help="A strategy file, e.g. strategies/ssl_cost.yaml."),
    space: Path = typer.Option(..., help="A search space file, e.g. sweeps/ssl_cost_small.yaml."),
    workers: int | None = typer.Option(
        None,
        min=1,
        help="Trials at a time. 1: serially in this process, without Ray. Default: on Ray, "
        "one per core of the local machine or per CPU of the cluster.",
    ),
    address: str | None = typer.Option(
        None, envvar="RAY_ADDRESS", help="A Ray cluster HOST:PORT to run on; default local."
    ),
    fresh: bool = typer.Option(
        False, "--fresh", help="Start a new sweep folder rather than resume an unfinished one."
    ),
    models_dir: Path = typer.Option(Path("models"), help=_MODELS_HELP),
    reports_dir: Path = typer.Option(Path("reports"), help="Where the sweep folder is written."),
    mlflow: bool = typer.Option(False, "--mlflow", help=_MLFLOW_HELP),
) -> None:
    """Backtest a strategy over a search space and say how much to trust the best trial.

    Trials run on the space's validation range; the best is run once on its
    test range. Writes reports/sweep-<name>-<UTC time>/ with trials.csv,
    trials.sqlite (the journal: a sweep started again resumes and skips
    finished trials), the trials' strategy files, summary.json (best values,
    validation and test metrics, Deflated Sharpe Ratio, PBO, the exact model
    versions used) and report.html. With --mlflow, logs the sweep as one run.
    """
    from engine.executor import make_executor

    cfg = config.load_config(strategy, config.StrategyConfig)
    config.load_config(space, config.SweepConfig)
    check_writable(reports_dir, "--reports-dir")
    uri = _tracking(mlflow, reports_dir)
    # Ray starts once the files are read, and its workers import the trials' modules while
    # this process checks the model (torch) and imports them too: seconds each, at once.
    executor = make_executor(workers, address, preload=["engine.research.sweep"])
    try:
        from engine.preflight import check_strategy

        check_strategy(cfg, models_dir)
        from engine.research.sweep import Sweep
        from engine.research.sweep_report import summary_rows

        run = Sweep(strategy, space, models_dir, reports_dir, fresh)
        try:
            if run.resumed:
                console.print(f"resuming {run.folder}")
            with Progress(console, f"sweep {run.space.name}") as shown:
                shown.stage("trials")

                def progress(p) -> None:
                    best = (
                        "-" if p.best_number is None else f"{p.best_value:.3f} (#{p.best_number})"
                    )
                    shown.update(p.done, p.total, f"best {best}")

                result = run.run(executor, progress)
        finally:
            run.close()
    finally:
        executor.close()
    table = Table(
        title=f"sweep {run.space.name}: {run.space.objective} on validation, best on test"
    )
    table.add_column("")
    table.add_column("value", justify="right")
    for label, value in summary_rows(result.summary):
        table.add_row(label, value)
    console.print(table)
    console.print(f"wrote {result.folder}")
    if uri is not None:
        from engine.tracking import track_sweep

        run_id = track_sweep(uri, run.space, result.summary, result.folder)
        console.print(f"logged MLflow run {run_id} to {uri}")


def main() -> None:
    """Run the ``engine`` command line.

    Every command that may fit components runs BLAS and scikit-learn's OpenMP
    on one thread (``engine.threads``); ``validate``, ``data``, ``models``,
    ``paper status`` and ``paper report`` fit nothing and skip loading those
    libraries.
    """
    try:
        app()
    except EngineError as exc:
        if _options["debug"]:
            raise
        from rich.markup import escape

        # Messages quote user input and commands (`.[ray]`), which are not markup.
        err_console.print(
            f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
