#!/usr/bin/env python3
"""Run a real single-node Apache Kafka 4.x broker (KRaft, broker+controller) without Docker.

The broker is the official JVM code, resolved from Maven Central by ``pom.xml`` next to this
file into ``deploy/kafka/lib/`` and started with ``java -cp 'lib/*' kafka.Kafka``.

Command line (Python 3.11 standard library only)::

    python3 deploy/kafka/kafka_local.py up       # start (no-op when already serving)
    python3 deploy/kafka/kafka_local.py status   # exit 0 + address if serving, else exit 1
    python3 deploy/kafka/kafka_local.py address  # print the bootstrap address
    python3 deploy/kafka/kafka_local.py down     # SIGTERM, 30 s grace, then SIGKILL

``up`` prints the bootstrap address (``127.0.0.1:19092`` by default) as its last stdout line.

Environment:
    TICKETSORT_KAFKA_HOME             state dir (default ``<repo>/.kafka``): server.properties,
                                      data/, logs/server.log, broker.out, broker.pid
    TICKETSORT_KAFKA_PORT             client listener port (default 19092)
    TICKETSORT_KAFKA_CONTROLLER_PORT  KRaft controller port (default 19093)

Importable (tests load this file with importlib): ``ensure_up``, ``stop``, ``is_up``,
``bootstrap_address``, ``kill`` (send a signal, for chaos tests) and ``start_again``.
Readiness uses a raw Kafka ApiVersions request (stdlib); when ``confluent_kafka`` is
importable, ``AdminClient.list_topics().brokers`` must also be non-empty. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import importlib
import os
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
POM = HERE / "pom.xml"
LIB_DIR = HERE / "lib"
LOG4J_CONFIG = HERE / "log4j2.yaml"
STAMP_FILE = LIB_DIR / ".version"

HOST = "127.0.0.1"
DEFAULT_PORT = 19092
DEFAULT_CONTROLLER_PORT = 19093
DEFAULT_TIMEOUT_S = 90.0
STOP_GRACE_S = 30.0
READY_LINE = "Kafka Server started"
MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"

JVM_HEAP = ["-Xmx512m", "-Xms256m"]
JVM_GC = [
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
]
JVM_MISC = ["-server", "-Djava.awt.headless=true", "-XX:+ExitOnOutOfMemoryError"]

# Popen objects of brokers started by this Python process, so they can be reaped (no zombies).
_children: dict[int, subprocess.Popen[bytes]] = {}


class BrokerError(RuntimeError):
    """The broker could not be prepared, started or reached."""


# --------------------------------------------------------------------------- configuration


def state_dir() -> Path:
    """Where config, data, logs and the pid file live (``TICKETSORT_KAFKA_HOME``)."""
    raw = os.environ.get("TICKETSORT_KAFKA_HOME", "").strip()
    return Path(raw).expanduser().resolve() if raw else REPO_ROOT / ".kafka"


def _env_port(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BrokerError(f"{name}={raw!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise BrokerError(f"{name}={value} is out of range 1-65535")
    return value


def broker_port() -> int:
    return _env_port("TICKETSORT_KAFKA_PORT", DEFAULT_PORT)


def controller_port() -> int:
    return _env_port("TICKETSORT_KAFKA_CONTROLLER_PORT", DEFAULT_CONTROLLER_PORT)


def bootstrap_address() -> str:
    """``host:port`` for ``bootstrap.servers``."""
    return f"{HOST}:{broker_port()}"


def _pid_file() -> Path:
    return state_dir() / "broker.pid"


def _properties_file() -> Path:
    return state_dir() / "server.properties"


def _data_dir() -> Path:
    return state_dir() / "data"


def _logs_dir() -> Path:
    return state_dir() / "logs"


def _server_log() -> Path:
    return _logs_dir() / "server.log"


def _stdout_file() -> Path:
    return state_dir() / "broker.out"


def _cluster_id_file() -> Path:
    return state_dir() / "cluster.id"


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock, so concurrent ``up``/``down`` calls never race."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _say(message: str) -> None:
    print(f"kafka_local: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- jars (Maven)


def pinned_versions() -> tuple[str, str]:
    """(kafka.version, log4j.version) as pinned in ``pom.xml``."""
    root = ET.parse(POM).getroot()
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    kafka = root.findtext("m:properties/m:kafka.version", namespaces=ns)
    log4j = root.findtext("m:properties/m:log4j.version", namespaces=ns)
    if not kafka or not log4j:
        raise BrokerError(f"{POM}: <kafka.version>/<log4j.version> properties are missing")
    return kafka.strip(), log4j.strip()


def _stamp_text() -> str:
    kafka, log4j = pinned_versions()
    return f"kafka_2.13={kafka} log4j={log4j}\n"


def jars_ready() -> bool:
    """True when lib/ holds the jars for the versions pinned in pom.xml."""
    kafka, log4j = pinned_versions()
    try:
        stamp_ok = STAMP_FILE.read_text() == _stamp_text()
    except OSError:
        return False
    return (
        stamp_ok
        and (LIB_DIR / f"kafka_2.13-{kafka}.jar").is_file()
        and (LIB_DIR / f"log4j-core-{log4j}.jar").is_file()
        and (LIB_DIR / f"log4j-slf4j-impl-{log4j}.jar").is_file()
    )


def ensure_jars() -> Path:
    """Fill lib/ via Maven (offline first, then online) unless the stamp says it is current."""
    if jars_ready():
        return LIB_DIR
    LIB_DIR.mkdir(parents=True, exist_ok=True)
    with _flock(LIB_DIR / ".lock"):
        if jars_ready():  # another process filled it while we waited
            return LIB_DIR
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError("mvn not found on PATH (needed once to resolve the Kafka jars)")
        STAMP_FILE.unlink(missing_ok=True)
        for jar in LIB_DIR.glob("*.jar"):  # never mix jars of two versions
            jar.unlink()
        base = [mvn, "-B", "-q", "-f", str(POM)]
        offline = subprocess.run(
            [*base, "-o", "process-resources"], capture_output=True, text=True, check=False
        )
        if offline.returncode != 0:
            _say("resolving Kafka jars from Maven Central (first run only) ...")
            online = subprocess.run(
                [*base, "process-resources"], capture_output=True, text=True, check=False
            )
            if online.returncode != 0:
                tail = "\n".join((online.stdout + online.stderr).splitlines()[-40:])
                raise BrokerError(f"mvn failed (exit {online.returncode}):\n{tail}")
        STAMP_FILE.write_text(_stamp_text())
        if not jars_ready():
            raise BrokerError(f"mvn succeeded but {LIB_DIR} lacks the pinned jars")
    return LIB_DIR


# --------------------------------------------------------------------------- processes


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise BrokerError("java not found (set JAVA_HOME or put Java 17+ on PATH)")
    return java


def _proc_state(pid: int) -> str | None:
    """Single-letter /proc state (R, S, T, Z, ...) or None when the pid does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[0]


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (reaps our own children)."""
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]
        return False
    state = _proc_state(pid)
    return state is not None and state not in ("Z", "X")


def _is_our_broker(pid: int) -> bool:
    """Is ``pid`` a live ``kafka.Kafka`` JVM using this state dir's server.properties?"""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    wanted = str(_properties_file()).encode()
    return MAIN_CLASS.encode() in args and wanted in args and _alive(pid)


