"""The local Apache Kafka broker: fetched from Maven Central, run with the machine's java.

Layout under $BOOSTER_HOME/kafka: libs/ (jars), data/ (KRaft log directory), server.properties,
broker.log, broker.pid.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from booster.broker.secure import ADMIN, USERS, Secrets
from booster.config import Security, Settings, min_insync_replicas
from booster.errors import BrokerError

HERE = Path(__file__).parent
POM = HERE / "pom.xml"
Say = Callable[[str], object]


def kafka_version() -> str:
    text = POM.read_text()
    start = text.index("<kafka.version>") + len("<kafka.version>")
    return text[start : text.index("</kafka.version>")]


@dataclass(frozen=True)
class LocalKafka:
    """The local broker; `secure`: a SASL_SSL listener, SCRAM users and the standard authorizer, with
    its own log directory (secure/ under the plain one's), CA and passwords."""

    settings: Settings
    secure: bool = False
    users: tuple[str, ...] = USERS  # the SCRAM users a secure broker is formatted with
    home: Path | None = None  # its config, data and secrets (default: under BOOSTER_HOME); jars stay shared
    nodes: int = 1  # more: a KRaft cluster of that many nodes on this machine, each on its own ports

    def __post_init__(self) -> None:
        if self.nodes not in (1, 3):
            raise BrokerError(f"--nodes {self.nodes}: the local cluster has 1 or 3 nodes")
        if self.nodes > 1 and self.secure:
            raise BrokerError("the secure local broker is one node; start it without --nodes")

    @property
    def root(self) -> Path:
        if self.home is not None:
            return self.home
        plain = self.settings.home / "kafka"
        if self.nodes > 1:
            return plain / "cluster"
        return plain / "secure" if self.secure else plain

    @property
    def node_ids(self) -> range:
        return range(1, self.nodes + 1)

    def node_root(self, node: int) -> Path:
        return self.root if self.nodes == 1 else self.root / f"node-{node}"

    def node_port(self, node: int) -> int:
        """A node's client port; its controller's is the next one."""
        return self.port + 2 * (node - 1)

    @property
    def min_insync(self) -> int:
        return min_insync_replicas(self.nodes)

    @property
    def libs(self) -> Path:
        return self.settings.home / "kafka" / "libs" / kafka_version()

    @property
    def secrets(self) -> Secrets:
        return Secrets(self.root)

    def client_settings(self, user: str = ADMIN, **env: str) -> Settings:
        """Settings that reach this broker (as `user`, when secure)."""
        source = {**os.environ, "BOOSTER_BROKER": self.bootstrap, **env}
        if self.secure:
            source.update(self.secrets.client_env(user))
        return Settings.from_env(source)

    def data(self, node: int = 1) -> Path:
        return self.node_root(node) / "data"

    def pid_file(self, node: int = 1) -> Path:
        return self.node_root(node) / "broker.pid"

    def log_file(self, node: int = 1) -> Path:
        return self.node_root(node) / "broker.log"

    @property
    def port(self) -> int:
        return self.settings.kafka_port

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.node_port(n)}" for n in self.node_ids)

    # -- fetch -----------------------------------------------------------------------------------

    def fetched(self) -> bool:
        return (self.libs / f"kafka_2.13-{kafka_version()}.jar").is_file()

    def fetch(self, say: Say = print) -> None:
        if self.fetched():
            return
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError("Maven (mvn) is not on PATH; install it (apt-get install maven)")
        say(f"fetching Apache Kafka {kafka_version()} from Maven Central into {self.libs} ...")
        partial = self.libs.with_name(self.libs.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        cmd = [
            mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
            f"-DoutputDirectory={partial}", "-DincludeScope=runtime",
        ]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise BrokerError(
                "could not fetch Kafka's jars with Maven; check that Maven Central is reachable.\n"
                f"command: {' '.join(cmd)}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
            )
        partial.rename(self.libs)

    # -- process ---------------------------------------------------------------------------------

    def pid(self, node: int = 1) -> int | None:
        """The pid of a node (the broker) this project started, if it is still alive."""
        try:
            pid = int(self.pid_file(node).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            return None
        return pid if b"kafka.Kafka" in cmdline else None

    def _write_config(self, node: int = 1) -> Path:
        self.node_root(node).mkdir(parents=True, exist_ok=True)
        port = self.node_port(node)
        values: dict[str, object] = {"port": port, "controller_port": port + 1, "log_dir": self.data(node)}
        template = "server.properties"
        if self.secure:
            if not self.secrets.made():
                self.secrets.make(self.users)
            template = "server-secure.properties"
            values.update(
                server_pem=self.secrets.server, ca_pem=self.secrets.ca, admin_password=self.secrets.password(ADMIN)
            )
        if self.nodes > 1:
            template = "server-cluster.properties"
            voters = ",".join(f"{n}@127.0.0.1:{self.node_port(n) + 1}" for n in self.node_ids)
            values.update(node_id=node, voters=voters, nodes=self.nodes, min_insync=self.min_insync)
        config = self.node_root(node) / "server.properties"
        config.touch(mode=0o600)  # in secure mode it holds the admin's password
        config.write_text((HERE / template).read_text().format(**values))
        return config

    def _java_cmd(self, main: str, *args: str, heap: str = "1g") -> list[str]:
        return [
            java_path(), f"-Xmx{heap}", "-Xms128m", "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={HERE / 'log4j2.yaml'}",
            "-cp", f"{self.libs}/*", main, *args,
        ]  # fmt: skip

    def _format(self, config: Path, node: int, cluster_id: str) -> None:
        if (self.data(node) / "meta.properties").is_file():
            return
        cmd = self._java_cmd("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config), heap="256m")
        if self.secure:  # SCRAM users live in the metadata log: they are written when it is made
            for user in self.users:
                for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
                    cmd += ["--add-scram", f"{mechanism}=[name={user},password={self.secrets.password(user)}]"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise BrokerError(f"formatting the KRaft log directory failed:\n{result.stdout}{result.stderr}")

    def _cluster_id(self) -> str:
        """The cluster's id: every node's log directory is formatted with the same one."""
        for node in self.node_ids:
            meta = self.data(node) / "meta.properties"
            if meta.is_file():
                for line in meta.read_text().splitlines():
                    if line.startswith("cluster.id="):
                        return line.split("=", 1)[1].strip()
        return new_cluster_id()

    def start(self, say: Say = print, timeout: float = 90.0) -> bool:
        """Start the broker (every node of the cluster); True if started now, False if it was running."""
        running = [n for n in self.node_ids if self.pid(n) is not None]
        if len(running) == self.nodes:
            pids = ", ".join(str(self.pid(n)) for n in running)
            say(f"Kafka is already running (pid {pids}) on {self.bootstrap}")
            return False
        for node in self.node_ids:
            if node in running:
                continue
            for port in (self.node_port(node), self.node_port(node) + 1):
                if port_open(port):
                    raise BrokerError(
                        f"port {port} on 127.0.0.1 is taken by another process; stop it or set "
                        "BOOSTER_KAFKA_PORT (and BOOSTER_BROKER) to a free port"
                        + (f" (the {self.nodes} nodes use {self.nodes * 2} ports from it)" if self.nodes > 1 else "")
                    )
        self.fetch(say)
        cluster_id = self._cluster_id()
        procs = {}
        for node in self.node_ids:
            if node not in running:
                procs[node] = self.start_node(node, cluster_id)
        deadline = time.monotonic() + timeout
        security = self._probe_security()  # the admin's password file, read once
        while time.monotonic() < deadline:
            for node, proc in procs.items():
                if proc.poll() is not None:
                    self.stop(say=lambda _m: None)
                    raise BrokerError(
                        f"Kafka exited with code {proc.returncode} while starting; see {self.log_file(node)}:\n"
                        + tail(self.log_file(node))
                    )
            if self._answers(security):
                mode = " (SASL_SSL, SCRAM users, ACLs enforced)" if self.secure else ""
                if self.nodes > 1:
                    mode = (
                        f" ({self.nodes} nodes, replication factor {self.nodes}, min.insync.replicas {self.min_insync})"
                    )
                pids = ", ".join(str(p.pid) for p in procs.values())
                say(f"Kafka {kafka_version()} is up on {self.bootstrap}{mode} (pid {pids})")
                return True
            time.sleep(0.3)
        self.stop(say=lambda _m: None)
        log = self.log_file(next(iter(procs)))
        raise BrokerError(f"Kafka did not answer within {timeout:.0f} s; see {log}:\n" + tail(log))

    def start_node(self, node: int, cluster_id: str | None = None) -> subprocess.Popen[bytes]:
        """Start one node (formatted first if new) and return at once; `start` waits for the cluster."""
        config = self._write_config(node)
        self._format(config, node, cluster_id or self._cluster_id())
        log = open(self.log_file(node), "ab")  # noqa: SIM115 - handed to the child process
        heap = "1g" if self.nodes == 1 else "512m"
        proc = subprocess.Popen(
            self._java_cmd("kafka.Kafka", str(config), heap=heap),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.pid_file(node).write_text(str(proc.pid))
        return proc

    def _answers(self, security: Security) -> bool:
        """Every node answers metadata requests, and (a cluster) the metadata lists every node."""
        if self.nodes == 1:
            return answers_metadata(self.bootstrap, security)
        return all(answers_metadata(f"127.0.0.1:{self.node_port(n)}", security) for n in self.node_ids) and (
            brokers_listed(self.bootstrap, security) == self.nodes
        )

    def _probe_security(self) -> Security:
        return self.client_settings().security if self.secure else Security()

    def stop(self, say: Say = print, timeout: float = 60.0) -> bool:
        pids = {n: self.pid(n) for n in self.node_ids}
        alive = {n: pid for n, pid in pids.items() if pid is not None}
        if not alive:
            say("Kafka is not running")
            for node in self.node_ids:
                self.pid_file(node).unlink(missing_ok=True)
            return False
        for pid in alive.values():
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(self.pid(n) is not None for n in alive):
            time.sleep(0.2)
        for node, pid in alive.items():
            if self.pid(node) is not None:
                say(f"Kafka (pid {pid}) did not stop within {timeout:.0f} s; killing it")
                os.killpg(pid, signal.SIGKILL)
            self.pid_file(node).unlink(missing_ok=True)
        say(f"Kafka (pid {', '.join(str(p) for p in alive.values())}) stopped")
        return True

    def status(self) -> str:
        pids = [self.pid(n) for n in self.node_ids]
        if all(pid is None for pid in pids):
            return f"Kafka {kafka_version()} is not running (home {self.root})"
        ok = answers_metadata(self.bootstrap, self._probe_security())
        state = "answering" if ok else "NOT answering metadata requests"
        shown = ", ".join("down" if pid is None else str(pid) for pid in pids)
        nodes = f"{self.nodes} nodes, " if self.nodes > 1 else ""
        return f"Kafka {kafka_version()} is running ({nodes}pid {shown}) on {self.bootstrap}, {state}"


def new_cluster_id() -> str:
    """A random KRaft cluster id, as Kafka's `Uuid.randomUuid()` makes one: URL-safe base64 of 16 random
    bytes, never starting with "-" (kafka-storage would take it for an option: seen once in CI, a broker
    that could not be formatted)."""
    while True:
        found = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not found.startswith("-"):
            return found


def java_path() -> str:
    """The java that runs the broker and the registry: $JAVA_HOME's, else the one on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise BrokerError("java is not on PATH; install a JDK 17 or newer (apt-get install openjdk-17-jre)")
    return java


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


def answers_metadata(bootstrap: str, security: Security | None = None, timeout: float = 3.0) -> bool:
    """True when a broker at `bootstrap` answers a metadata request."""
    return brokers_listed(bootstrap, security, timeout) > 0


def brokers_listed(bootstrap: str, security: Security | None = None, timeout: float = 3.0) -> int:
    """The brokers the cluster's metadata lists, asked at `bootstrap` (0: no answer)."""
    from aiokafka import AIOKafkaClient  # imported late: the CLI's help must not need it

    from booster.streams.connect import security_options

    options = security_options(security or Security())

    async def probe() -> int:
        client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000), **options)
        try:
            await asyncio.wait_for(client.bootstrap(), timeout)
            return len(client.cluster.brokers())
        except Exception:  # any failure means "not ready yet"
            return 0
        finally:
            await client.close()

    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        return asyncio.run(probe())
    finally:
        quiet.setLevel(level)
