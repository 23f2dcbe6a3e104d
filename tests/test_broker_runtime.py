"""The local JVM broker runtime, ``deploy/kafka/kafka_local.py``, driven through its CLI.

Runs its own broker in a temporary state dir on free ports, so it never touches the shared
test broker (``.kafka/`` on 19092): ``up`` twice must leave exactly one broker process,
and ``down`` must stop it.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.broker import free_ports

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "deploy" / "kafka" / "kafka_local.py"
CLI_TIMEOUT_S = 300  # a cold first run resolves the jars with Maven


def _ere_escape(text: str) -> str:
    """Escape for pgrep's POSIX extended regex (re.escape output is not portable ERE)."""
    return re.sub(r"([.\[\]()*+?{}|^$\\])", r"\\\1", text)


def _java_pids(home: Path) -> list[int]:
    """Java processes whose command line mentions the state dir (``pgrep -f``)."""
    if shutil.which("pgrep") is not None:
        found = subprocess.run(
            ["pgrep", "-f", _ere_escape(str(home))], capture_output=True, text=True, check=False
        )
        candidates = [int(pid) for pid in found.stdout.split()]
    else:
        candidates = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    pids = []
    for pid in candidates:
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue  # exited meanwhile
        zombie = stat.rpartition(")")[2].split()[0] == "Z"
        if comm == "java" and str(home).encode() in cmdline and not zombie:
            pids.append(pid)
    return sorted(pids)


def _cli(env: dict[str, str], command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), command],
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def _read_pid(home: Path) -> int:
    return int((home / "broker.pid").read_text().strip())


@pytest.fixture
def broker_env(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path, int]]:
    missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    if missing:
        message = f"local Kafka broker needs {' and '.join(missing)} on PATH"
        if os.environ.get("KAFKA_REQUIRED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    port, controller_port = free_ports(2)
    home = tmp_path / "kafka-home"
    env = {
        **os.environ,
        "TICKETSORT_KAFKA_HOME": str(home),
        "TICKETSORT_KAFKA_PORT": str(port),
        "TICKETSORT_KAFKA_CONTROLLER_PORT": str(controller_port),
    }
    try:
        yield env, home, port
    finally:
        _cli(env, "down")
        for pid in _java_pids(home):  # safety net: never leak a broker from this test
            os.kill(pid, signal.SIGKILL)


def test_up_is_idempotent_and_down_stops(broker_env: tuple[dict[str, str], Path, int]) -> None:
    env, home, port = broker_env
    address = f"127.0.0.1:{port}"

    first = _cli(env, "up")
    assert first.returncode == 0, f"first up failed:\n{first.stdout}\n{first.stderr}"
    assert _last_line(first.stdout) == address
    first_pid = _read_pid(home)
    assert _java_pids(home) == [first_pid]

    status = _cli(env, "status")
    assert status.returncode == 0, status.stderr
    assert _last_line(status.stdout) == address

    try:
        admin_mod = importlib.import_module("confluent_kafka.admin")
    except ImportError:
        admin_mod = None
    if admin_mod is not None:  # the broker on *our* port answers metadata requests
        metadata = admin_mod.AdminClient({"bootstrap.servers": address}).list_topics(timeout=10)
        assert [b.port for b in metadata.brokers.values()] == [port]

    second = _cli(env, "up")
    assert second.returncode == 0, f"second up failed:\n{second.stdout}\n{second.stderr}"
    assert _last_line(second.stdout) == address
    assert "started broker" not in second.stderr, "second up started another broker"
    assert _read_pid(home) == first_pid
    assert _java_pids(home) == [first_pid], "expected exactly one broker java process"

    down = _cli(env, "down")
    assert down.returncode == 0, down.stderr
    assert not (home / "broker.pid").exists()
    deadline = time.monotonic() + 5
    while _java_pids(home) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _java_pids(home) == []
    assert _cli(env, "status").returncode == 1

    again = _cli(env, "down")  # no-op when nothing runs
    assert again.returncode == 0, again.stderr
