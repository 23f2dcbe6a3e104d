"""The fork server of the failure suite and its client (``Zygote``): ``python -m consumer``
in ~1 s per start instead of ~20 s (see the comment above ``zygote_main``)."""

from __future__ import annotations

import contextlib
import faulthandler
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from consumer.settings import Settings

if TYPE_CHECKING:
    from consumer.__main__ import PredictorLoader
    from consumer.predictor import Predictor

REPO = Path(__file__).resolve().parents[2]


def zygote_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "TICKETSORT_MODEL__THREADS": "1",
            "TICKETSORT_MODEL__DEVICE": "cpu",
            "TOKENIZERS_PARALLELISM": "false",
            "OMP_NUM_THREADS": "1",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


class Zygote:
    """Client of the fork server at the end of this file (one per session and model)."""

    def __init__(self, model_dir: Path, log_path: Path, timeout: float = 300.0) -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.chaos.zygote", str(model_dir)],
            cwd=REPO,
            env=zygote_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        self.exits: dict[int, int] = {}
        self._pids: list[int] = []
        self._ready = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, name="zygote-reader", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.5):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the fork server did not start: {self._tail()}")

    def _tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with contextlib.suppress(ValueError):
                message = json.loads(raw)
                with self._changed:
                    if "ready" in message:
                        self._ready.set()
                    elif "exit" in message:
                        self.exits[int(message["exit"])] = int(message["code"])
                    elif "pid" in message:
                        self._pids.append(int(message["pid"]))
                    self._changed.notify_all()

    def spawn(self, env: dict[str, str], log_path: Path) -> int:
        assert self.proc.stdin is not None and self.proc.poll() is None, self._tail()
        with self._changed:
            before = len(self._pids)
            self.proc.stdin.write(json.dumps({"env": env, "log": str(log_path)}).encode() + b"\n")
            self.proc.stdin.flush()
            if not self._changed.wait_for(lambda: len(self._pids) > before, timeout=30):
                raise RuntimeError(f"the fork server did not fork: {self._tail()}")
            return self._pids[before]

    def wait_exit(self, pid: int, timeout: float | None) -> int | None:
        with self._changed:
            self._changed.wait_for(lambda: pid in self.exits, timeout=timeout)
            return self.exits.get(pid)

    def close(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._log.close()


# --------------------------------------------------------------------------- fork server
# A fork server for the failure suite: ``python -m consumer`` without the 20 s start each time.
#
# Importing torch/transformers/peft and loading the model takes ~20 s on the shared 2-core test
# machine, so a scenario that kills and restarts the consumer a few times would spend minutes
# starting Python. This process imports ``consumer.__main__`` and loads the model once, then
# forks one child per request; the child runs ``consumer.__main__.main([])`` (the very code
# path of ``python -m consumer``: settings from the environment, signal handlers, the service,
# its exit code) with its stdout/stderr on a log file. Only the model loading differs: ``main``
# is given a ``load_predictor`` that returns the preloaded predictor for the preloaded model
# folder; any other folder takes the real loading path in the child (nothing is patched).
#
# Protocol (JSON lines): the parent writes ``{"env": {...}, "log": "/path"}`` and reads
# ``{"pid": N}``; whenever a child ends it reads ``{"exit": N, "code": C}`` (``-9`` after
# SIGKILL). ``{"ready": true}`` is the first line, once the model is loaded. No Kafka client
# exists in this process before a fork (librdkafka threads do not survive fork), and
# OMP_NUM_THREADS=1 keeps torch from starting a thread pool here.
#
# Usage: ``python -m tests.chaos.zygote MODEL_DIR``.


def _zygote_child(request: dict[str, Any], load: PredictorLoader) -> None:
    """In the forked child: become ``python -m consumer`` with the requested environment."""
    fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # ServiceProcess.stacks()
    os.environ.clear()
    os.environ.update(request["env"])
    code = 1
    try:
        import consumer.settings

        consumer.settings.get_settings.cache_clear()
        from consumer.__main__ import main

        code = main([], load_predictor=load)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def zygote_main(model_dir: Path) -> int:
    """The fork server (see ``Zygote``); runs as ``python -m tests.chaos.zygote DIR``."""
    model_dir = model_dir.resolve()
    import consumer.__main__
    import consumer.service
    from consumer.settings import Settings

    settings = Settings()
    preloaded = consumer.service.load_predictor(
        settings.model_copy(update={"model": settings.model.model_copy(update={"path": model_dir})})
    )

    def load(settings: Settings) -> Predictor:
        from consumer.model_store import resolve_model_dir

        folder = resolve_model_dir(settings.model.store, settings.model.path)
        return preloaded if folder == model_dir else consumer.service.load_predictor(settings)

    out = sys.stdout
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    stdin = sys.stdin.fileno()
    buffer = b""
    children: set[int] = set()
    while True:
        readable, _, _ = select.select([stdin], [], [], 0.1)
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            children.discard(pid)
            out.write(json.dumps({"exit": pid, "code": os.waitstatus_to_exitcode(status)}) + "\n")
            out.flush()
        if not readable:
            continue
        chunk = os.read(stdin, 65536)
        if not chunk:
            break
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if not line.strip():
                continue
            request = json.loads(line)
            pid = os.fork()
            if pid == 0:
                _zygote_child(request, load)
            children.add(pid)
            out.write(json.dumps({"pid": pid}) + "\n")
            out.flush()
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return 0


if __name__ == "__main__":
    sys.exit(zygote_main(Path(sys.argv[1])))
