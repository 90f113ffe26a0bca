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
from booster.config import Security, Settings
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

    @property
    def root(self) -> Path:
        if self.home is not None:
            return self.home
        plain = self.settings.home / "kafka"
        return plain / "secure" if self.secure else plain

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

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def pid_file(self) -> Path:
        return self.root / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.root / "broker.log"

    @property
    def port(self) -> int:
        return self.settings.kafka_port

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

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

    def pid(self) -> int | None:
        """The pid of the broker this project started, if it is still alive."""
        try:
            pid = int(self.pid_file.read_text().strip())
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

    def _java(self) -> str:
        java_home = os.environ.get("JAVA_HOME")
        if java_home and (Path(java_home) / "bin" / "java").is_file():
            return str(Path(java_home) / "bin" / "java")
        java = shutil.which("java")
        if java is None:
            raise BrokerError("java is not on PATH; install a JDK 17 or newer (apt-get install openjdk-17-jre)")
        return java

    def _write_config(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        values = {"port": self.port, "controller_port": self.port + 1, "log_dir": self.data}
        template = "server.properties"
        if self.secure:
            if not self.secrets.made():
                self.secrets.make(self.users)
            template = "server-secure.properties"
            values.update(
                server_pem=self.secrets.server, ca_pem=self.secrets.ca, admin_password=self.secrets.password(ADMIN)
            )
        config = self.root / "server.properties"
        config.touch(mode=0o600)  # in secure mode it holds the admin's password
        config.write_text((HERE / template).read_text().format(**values))
        return config

    def _java_cmd(self, main: str, *args: str, heap: str = "1g") -> list[str]:
        return [
            self._java(), f"-Xmx{heap}", "-Xms128m", "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={HERE / 'log4j2.yaml'}",
            "-cp", f"{self.libs}/*", main, *args,
        ]  # fmt: skip

    def _format(self, config: Path) -> None:
        if (self.data / "meta.properties").is_file():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        cmd = self._java_cmd("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config), heap="256m")
        if self.secure:  # SCRAM users live in the metadata log: they are written when it is made
            for user in self.users:
                for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
                    cmd += ["--add-scram", f"{mechanism}=[name={user},password={self.secrets.password(user)}]"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise BrokerError(f"formatting the KRaft log directory failed:\n{result.stdout}{result.stderr}")

    def start(self, say: Say = print, timeout: float = 90.0) -> bool:
        """Start the broker; True if started now, False if it was already running."""
        pid = self.pid()
        if pid is not None:
            say(f"Kafka is already running (pid {pid}) on {self.bootstrap}")
            return False
        for port in (self.port, self.port + 1):
            if _port_open(port):
                raise BrokerError(
                    f"port {port} on 127.0.0.1 is taken by another process; stop it or set "
                    "BOOSTER_KAFKA_PORT (and BOOSTER_BROKER) to a free port"
                )
        self.fetch(say)
        config = self._write_config()
        self._format(config)
        log = open(self.log_file, "ab")  # noqa: SIM115 - handed to the child process
        proc = subprocess.Popen(
            self._java_cmd("kafka.Kafka", str(config)),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        security = self._probe_security()  # the admin's password file, read once
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BrokerError(
                    f"Kafka exited with code {proc.returncode} while starting; see {self.log_file}:\n"
                    + _tail(self.log_file)
                )
            if answers_metadata(self.bootstrap, security):
                mode = " (SASL_SSL, SCRAM users, ACLs enforced)" if self.secure else ""
                say(f"Kafka {kafka_version()} is up on {self.bootstrap}{mode} (pid {proc.pid})")
                return True
            time.sleep(0.3)
        self.stop(say=lambda _m: None)
        raise BrokerError(f"Kafka did not answer within {timeout:.0f} s; see {self.log_file}:\n" + _tail(self.log_file))

    def _probe_security(self) -> Security:
        return self.client_settings().security if self.secure else Security()

    def stop(self, say: Say = print, timeout: float = 60.0) -> bool:
        pid = self.pid()
        if pid is None:
            say("Kafka is not running")
            self.pid_file.unlink(missing_ok=True)
            return False
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid() is not None:
            time.sleep(0.2)
        if self.pid() is not None:
            say(f"Kafka (pid {pid}) did not stop within {timeout:.0f} s; killing it")
            os.killpg(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        say(f"Kafka (pid {pid}) stopped")
        return True

    def status(self) -> str:
        pid = self.pid()
        if pid is None:
            return f"Kafka {kafka_version()} is not running (home {self.root})"
        ok = answers_metadata(self.bootstrap, self._probe_security())
        state = "answering" if ok else "NOT answering metadata requests"
        return f"Kafka {kafka_version()} is running (pid {pid}) on {self.bootstrap}, {state}"


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


def answers_metadata(bootstrap: str, security: Security | None = None, timeout: float = 3.0) -> bool:
    """True when a broker at `bootstrap` answers a metadata request."""
    from aiokafka import AIOKafkaClient  # imported late: the CLI's help must not need it

    from booster.streams.connect import security_options

    options = security_options(security or Security())

    async def probe() -> bool:
        client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000), **options)
        try:
            await asyncio.wait_for(client.bootstrap(), timeout)
            return True
        except Exception:  # any failure means "not ready yet"
            return False
        finally:
            await client.close()

    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        return asyncio.run(probe())
    finally:
        quiet.setLevel(level)
