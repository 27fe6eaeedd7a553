"""The ``engine`` command line: parse, call, print.

Every command is thin: it turns arguments into calls into the package and
prints the result for a person. Errors a user can cause are ``EngineError``s:
they are printed as one message, without a traceback unless ``--debug`` is
given, and the exit code is 2.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from engine import config
from engine.errors import EngineError

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

console = Console()
err_console = Console(stderr=True)
_options = {"debug": False}


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback on errors."),
) -> None:
    _options["debug"] = debug


@app.command()
def validate(
    file: Path = typer.Argument(..., help="A strategy, data or pretraining YAML file."),
    kind: str | None = typer.Option(
        None, help="strategy, data or pretrain; by default taken from the file's folder."
    ),
) -> None:
    """Check a config file against its schema without running anything."""
    schema = config.schema_for(file, kind)
    config.load_config(file, schema)
    console.print(f"{file}: valid")


def main() -> None:
    """Run the ``engine`` command line."""
    try:
        app()
    except EngineError as exc:
        if _options["debug"]:
            raise
        err_console.print(f"[bold red]error:[/bold red] {exc}", highlight=False, soft_wrap=True)
        raise SystemExit(2) from None
