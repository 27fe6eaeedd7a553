"""Progress of long commands: plain lines off a terminal, a bar on one."""

from __future__ import annotations

import io
import re
import time

from rich.console import Console

from engine.progress import Progress

LINE = re.compile(r"^\[\s*\d+ s\] (?P<title>[^:]+): (?P<rest>.*)$")


def _console(terminal: bool) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=terminal, width=200), out


def _lines(out: io.StringIO) -> list[str]:
    return out.getvalue().splitlines()


def test_each_step_prints_a_line_with_its_stage_count_and_time_left():
    console, out = _console(terminal=False)
    with Progress(console, "run demo", steps=3) as progress:
        progress.step("loading candles")
        progress.step("running the event loop")
        progress.step("writing the run folder")
    lines = _lines(out)
    assert [LINE.match(line)["title"] for line in lines] == ["run demo"] * 3
    assert lines[0].endswith("run demo: loading candles (0/3)")
    assert "running the event loop (1/3, about " in lines[1] and " s left)" in lines[1]
    assert "writing the run folder (2/3, about " in lines[2]


def test_a_silent_stage_still_gets_a_line_every_few_seconds():
    console, out = _console(terminal=False)
    with Progress(console, "pretrain demo", every_s=0.1) as progress:
        progress.stage("training")
        time.sleep(0.55)
    lines = _lines(out)
    assert lines[0].endswith("pretrain demo: training")
    beats = [line for line in lines[1:] if line.endswith("training, working")]
    assert 3 <= len(beats) <= 6, lines


def test_counts_within_a_stage_are_printed_at_a_steady_pace_not_each_time():
    console, out = _console(terminal=False)
    with Progress(console, "fetch demo", every_s=0.05) as progress:
        progress.stage("candles")
        for done in range(1, 101):
            progress.update(done, 100, f"page {done}")
        time.sleep(0.06)
        progress.update(100, 100, "page 100")
    lines = _lines(out)
    assert lines[0].endswith("fetch demo: candles")
    # 100 quick updates print nothing until the pace allows a line; then one line comes.
    assert len(lines) <= 4, lines
    assert any("candles (100/100, about 0 s left), page 100" in line for line in lines)


def test_a_terminal_gets_a_bar_and_no_plain_lines():
    console, out = _console(terminal=True)
    with Progress(console, "run demo", steps=2, every_s=0.05) as progress:
        progress.step("loading candles")
        time.sleep(0.15)
        progress.step("writing")
    assert not any(LINE.match(line) for line in _lines(out))
    assert "run demo" in out.getvalue()
