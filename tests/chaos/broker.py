"""``PrivateBroker``: a second JVM broker on free ports with its own state dir, so restart
scenarios never touch the shared broker."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[2]
KAFKA_LOCAL = REPO / "deploy" / "kafka" / "kafka_local.py"


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class PrivateBroker:
    """A second local broker (own state dir, own ports) for scenarios that restart it.

    ``deploy/kafka/kafka_local.py`` reads TICKETSORT_KAFKA_HOME / _PORT / _CONTROLLER_PORT
    from ``os.environ`` on every call, so a private copy of the module is loaded and each call
    runs with those variables set to this broker's values, then restored: the shared broker
    (``.kafka/`` on 19092) is never addressed.
    """

    def __init__(self, home: Path) -> None:
        port, controller = free_ports(2)
        self.env = {
            "TICKETSORT_KAFKA_HOME": str(home),
            "TICKETSORT_KAFKA_PORT": str(port),
            "TICKETSORT_KAFKA_CONTROLLER_PORT": str(controller),
        }
        name = f"kafka_local_private_{uuid.uuid4().hex[:8]}"
        spec = importlib.util.spec_from_file_location(name, KAFKA_LOCAL)
        assert spec is not None and spec.loader is not None
        self.module: ModuleType = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.module)
        self.address = f"127.0.0.1:{port}"

    @contextlib.contextmanager
    def _scoped_env(self) -> Iterator[None]:
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        with self._scoped_env():
            result = getattr(self.module, name)(*args, **kwargs)
            assert self.module.bootstrap_address() == self.address
            return result

    def up(self, timeout: float = 120.0) -> str:
        return str(self.call("ensure_up", timeout=timeout))

    def kill(self, sig: int) -> int | None:
        pid = self.call("kill", sig)
        return int(pid) if pid is not None else None

    def wait_down(self, pid: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.call("_alive", pid):
                return
            time.sleep(0.2)
        raise AssertionError(f"private broker pid {pid} still alive after {timeout}s")

    def start_again(self, timeout: float = 120.0) -> str:
        return str(self.call("start_again", timeout=timeout))

    def stop(self) -> None:
        self.call("stop")

    def skipped_markers(self, transactional_id: str) -> list[str]:
        """The broker's own log lines saying it skipped the commit/abort markers of a
        transaction of ``transactional_id``: that transaction is left hanging on the partitions
        named (Kafka 4.4 treats a partition without a leader, as during a single-node
        broker's shutdown, as deleted)."""
        log = Path(self.env["TICKETSORT_KAFKA_HOME"]) / "logs" / "server.log"
        try:
            lines = log.read_text(errors="replace").splitlines()
        except OSError:
            return []
        return [
            line
            for line in lines
            if "Couldn't find leader endpoint" in line
            and f"transaction markers for {transactional_id}," in line
        ]

    def skipped_partitions(self, transactional_id: str) -> set[str]:
        """The partitions (``topic-N``) named in ``skipped_markers``' lines."""
        named: set[str] = set()
        for line in self.skipped_markers(transactional_id):
            inside = line.split("partitions Set(", 1)[-1].split(")", 1)[0]
            named.update(part.strip() for part in inside.split(",") if part.strip())
        return named