def _find_broker_pids() -> list[int]:
    pids: list[int] = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _is_our_broker(int(entry.name)):
            pids.append(int(entry.name))
    return sorted(pids)


def broker_pid() -> int | None:
    """Pid of this state dir's broker: the pid file if valid, else a /proc scan."""
    try:
        recorded: int | None = int(_pid_file().read_text().strip())
    except (OSError, ValueError):
        recorded = None
    if recorded is not None and _is_our_broker(recorded):
        return recorded
    found = _find_broker_pids()
    if found:  # pid file lost or stale, but the broker still runs: adopt it
        _write_pid(found[0])
        return found[0]
    return None


def _write_pid(pid: int) -> None:
    tmp = _pid_file().with_suffix(".tmp")
    tmp.write_text(f"{pid}\n")
    os.replace(tmp, _pid_file())


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True


# --------------------------------------------------------------------------- readiness


def _api_versions_ok(timeout: float = 2.0) -> bool:
    """Send a Kafka ApiVersions v0 request and expect error_code 0 with a non-empty answer."""
    correlation_id = 0x7A11
    client_id = b"kafka_local"
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection((HOST, broker_port()), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(struct.pack(">i", len(body)) + body)
            size = struct.unpack(">i", _recv_exact(sock, 4))[0]
            if not 10 <= size <= 1 << 20:
                return False
            payload = _recv_exact(sock, size)
    except (OSError, struct.error):
        return False
    got_id: int
    error_code: int
    count: int
    got_id, error_code, count = struct.unpack(">ihi", payload[:10])
    return got_id == correlation_id and error_code == 0 and count > 0


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise OSError("connection closed")
        chunks += chunk
    return bytes(chunks)


def _admin_sees_broker() -> bool | None:
    """``list_topics(timeout=2).brokers`` non-empty; None when confluent_kafka is missing."""
    try:
        admin_mod = importlib.import_module("confluent_kafka.admin")
    except ImportError:
        return None
    try:
        admin = admin_mod.AdminClient({"bootstrap.servers": bootstrap_address()})
        metadata = admin.list_topics(timeout=2)
    except Exception:  # KafkaException and friends: not ready (yet)
        return False
    brokers: dict[int, object] = metadata.brokers
    return len(brokers) > 0


def _serving() -> bool:
    return _api_versions_ok() and _admin_sees_broker() is not False


def is_up() -> bool:
    """True when this state dir's broker process is alive and answers Kafka requests."""
    return broker_pid() is not None and _serving()


def _log_size() -> int:
    try:
        return _server_log().stat().st_size
    except OSError:
        return 0


def _logged_ready_since(offset: int) -> bool:
    try:
        with open(_server_log(), "rb") as handle:
            if handle.seek(0, os.SEEK_END) < offset:
                offset = 0  # log was truncated or replaced
            handle.seek(offset)
            return READY_LINE.encode() in handle.read()
    except OSError:
        return False


def log_tail(lines: int = 40) -> str:
    """Last lines of logs/server.log and of the JVM's stdout/stderr (broker.out)."""
    parts: list[str] = []
    for path in (_server_log(), _stdout_file()):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        tail = text.splitlines()[-lines:]
        if tail:
            parts.append(f"--- last {len(tail)} lines of {path} ---\n" + "\n".join(tail))
    return "\n".join(parts) if parts else f"(no logs under {state_dir()})"


# --------------------------------------------------------------------------- start / stop


def _server_properties() -> str:
    port, cport = broker_port(), controller_port()
    if port == cport:
        raise BrokerError(f"broker and controller port are both {port}")
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{HOST}:{cport}",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{cport}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(_data_dir()),
        "num.partitions": "3",
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "min.insync.replicas": "1",
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "num.recovery.threads.per.data.dir": "1",
    }
    header = "# Generated by deploy/kafka/kafka_local.py; rewritten on every start.\n"
    return header + "".join(f"{key}={value}\n" for key, value in settings.items())


