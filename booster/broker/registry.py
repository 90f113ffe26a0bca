"""The local schema registry: Apicurio Registry's runnable build, fetched from Maven Central and run
with the machine's java on 127.0.0.1. Its Confluent-compatible API (the one Booster and
confluent-kafka's serializers speak) is at /apis/ccompat/v7.

Layout under $BOOSTER_HOME/registry: <version>/ (the unpacked build), data/ (its H2 database: what is
registered outlives a restart, as the broker's topics do), registry.log, registry.pid.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from booster.broker.local import Say, java_path, port_open, tail
from booster.config import Settings
from booster.errors import BrokerError

# Apicurio Registry 3.0.9 runs on Java 17 (3.1 and later need 21); its runnable build is a tar.gz with
# the classifier `all` on Maven Central
APICURIO_VERSION = "3.0.9"
ARTIFACT = f"io.apicurio:apicurio-registry-app:{APICURIO_VERSION}:tar.gz:all"
# 2.8, Maven 3's default: the 3.x plugins read the artifact's descriptor first, and its parent POM
# (io.apicurio:apicurio-registry:3.0.9) is not on Maven Central, so they refuse to copy it
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:2.8"
RUNNER = f"apicurio-registry-app-{APICURIO_VERSION}-runner.jar"
CCOMPAT = "/apis/ccompat/v7"


@dataclass(frozen=True)
class LocalRegistry:
    settings: Settings
    home: Path | None = None  # its pid file and log (default: under BOOSTER_HOME); the build stays shared

    @property
    def root(self) -> Path:
        return self.home if self.home is not None else self.settings.home / "registry"

    @property
    def install(self) -> Path:
        return self.settings.home / "registry" / APICURIO_VERSION

    @property
    def port(self) -> int:
        return self.settings.registry_port

    @property
    def management_port(self) -> int:
        """Quarkus's health and metrics port: the next one (its default, 9000, is often taken)."""
        return self.port + 1

    @property
    def url(self) -> str:
        """What BOOSTER_SCHEMA_REGISTRY_URL is set to for this registry: its Confluent-compatible API."""
        return f"http://127.0.0.1:{self.port}{CCOMPAT}"

    @property
    def data(self) -> Path:
        """Its H2 database: the schemas registered, their ids and the subjects' rules."""
        return self.root / "data"

    @property
    def pid_file(self) -> Path:
        return self.root / "registry.pid"

    @property
    def log_file(self) -> Path:
        return self.root / "registry.log"

    # -- fetch -----------------------------------------------------------------------------------

    def fetched(self) -> bool:
        return (self.install / RUNNER).is_file()

    def fetch(self, say: Say = print) -> None:
        if self.fetched():
            return
        self.install.parent.mkdir(parents=True, exist_ok=True)
        with open(self.install.parent / "fetch.lock", "w") as lock:  # one fetch at a time on this machine
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not self.fetched():
                self._fetch(say)

    def _fetch(self, say: Say) -> None:
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError("Maven (mvn) is not on PATH; install it (apt-get install maven)")
        say(f"fetching Apicurio Registry {APICURIO_VERSION} (about 110 MB) from Maven Central into {self.install} ...")
        download = self.install.parent / "download"
        partial = self.install.with_name(self.install.name + ".partial")
        shutil.rmtree(download, ignore_errors=True)
        shutil.rmtree(partial, ignore_errors=True)
        cmd = [mvn, "-q", "-B", f"{DEPENDENCY_PLUGIN}:copy", f"-Dartifact={ARTIFACT}", f"-DoutputDirectory={download}"]
        result = subprocess.run(cmd, capture_output=True, text=True, cwd=self.install.parent)
        if result.returncode != 0:
            raise BrokerError(
                "could not fetch Apicurio Registry with Maven; check that Maven Central is reachable.\n"
                f"command: {' '.join(cmd)}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
            )
        [archive] = download.glob("*.tar.gz")
        with tarfile.open(archive) as tar:
            tar.extractall(partial, filter="data")
        if not (partial / RUNNER).is_file():
            raise BrokerError(f"{archive} has no {RUNNER}; remove {self.install.parent} and fetch again")
        partial.rename(self.install)
        shutil.rmtree(download, ignore_errors=True)

    # -- process ---------------------------------------------------------------------------------

    def pid(self) -> int | None:
        """The registry this project started, if it is still alive."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            return None
        return pid if RUNNER.encode() in cmdline else None

    def answers(self, timeout: float = 2.0) -> bool:
        """The Confluent-compatible API answers a request for the subjects."""
        try:
            with urllib.request.urlopen(f"{self.url}/subjects", timeout=timeout) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def start(self, say: Say = print, timeout: float = 90.0) -> bool:
        """Start the registry; True if started now, False if it was running."""
        running = self.pid()
        if running is not None:
            say(f"the schema registry is already running (pid {running}) at {self.url}")
            return False
        for port in (self.port, self.management_port):
            if port_open(port):
                raise BrokerError(
                    f"port {port} on 127.0.0.1 is taken by another process; stop it or set BOOSTER_REGISTRY_PORT "
                    "to a free port (the registry uses it and the next one)"
                )
        self.fetch(say)
        self.root.mkdir(parents=True, exist_ok=True)
        cmd = [
            java_path(), "-Xmx256m", "-XX:+UseSerialGC",
            "-Dquarkus.http.host=127.0.0.1", f"-Dquarkus.http.port={self.port}",
            "-Dquarkus.management.host=127.0.0.1", f"-Dquarkus.management.port={self.management_port}",
            # H2 on disk instead of its default in memory: what is registered outlives a restart
            f"-Dapicurio.datasource.url=jdbc:h2:file:{self.data / 'registry'}",
            "-jar", str(self.install / RUNNER),
        ]  # fmt: skip
        log = open(self.log_file, "ab")  # noqa: SIM115 - handed to the child process
        proc = subprocess.Popen(
            cmd,
            cwd=self.install,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise BrokerError(
                    f"the schema registry exited with code {proc.returncode} while starting; see {self.log_file}:\n"
                    + tail(self.log_file)
                )
            if self.answers():
                say(f"Apicurio Registry {APICURIO_VERSION} is up at {self.url} (pid {proc.pid})")
                return True
            time.sleep(0.3)
        self.stop(say=lambda _m: None)
        raise BrokerError(
            f"the schema registry did not answer within {timeout:.0f} s; see {self.log_file}:\n" + tail(self.log_file)
        )

    def stop(self, say: Say = print, timeout: float = 30.0) -> bool:
        pid = self.pid()
        if pid is None:
            say("the schema registry is not running")
            self.pid_file.unlink(missing_ok=True)
            return False
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid() is not None:
            time.sleep(0.2)
        if self.pid() is not None:
            say(f"the schema registry (pid {pid}) did not stop within {timeout:.0f} s; killing it")
            os.killpg(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        say(f"the schema registry (pid {pid}) stopped")
        return True

    def status(self) -> str:
        pid = self.pid()
        if pid is None:
            return f"Apicurio Registry {APICURIO_VERSION} is not running (home {self.root})"
        state = "answering" if self.answers() else "NOT answering"
        return f"Apicurio Registry {APICURIO_VERSION} is running (pid {pid}) at {self.url}, {state}"
