"""Running the service for a scenario: as ``python -m consumer`` (a child process, forked
from the fork server when one is given) or on a thread of the test process (``ServiceThread``,
with ``EventLog`` for its structlog events)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from consumer.settings import Settings
from tests.chaos.zygote import REPO, Zygote


class EventLog(logging.Handler):
    """Collects the service's structlog events (dicts) from the root logger, in process."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.events: list[dict[str, Any]] = []
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, dict):
            self.events.append(dict(record.msg))
        try:
            self.lines.append(self.format(record) if self.formatter else record.getMessage())
        except Exception:  # never break the service's logging
            self.lines.append(repr(record.msg))

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in list(self.events) if e.get("event") == name]

    def __enter__(self) -> EventLog:
        from consumer.logs import get_logger

        get_logger(__name__)  # configures logging once (it replaces the root handlers)
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *_: object) -> None:
        logging.getLogger().removeHandler(self)


class ServiceThread:
    """A ``ClassifierService`` running on a thread of the test process."""

    def __init__(self, settings: Settings, predictor: Any) -> None:
        from consumer.service import ClassifierService

        self.service = ClassifierService(settings, predictor)
        self.code: int | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="service", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.code = self.service.run()
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def alive(self) -> bool:
        return self.thread.is_alive()

    def metrics_text(self) -> str:
        import urllib.request

        deadline = time.monotonic() + 30
        while self.service.health is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert self.service.health is not None
        url = f"http://127.0.0.1:{self.service.health.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            return str(response.read().decode())

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels`` (via /metrics)."""
        total = 0.0
        for line in self.metrics_text().splitlines():
            if not line.startswith(name) or line.startswith("#"):
                continue
            head, _, value = line.rpartition(" ")
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                total += float(value)
        return total

    def stop(self, timeout: float = 60.0) -> int | None:
        self.service.stop_event.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the service did not stop"
        if self.error is not None:
            raise self.error
        return self.code


def chaos_env(settings: Settings, model_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for ``python -m consumer`` against ``settings``' broker and topics."""
    from tests.kafka_helpers import service_env

    env = service_env(settings, model_dir)
    env.update(
        {
            # One thread: the test machine's cores are shared with the broker and the test.
            "TICKETSORT_MODEL__THREADS": "1",
            "TICKETSORT_MODEL__DEVICE": "cpu",
            "TOKENIZERS_PARALLELISM": "false",
            "OMP_NUM_THREADS": "1",
        }
    )
    env.update(extra)
    return env


def kafka_extra(**values: str | int) -> str:
    return json.dumps(values)


class ServiceProcess:
    """``python -m consumer`` as a child process with its own JSON log file.

    Forked from the fork server when one is given (``chaos_spawner``), else exec'd.
    """

    def __init__(self, env: dict[str, str], log_path: Path, spawner: Zygote | None = None) -> None:
        self.env, self.log_path, self.spawner = env, log_path, spawner
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._popen: subprocess.Popen[bytes] | None = None
        if spawner is not None:
            log_path.touch()
            self.pid = spawner.spawn(env, log_path)
        else:
            with log_path.open("ab") as log:
                self._popen = subprocess.Popen(
                    [sys.executable, "-m", "consumer"],
                    cwd=REPO,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            self.pid = self._popen.pid

    def poll(self) -> int | None:
        if self._popen is not None:
            return self._popen.poll()
        assert self.spawner is not None
        return self.spawner.exits.get(self.pid)

    def wait(self, timeout: float | None = None) -> int:
        if self._popen is not None:
            return self._popen.wait(timeout)
        assert self.spawner is not None
        code = self.spawner.wait_exit(self.pid, timeout)
        if code is None:
            raise subprocess.TimeoutExpired("python -m consumer", timeout or 0)
        return code

    def text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for line in self.text().splitlines():
            if f'"{name}"' not in line:
                continue
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if event.get("event") == name:
                    found.append(event)
        return found

    def wait_event(self, name: str, timeout: float = 120.0, count: int = 1) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.events(name)) >= count:
                return True
            if self.poll() is not None:
                return len(self.events(name)) >= count
            time.sleep(0.1)
        return False

    def alive(self) -> bool:
        return self.poll() is None

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self, sig: int = signal.SIGKILL) -> int:
        self.send_signal(sig)
        return self.wait(60)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (SIGKILL after ``timeout``); the exit code."""
        if self.poll() is None:
            self.send_signal(signal.SIGTERM)
            try:
                return self.wait(timeout)
            except subprocess.TimeoutExpired:
                self.send_signal(signal.SIGKILL)
                return self.wait(10)
        code = self.poll()
        assert code is not None
        return code

    def tail(self, chars: int = 4000) -> str:
        return self.text()[-chars:]

    def stacks(self) -> str:
        """The Python stacks of every thread (forked children only), for a stuck service."""
        if self.spawner is None or self.poll() is not None:
            return self.tail()
        before = len(self.text())
        self.send_signal(signal.SIGUSR1)
        time.sleep(1.0)
        return self.text()[before:][-6000:] or self.tail()
