"""Every check a strategy run makes before its first computation, runnable on its own.

``engine validate`` calls ``check_strategy`` so that a file it reports valid
is not refused later by ``engine run``: the encoder's folder exists and the
model in it is sound, its pretraining range ends before the out-of-sample
range, and every component imports, is a concrete class of its role and
accepts its parameters.
"""

from __future__ import annotations

from pathlib import Path

from engine.config import StrategyConfig
from engine.data.times import day_start_ms
from engine.strategy.representations import load_unseen_model


def check_strategy(config: StrategyConfig, models_dir: Path) -> None:
    """Run every check of ``config`` that needs no candles.

    Raises
    ------
    ConfigError, DataError
        The first problem found, as the run would raise it.
    """
    from engine.runner.assemble import build_pipeline, build_portfolio

    spec = config.representation
    encoder = spec.encoder if spec is not None and spec.kind == "finetuned" else config.encoder
    if encoder is not None:
        start_ms = day_start_ms(config.out_of_sample.start)
        load_unseen_model(models_dir, encoder, start_ms, "out_of_sample.start")
    build_pipeline(config)
    build_portfolio(config)