def new_cluster_id() -> str:
    """A Kafka-style cluster id: urlsafe base64 of 16 random bytes, no padding, no leading '-'."""
    while True:
        cluster_id = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _cluster_id() -> str:
    path = _cluster_id_file()
    try:
        existing = path.read_text().strip()
    except OSError:
        existing = ""
    if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", existing):
        return existing
    cluster_id = new_cluster_id()
    path.write_text(cluster_id + "\n")
    return cluster_id


def _jvm_base(heap: list[str]) -> list[str]:
    return [
        _java(),
        *heap,
        *JVM_GC,
        *JVM_MISC,
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        f"-Dkafka.logs.dir={_logs_dir()}",
        "-cp",
        str(LIB_DIR / "*"),  # literal '*': the JVM expands it (no shell involved)
    ]


def _format_storage() -> None:
    if (_data_dir() / "meta.properties").is_file():
        return  # already formatted: reuse the data dir (same cluster id)
    cmd = [
        *_jvm_base(["-Xmx256m"]),
        STORAGE_TOOL,
        "format",
        f"--cluster-id={_cluster_id()}",
        "-c",
        str(_properties_file()),
        "--ignore-formatted",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
    if result.returncode != 0:
        raise BrokerError(
            f"storage format failed (exit {result.returncode}):\n{result.stdout}{result.stderr}"
        )


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _start_locked(timeout: float) -> str:
    """Start a broker on this state dir (caller holds the lock and checked none runs)."""
    ensure_jars()
    for port in (broker_port(), controller_port()):
        if not _port_free(port):
            raise BrokerError(f"{HOST}:{port} is already in use by another process")
    for directory in (_data_dir(), _logs_dir()):
        directory.mkdir(parents=True, exist_ok=True)
    _properties_file().write_text(_server_properties())
    _format_storage()

    offset = _log_size()
    cmd = [*_jvm_base(JVM_HEAP), MAIN_CLASS, str(_properties_file())]
    with open(_stdout_file(), "ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting broker ===\n".encode())
        out.flush()
        proc = subprocess.Popen(
            cmd,
            cwd=state_dir(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _children[proc.pid] = proc
    _write_pid(proc.pid)
    _say(f"started broker pid {proc.pid}, waiting up to {timeout:g} s for it to serve")

    deadline = time.monotonic() + timeout
    logged = False
    while True:
        code = proc.poll()
        if code is not None:
            _children.pop(proc.pid, None)
            _pid_file().unlink(missing_ok=True)
            raise BrokerError(f"broker exited with code {code} during startup")
        logged = logged or _logged_ready_since(offset)
        if logged and _serving():
            return bootstrap_address()
        if time.monotonic() >= deadline:
            _terminate(proc.pid)
            _pid_file().unlink(missing_ok=True)
            raise BrokerError(f"broker did not serve within {timeout:g} s (stopped it)")
        time.sleep(0.25)


def _terminate(pid: int, grace: float = STOP_GRACE_S) -> None:
    for sig in (signal.SIGTERM, signal.SIGCONT):  # SIGCONT: a SIGSTOPped JVM must wake to exit
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    if _wait_gone(pid, grace):
        return
    _say(f"broker pid {pid} ignored SIGTERM for {grace:.0f} s, sending SIGKILL")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _wait_gone(pid, 10.0)


def _wait_serving_or_gone(pid: int, timeout: float) -> bool:
    """True once ``pid`` serves, False once it is gone; BrokerError if neither in time."""
    deadline = time.monotonic() + timeout
    while True:
        if not _is_our_broker(pid):
            return False
        if _serving():
            return True
        if time.monotonic() >= deadline:
            raise BrokerError(
                f"broker pid {pid} is running but not serving after {timeout:g} s "
                "(not starting a second one; run `down` first)"
            )
        time.sleep(0.25)


def ensure_up(timeout: float = DEFAULT_TIMEOUT_S) -> str:
    """Start the broker unless it already serves; return the bootstrap address.

    Never starts a second broker for the same state dir: a running but not yet serving
    broker is waited for. Raises BrokerError (with the log tail in the message) on failure.
    """
    with _flock(state_dir() / ".lock"):
        pid = broker_pid()
        if pid is not None and _wait_serving_or_gone(pid, timeout):
            return bootstrap_address()
        try:
            return _start_locked(timeout)
        except BrokerError as exc:
            raise BrokerError(f"{exc}\n{log_tail()}") from None


def start_again(timeout: float = DEFAULT_TIMEOUT_S) -> str:
    """After ``kill()``/``stop()``: start the broker again on the same data dir.

    Waits (up to 30 s) for a killed broker to exit first; returns at once if it still serves.
    """
    with _flock(state_dir() / ".lock"):
        pid = broker_pid()
        if pid is not None:
            if _serving():
                return bootstrap_address()
            if not _wait_gone(pid, min(timeout, STOP_GRACE_S)):
                raise BrokerError(
                    f"broker pid {pid} is alive but not serving (SIGSTOPped?); "
                    "send SIGCONT or call stop() first"
                )
        try:
            return _start_locked(timeout)
        except BrokerError as exc:
            raise BrokerError(f"{exc}\n{log_tail()}") from None


def kill(sig: int = signal.SIGKILL) -> int | None:
    """Send ``sig`` to the broker (chaos tests); returns its pid, or None if none runs.

    The pid file is kept, so ``start_again()`` reuses the same state and data dir.
    """
    pid = broker_pid()
    if pid is None:
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    return pid


def stop(timeout: float = STOP_GRACE_S) -> bool:
    """SIGTERM the broker, SIGKILL after ``timeout`` s; True if one was running."""
    with _flock(state_dir() / ".lock"):
        pid = broker_pid()
        if pid is not None:
            _terminate(pid, timeout)
        _pid_file().unlink(missing_ok=True)
        return pid is not None


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the broker (no-op if it already serves)")
    up.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds to wait")
    sub.add_parser("down", help="stop the broker (no-op if not running)")
    sub.add_parser("status", help="exit 0 and print the address if the broker serves")
    sub.add_parser("address", help="print the bootstrap address")
    args = parser.parse_args(argv)

    try:
        if args.command == "up":
            print(ensure_up(timeout=args.timeout), flush=True)
        elif args.command == "down":
            _say("stopped broker" if stop() else "broker was not running")
        elif args.command == "status":
            if not is_up():
                _say(f"no broker serving at {bootstrap_address()} for {state_dir()}")
                return 1
            print(bootstrap_address())
        else:
            print(bootstrap_address())
    except BrokerError as exc:
        _say(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
