"""End to end: `engine sweep` on a real two-node Ray cluster on this machine.

A head node and a worker node (one CPU each) run an 8-trial sweep of the CoST
strategy on two months of bars. The first trial's worker dies mid-trial and
Ray retries it; the sweep is killed with SIGKILL after two trials and started
again, and resumes. Every trial's metrics must equal `engine run` on its
strategy file bit for bit, and the table must equal a serial sweep's; so
must `engine run --workers 2`, which fits its refit blocks on the cluster. The
cluster's process groups are killed and its temporary folder removed at the
end, whatever happened.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

SPACE = {
    "name": "e2e",
    "validation": {"start": "2025-03-01", "end": "2025-04-30"},
    "test": {"start": "2025-05-01", "end": "2025-06-15"},
    "cscv_blocks": 4,
    "parameters": {
        "components.signal.params.entry": [0.1, 0.2, 0.3, 0.4],
        "components.signal.params.exit": [0.0, 0.05],
    },
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cluster_env(cache: Path) -> dict[str, str]:
    # Ray's processes import the engine from this tree and the crashing signal from tests/e2e.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "tests" / "e2e")])
    env["ENGINE_CACHE_DIR"] = str(cache)
    env["RAY_AUTH_MODE"] = "disabled"
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    return env


def _start_node(args: list[str], env: dict, temp: str, log: Path) -> subprocess.Popen:
    ports = ["--ray-client-server-port", "--dashboard-agent-listen-port"]
    ports += ["--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port"]
    command = [sys.executable, "-m", "ray.scripts.scripts", "start", "--block", *args]
    command += ["--num-cpus", "1", "--temp-dir", temp, "--object-store-memory", "100000000"]
    for option in ports:
        command += [option, str(_free_port())]
    with log.open("wb") as out:
        return subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(process: subprocess.Popen) -> None:
    # The node and everything it started share its process group: SIGTERM, then SIGKILL
    # for whatever is left of it 3 s later.
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            process.poll()  # reaps the node, which would otherwise stay in its group
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


@pytest.fixture
def cluster(tmp_path):
    """Start a head and a worker node on 127.0.0.1; yield the address and the environment."""
    env = _cluster_env(tmp_path / "cache")
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    port = _free_port()
    address = f"127.0.0.1:{port}"
    nodes = []
    try:
        head = ["--head", "--node-ip-address", "127.0.0.1", "--port", str(port)]
        head += ["--include-dashboard", "false", "--disable-usage-stats"]
        nodes.append(_start_node(head, env, temp, tmp_path / "head.log"))
        _wait_for_nodes(address, env, 1)
        worker = ["--address", address, "--node-ip-address", "127.0.0.1"]
        nodes.append(_start_node(worker, env, temp, tmp_path / "worker.log"))
        _wait_for_nodes(address, env, 2)
        yield address, env
    finally:
        for node in reversed(nodes):
            _stop(node)
        shutil.rmtree(temp, ignore_errors=True)


def _wait_for_nodes(address: str, env: dict, count: int) -> None:
    script = (
        "import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
        "print(sum(n['Alive'] for n in ray.nodes()))"
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        out = subprocess.run(
            [sys.executable, "-c", script, address], env=env, capture_output=True, text=True
        )
        if out.returncode == 0 and out.stdout.strip().splitlines()[-1:] == [str(count)]:
            return
        time.sleep(2)
    raise AssertionError(f"the Ray cluster at {address} did not reach {count} nodes")


def _files(tmp_path: Path) -> tuple[Path, Path, Path]:
    spec = yaml.safe_load((REPO_ROOT / "strategies" / "ssl_cost.yaml").read_text())
    marker = tmp_path / "crashed"
    params = spec["components"]["signal"]["params"]
    spec["components"]["signal"] = {
        "class": "crashing:CrashOnceSignal",
        "params": {**params, "marker": str(marker)},
    }
    strategy = tmp_path / "strategies" / "ssl_cost.yaml"
    strategy.parent.mkdir()
    strategy.write_text(yaml.safe_dump(spec))
    space = tmp_path / "sweeps" / "e2e.yaml"
    space.parent.mkdir()
    space.write_text(yaml.safe_dump(SPACE))
    return strategy, space, marker


def _journaled(reports: Path) -> int:
    journals = list(reports.glob("sweep-e2e-*/trials.sqlite"))
    if not journals:
        return 0
    try:
        with sqlite3.connect(journals[0]) as db:
            return db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_sweep_on_a_ray_cluster_resumes_after_a_kill_and_matches_engine_run(
    cluster, tmp_path, shared_data, run_cli, monkeypatch
):
    address, env = cluster
    env["ENGINE_DATA_DIR"] = str(shared_data)
    strategy, space, marker = _files(tmp_path)
    reports = tmp_path / "ray"
    command = [sys.executable, "-c", "from engine.cli import main; main()", "sweep"]
    command += [str(strategy), "--space", str(space)]
    command += ["--address", address, "--workers", "2", "--reports-dir", str(reports)]
    command += ["--models-dir", str(REPO_ROOT / "models")]

    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while _journaled(reports) < 2 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    first.kill()
    first.wait()
    killed_at = _journaled(reports)
    assert 2 <= killed_at < 8, f"killed after {killed_at} trials: {first.stderr.read()}"
    assert marker.exists(), "the first fit should have killed its worker"

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr
    assert "resuming" in second.stdout
    (folder,) = reports.glob("sweep-e2e-*")
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["trials"] == 8 and summary["failed"] == 0
    assert summary["pbo"] is not None and 0.0 <= summary["pbo"]["pbo"] <= 1.0
    assert 0.0 <= summary["dsr"]["dsr"] <= 1.0
    assert summary["best"]["test"]["bars"] == 46 * 24
    page = (folder / "report.html").read_text()
    assert page.count("<img") == 3 and "Distribution of the PBO logits" in page

    monkeypatch.setenv("ENGINE_DATA_DIR", str(shared_data))
    monkeypatch.setenv("ENGINE_CACHE_DIR", env["ENGINE_CACHE_DIR"])
    models = REPO_ROOT / "models"
    serial = run_cli(
        "sweep", strategy, "--space", space, "--workers", "1", "--models-dir", models,
        "--reports-dir", tmp_path / "serial",
    )  # fmt: skip
    assert serial.exit_code == 0, serial.stderr
    (serial_folder,) = (tmp_path / "serial").glob("sweep-e2e-*")
    assert (serial_folder / "trials.csv").read_text() == (folder / "trials.csv").read_text()

    with sqlite3.connect(folder / "trials.sqlite") as db:
        journal = dict(db.execute("SELECT number, metrics FROM trials"))
    for number, metrics in sorted(journal.items()):
        runs = tmp_path / "runs" / str(number)
        trial = folder / "trials" / f"{number:04d}.yaml"
        result = run_cli("run", trial, "--models-dir", models, "--reports-dir", runs)
        assert result.exit_code == 0, result.stderr
        (run_folder,) = runs.iterdir()
        assert (run_folder / "metrics.json").read_text() == metrics, f"trial {number}"

    # `engine run --workers 2` fits the walk-forward's refit blocks on the cluster.
    blocks = tmp_path / "blocks"
    command = [sys.executable, "-c", "from engine.cli import main; main()", "run"]
    command += [str(folder / "trials" / "0000.yaml"), "--workers", "2", "--address", address]
    command += ["--models-dir", str(models), "--reports-dir", str(blocks)]
    on_ray = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert on_ray.returncode == 0, on_ray.stderr
    (run_folder,) = blocks.iterdir()
    assert (run_folder / "metrics.json").read_text() == journal[0]
