#!/usr/bin/env python3
"""Local dev stack without Docker: Kafka (single-node KRaft), Prometheus and Alertmanager.

Kafka runs from Maven Central jars on the machine's JDK (stack/pom.xml); Prometheus and
Alertmanager come from the Debian packages (installed with apt-get when missing). All state
lives in `.stack/` at the repo root. `.stack/env.json` is the interface: tests and the demo
read the service addresses from it.

    python stack/devstack.py up       # start what is not running, wait until it answers
    python stack/devstack.py up-secure  # a second broker: SASL_SSL (SCRAM-SHA-512, PLAIN), mTLS
    python stack/devstack.py status   # exit 1 if a service is down
    python stack/devstack.py down     # stop what `up` started
    python stack/devstack.py stop-kafka  # only the broker (a broker outage); `up` restarts it
    python stack/devstack.py stop-alertmanager  # only Alertmanager (it forgets its alerts)
    python stack/devstack.py logs     # where the logs are

Environment (defaults): SALEWATCH_KAFKA_VERSION (3.9.1), SALEWATCH_STACK_KAFKA_PORT (19092),
SALEWATCH_STACK_KAFKA_CONTROLLER_PORT (Kafka port + 1), SALEWATCH_STACK_PROMETHEUS_PORT
(19090), SALEWATCH_STACK_ALERTMANAGER_PORT (19094), SALEWATCH_STACK_TIMEOUT_S (120),
SALEWATCH_STACK_SECURE_KAFKA_PORT (19096; its controller and inter-broker listeners take the
next two ports).

Stdlib only: it runs before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STATE = REPO / ".stack"
POM = REPO / "stack" / "pom.xml"
RULES_GLOB = REPO / "alerts" / "rules" / "*.yml"
ALERTMANAGER_CONFIG = REPO / "alerts" / "alertmanager.yml"
ALERTMANAGER_TEMPLATES = REPO / "alerts" / "templates"
TARGETS_DIR = STATE / "targets"
# workers whose /metrics needs a bearer token: Prometheus sends the one in SCRAPE_TOKEN
AUTH_TARGETS_DIR = STATE / "targets-auth"
SCRAPE_TOKEN = STATE / "secrets" / "scrape-token"
ENV_FILE = STATE / "env.json"
STARTED_WITH = STATE / "run" / "settings.json"
KAFKA_DATA = STATE / "kafka-data"
SECURE = STATE / "secure"  # the secure broker: certificates, credentials, data
SECURE_ENV_FILE = STATE / "secure-env.json"
HOST = "127.0.0.1"
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
# Debian packages the stack and its tests need -> the commands that show one is installed
DEBIAN_TOOLS: dict[str, tuple[str, ...]] = {
    "prometheus": ("prometheus",),
    # Debian names it prometheus-alertmanager; the upstream tarball just alertmanager
    "prometheus-alertmanager": ("prometheus-alertmanager", "alertmanager"),
    "tmux": ("tmux",),  # the live view's test runs `salewatch top` in a terminal
    "chromium": ("chromium",),  # the review's test renders the report headless
}
STOP_TIMEOUT_S = 30.0

# Direct connections only: a proxy from the environment must not see localhost health checks.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class StackError(Exception):
    """A problem the user can fix; printed without a traceback."""


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    kafka_version: str
    kafka_port: int
    controller_port: int
    prometheus_port: int
    alertmanager_port: int
    timeout_s: float
    # the secure broker (`up-secure`): SASL_SSL here, its controller and plaintext
    # inter-broker listener on the next two ports
    secure_kafka_port: int

    @property
    def kafka_major(self) -> int:
        return int(self.kafka_version.split(".", 1)[0])

    @property
    def kafka_libs(self) -> Path:
        return STATE / f"kafka-libs-{self.kafka_version}"


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise StackError(f"{name}={raw!r} is not an integer") from None


def load_settings(env: Mapping[str, str]) -> Settings:
    version = env.get("SALEWATCH_KAFKA_VERSION", "").strip() or "3.9.1"
    if not version.split(".", 1)[0].isdigit():
        raise StackError(f"SALEWATCH_KAFKA_VERSION={version!r} is not a Kafka version")
    kafka_port = _int_env(env, "SALEWATCH_STACK_KAFKA_PORT", 19092)
    return Settings(
        kafka_version=version,
        kafka_port=kafka_port,
        controller_port=_int_env(env, "SALEWATCH_STACK_KAFKA_CONTROLLER_PORT", kafka_port + 1),
        prometheus_port=_int_env(env, "SALEWATCH_STACK_PROMETHEUS_PORT", 19090),
        alertmanager_port=_int_env(env, "SALEWATCH_STACK_ALERTMANAGER_PORT", 19094),
        timeout_s=float(_int_env(env, "SALEWATCH_STACK_TIMEOUT_S", 120)),
        secure_kafka_port=_int_env(env, "SALEWATCH_STACK_SECURE_KAFKA_PORT", 19096),
    )


# --------------------------------------------------------------------------- services


@dataclass(frozen=True)
class Service:
    name: str
    address: str  # what users connect to, shown by `status`
    ports: Mapping[str, int]  # env var -> port, so a conflict names the variable to change
    healthy: Callable[[], bool]

    @property
    def pid_file(self) -> Path:
        return STATE / "run" / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return STATE / "logs" / f"{self.name}.log"


def services(settings: Settings) -> list[Service]:
    prometheus_url = f"http://{HOST}:{settings.prometheus_port}"
    alertmanager_url = f"http://{HOST}:{settings.alertmanager_port}"
    return [
        Service(
            "kafka",
            f"{HOST}:{settings.kafka_port}",
            {
                "SALEWATCH_STACK_KAFKA_PORT": settings.kafka_port,
                "SALEWATCH_STACK_KAFKA_CONTROLLER_PORT": settings.controller_port,
            },
            lambda: kafka_answers(settings.kafka_port),
        ),
        Service(
            "prometheus",
            prometheus_url,
            {"SALEWATCH_STACK_PROMETHEUS_PORT": settings.prometheus_port},
            lambda: http_ok(f"{prometheus_url}/-/ready"),
        ),
        Service(
            "alertmanager",
            alertmanager_url,
            {"SALEWATCH_STACK_ALERTMANAGER_PORT": settings.alertmanager_port},
            lambda: http_ok(f"{alertmanager_url}/-/ready"),
        ),
    ]


def env_document(settings: Settings) -> dict[str, str]:
    return {
        "kafka_bootstrap": f"{HOST}:{settings.kafka_port}",
        "prometheus_url": f"http://{HOST}:{settings.prometheus_port}",
        "alertmanager_url": f"http://{HOST}:{settings.alertmanager_port}",
        "targets_dir": str(TARGETS_DIR),
        "auth_targets_dir": str(AUTH_TARGETS_DIR),
        "scrape_token_file": str(SCRAPE_TOKEN),
    }


# --------------------------------------------------------------------------- health probes


def http_ok(url: str, method: str = "GET") -> bool:
    request = urllib.request.Request(url, method=method)
    try:
        with _HTTP.open(request, timeout=2.0) as response:
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed mid-response")
        data += chunk
    return data


def kafka_answers(port: int) -> bool:
    """Metadata request (v1, no topics): true once the broker lists itself as alive.

    A plain TCP connect is not enough: KRaft opens the socket before the broker is unfenced,
    and until then Metadata lists no brokers and clients cannot produce.
    """
    client_id = b"salewatch-devstack"
    correlation_id = 7
    request = struct.pack(">hhih", 3, 1, correlation_id, len(client_id)) + client_id
    request += struct.pack(">i", 0)  # empty topic list (v1+): brokers only
    try:
        with socket.create_connection((HOST, port), timeout=2.0) as sock:
            sock.sendall(struct.pack(">i", len(request)) + request)
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            response = _recv_exact(sock, size)
        answered_id, broker_count = struct.unpack_from(">ii", response)
    except (OSError, struct.error):
        return False
    return bool(answered_id == correlation_id and broker_count >= 1)


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR: a socket of ours left in TIME_WAIT by `down` is not a conflict.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


# --------------------------------------------------------------------------- processes


def _read_pid(service: Service) -> int | None:
    try:
        return int(service.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def _is_ours(pid: int) -> bool:
    """Alive and started by us: every command we run names a path under .stack/.

    Guards against a recycled pid. A dead child may linger as a zombie (state Z), and a
    process in the middle of exec briefly shows an empty cmdline: that one counts as ours.
    """
    proc = Path(f"/proc/{pid}")
    if Path("/proc/self/stat").exists():
        try:
            # state is the field after "(comm)"; comm may itself contain spaces or parens
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (proc / "cmdline").read_bytes()
        except (OSError, IndexError):
            return False
        return state not in ("Z", "X") and (not cmdline or str(STATE).encode() in cmdline)
    try:  # no /proc (macOS): the pid file is all we have
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def running_pid(service: Service) -> int | None:
    pid = _read_pid(service)
    return pid if pid is not None and _is_ours(pid) else None


def spawn(service: Service, argv: list[str]) -> None:
    """Start detached (own session, so Ctrl-C in the shell does not reach it), log to file."""
    service.log_file.parent.mkdir(parents=True, exist_ok=True)
    service.pid_file.parent.mkdir(parents=True, exist_ok=True)
    if service.log_file.exists():  # keep the previous run's log for post-mortems
        service.log_file.replace(service.log_file.with_suffix(".log.1"))
    with service.log_file.open("ab") as log:
        log.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
        log.flush()
        process = subprocess.Popen(
            argv,
            cwd=STATE,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    service.pid_file.write_text(f"{process.pid}\n")
    print(f"  started {service.name} (pid {process.pid}), log {_rel(service.log_file)}")


def stop(all_services: list[Service], *, whole_stack: bool = True) -> None:
    pids = {s.name: pid for s in all_services if (pid := running_pid(s)) is not None}
    for name, pid in pids.items():
        print(f"  stopping {name} (pid {pid})")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)  # its own session: pgid == pid
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while any(_is_ours(pid) for pid in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    for name, pid in pids.items():
        if _is_ours(pid):
            print(f"  {name} ignored SIGTERM for {STOP_TIMEOUT_S:.0f}s, killing it")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    for service in all_services:
        service.pid_file.unlink(missing_ok=True)
    if whole_stack:
        STARTED_WITH.unlink(missing_ok=True)


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return "(no log)"
    return "\n".join(f"    {line}" for line in text)


def _rel(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(REPO))
    return str(path)


@contextlib.contextmanager
def stack_lock() -> Iterator[None]:
    """Serialise concurrent `up`/`down` (e.g. parallel test sessions all calling `up`)."""
    STATE.mkdir(exist_ok=True)
    with (STATE / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


# --------------------------------------------------------------------------- tools


def require_tool(name: str, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise StackError(f"`{name}` not found on PATH. {hint}")
    return path


def alertmanager_binary() -> str | None:
    return next(filter(None, map(shutil.which, DEBIAN_TOOLS["prometheus-alertmanager"])), None)


def missing_debian_packages() -> list[str]:
    return [
        package
        for package, commands in DEBIAN_TOOLS.items()
        if not any(shutil.which(command) for command in commands)
    ]


@contextlib.contextmanager
def packaged_daemons_not_started() -> Iterator[None]:
    """Debian postinst scripts start the packaged daemons (on 9090/9093); we run our own.

    policy-rc.d exit 101 tells invoke-rc.d and deb-systemd-invoke not to start services.
    """
    if POLICY_RC_D.exists():
        yield
        return
    POLICY_RC_D.write_text("#!/bin/sh\n# written by salewatch stack/devstack.py\nexit 101\n")
    POLICY_RC_D.chmod(0o755)
    try:
        yield
    finally:
        POLICY_RC_D.unlink(missing_ok=True)


def ensure_debian_tools() -> None:
    """Install with apt-get the packages of DEBIAN_TOOLS that are missing (root only)."""
    missing = missing_debian_packages()
    if not missing:
        return
    command = f"apt-get install -y --no-install-recommends {' '.join(missing)}"
    if shutil.which("apt-get") is None:
        raise StackError(
            f"{', '.join(missing)} not installed and apt-get is missing: install them so"
            f" {', '.join(c for p in missing for c in DEBIAN_TOOLS[p][:1])} are on PATH."
        )
    if os.geteuid() != 0:
        raise StackError(
            f"{', '.join(missing)} not installed. As root run: apt-get update && "
            f"{command}   (or rerun this as root)"
        )
    print(f"Installing {', '.join(missing)} from Debian packages...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with packaged_daemons_not_started():
        for argv in (["apt-get", "update", "-q"], [*command.split(), "-q"]):
            if subprocess.run(argv, env=env, check=False).returncode != 0:
                raise StackError(f"`{' '.join(argv)}` failed (see its output above)")
    still = missing_debian_packages()
    if still:
        raise StackError(f"apt-get succeeded but {', '.join(still)} not on PATH")


# --------------------------------------------------------------------------- kafka

LOG4J1_CONFIG = """\
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log=WARN
log4j.logger.org.apache.kafka.storage=WARN
"""

LOG4J2_CONFIG = """\
status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.stdout.ref = STDOUT
logger.statechange.name = state.change.logger
logger.statechange.level = warn
logger.kafkalog.name = kafka.log
logger.kafkalog.level = warn
logger.storage.name = org.apache.kafka.storage
logger.storage.level = warn
"""


def server_properties(settings: Settings) -> str:
    props = {
        "controller.quorum.voters": f"1@{HOST}:{settings.controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{settings.kafka_port},"
        f"CONTROLLER://{HOST}:{settings.controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{settings.kafka_port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(KAFKA_DATA),
        **dev_broker_properties(settings),
    }
    return "".join(f"{key}={value}\n" for key, value in props.items())


def dev_broker_properties(settings: Settings) -> dict[str, str]:
    """What both dev brokers share: one node, and no waiting (listeners apart)."""
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.listener.names": "CONTROLLER",
        # Dev settings: topics appear on first use, one replica of everything, no waiting.
        "auto.create.topics.enable": "true",
        "num.partitions": "4",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",  # 50 by default: slow first consumer group
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "group.initial.rebalance.delay.ms": "0",
        "log.retention.hours": "24",
    }
    if settings.kafka_major >= 4:
        props["share.coordinator.state.topic.replication.factor"] = "1"
        props["share.coordinator.state.topic.min.isr"] = "1"
    return props


def kafka_java_command(settings: Settings, main: list[str], *, heap: str) -> list[str]:
    java = require_tool("java", "Install a JDK 17+ (Debian: apt-get install openjdk-17-jdk).")
    if settings.kafka_major >= 4:
        logging = f"-Dlog4j2.configurationFile={STATE / 'kafka-log4j2.properties'}"
    else:
        logging = f"-Dlog4j.configuration=file:{STATE / 'kafka-log4j.properties'}"
    return [
        java,
        f"-Xmx{heap}",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        logging,
        "-cp",
        f"{settings.kafka_libs}/*",
        *main,
    ]


def fetch_kafka_jars(settings: Settings) -> None:
    """Kafka's runtime jars from Maven Central, once per version (`.complete` marks success)."""
    libs = settings.kafka_libs
    if (libs / ".complete").exists():
        return
    mvn = require_tool("mvn", "Install Maven (Debian: apt-get install maven).")
    if settings.kafka_major >= 4:  # 4.x logs through log4j2, 3.x through log4j 1 (reload4j)
        binding = ["org.apache.logging.log4j", "log4j-slf4j-impl", "2.24.3"]
    else:
        binding = ["org.slf4j", "slf4j-reload4j", "1.7.36"]
    partial = libs.with_name(libs.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    print(f"Fetching Kafka {settings.kafka_version} jars from Maven Central...")
    argv = [
        mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(POM), "dependency:copy-dependencies",
        "-DincludeScope=runtime", f"-DoutputDirectory={partial}",
        f"-Dkafka.version={settings.kafka_version}",
        f"-Dslf4j.binding.groupId={binding[0]}",
        f"-Dslf4j.binding.artifactId={binding[1]}",
        f"-Dslf4j.binding.version={binding[2]}",
    ]  # fmt: skip
    # Captured: quiet Maven 3.8 still prints stray colour codes; shown only on failure.
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise StackError(
            f"Maven could not fetch Kafka {settings.kafka_version}. Is the version on Maven "
            f"Central (org.apache.kafka:kafka_2.13)?\n{_strip_ansi(result.stdout + result.stderr)}"
        )
    shutil.rmtree(libs, ignore_errors=True)
    partial.rename(libs)
    (libs / ".complete").write_text(f"{len(list(libs.glob('*.jar')))} jars\n")


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def new_cluster_id() -> str:
    # Kafka's Uuid.toString: URL-safe base64 without padding; never starting with "-".
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def format_kafka_storage(
    settings: Settings,
    properties: Path,
    data: Path = KAFKA_DATA,
    extra_args: tuple[str, ...] = (),
) -> None:
    """Format the KRaft log dir once; reformat (dev data) when the Kafka version changes.
    `extra_args`: more of the storage tool's options (SCRAM users)."""
    version_file = data.with_name(data.name + ".version")
    formatted = (data / "meta.properties").exists()
    if formatted and _read_text(version_file) == settings.kafka_version:
        return
    if formatted:
        print(f"  Kafka version changed to {settings.kafka_version}: wiping dev data")
    shutil.rmtree(data, ignore_errors=True)
    format_args = ["format", "-t", new_cluster_id(), "-c", str(properties), *extra_args]
    argv = kafka_java_command(settings, ["kafka.tools.StorageTool", *format_args], heap="256m")
    argv.insert(1, "-XX:TieredStopAtLevel=1")  # short-lived tool: start fast, skip the JIT
    result = subprocess.run(argv, cwd=STATE, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise StackError(f"Kafka storage format failed:\n{result.stdout}{result.stderr}")
    version_file.write_text(settings.kafka_version)


def write_kafka_logging() -> None:
    (STATE / "kafka-log4j.properties").write_text(LOG4J1_CONFIG)
    (STATE / "kafka-log4j2.properties").write_text(LOG4J2_CONFIG)


def start_kafka(settings: Settings, service: Service) -> None:
    fetch_kafka_jars(settings)
    properties = STATE / "server.properties"
    properties.write_text(server_properties(settings))
    write_kafka_logging()
    format_kafka_storage(settings, properties)
    spawn(service, kafka_java_command(settings, ["kafka.Kafka", str(properties)], heap="1g"))


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


# --------------------------------------------------------------------------- secure kafka

SECURE_USER = "salewatch"


def secure_service(settings: Settings) -> Service:
    port = settings.secure_kafka_port
    return Service(
        "kafka-secure",
        f"{HOST}:{port}",
        {
            "SALEWATCH_STACK_SECURE_KAFKA_PORT": port,
            "SALEWATCH_STACK_SECURE_KAFKA_PORT+1": port + 1,
            "SALEWATCH_STACK_SECURE_KAFKA_PORT+2": port + 2,
        },
        # the plaintext inter-broker listener answers the same probe as the dev broker
        lambda: kafka_answers(port + 2),
    )


def make_certificates(directory: Path) -> None:
    """A dev CA, the broker's certificate (for 127.0.0.1 and localhost) and a client
    certificate for mutual TLS, made with openssl once (`.complete` marks success)."""
    if (directory / ".complete").exists():
        return
    openssl = require_tool("openssl", "Install OpenSSL (Debian: apt-get install openssl).")
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, mode=0o700)
    key = ["-newkey", "rsa:2048", "-nodes"]  # keys unencrypted: files of mode 0600 instead
    commands = [
        ["req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "3650",
         "-subj", "/CN=salewatch dev CA"],
    ]  # fmt: skip
    extensions = {
        "broker": "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        "client": "extendedKeyUsage=clientAuth\n",
    }
    for name, extension in extensions.items():
        (directory / f"{name}.ext").write_text(extension)
        commands += [
            ["req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", f"/CN=salewatch-{name}"],
            ["x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "825", "-extfile", f"{name}.ext", "-out", f"{name}.pem"],
        ]  # fmt: skip
    for command in commands:
        result = subprocess.run(
            [openssl, *command], cwd=directory, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise StackError(f"openssl {command[0]} failed:\n{result.stderr}")
    for path in directory.glob("*.key"):
        path.chmod(0o600)
    (directory / ".complete").write_text("openssl\n")


def secure_credentials() -> dict[str, str]:
    """The SCRAM / PLAIN user's password and the broker keystore's, made once. New ones
    mean a new SCRAM user: the secure broker's data is formatted again."""
    path = SECURE / "credentials.json"
    if path.exists():
        credentials: dict[str, str] = json.loads(path.read_text())
        return credentials
    credentials = {"password": os.urandom(18).hex(), "keystore_password": os.urandom(18).hex()}
    shutil.rmtree(SECURE / "kafka-data", ignore_errors=True)
    path.write_text(json.dumps(credentials) + "\n")
    path.chmod(0o600)
    return credentials


def broker_keystore(tls: Path, password: str) -> Path:
    """The broker's key and certificate chain as the PKCS#12 keystore the JVM reads."""
    keystore = tls / "broker.p12"
    if not keystore.exists():
        openssl = require_tool("openssl", "Install OpenSSL (Debian: apt-get install openssl).")
        argv = [openssl, "pkcs12", "-export", "-in", "broker.pem", "-inkey", "broker.key",
                "-certfile", "ca.pem", "-name", "broker", "-out", keystore.name,
                "-passout", f"pass:{password}"]  # fmt: skip
        result = subprocess.run(argv, cwd=tls, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise StackError(f"openssl pkcs12 failed:\n{result.stderr}")
        keystore.chmod(0o600)
    return keystore


def secure_server_properties(
    settings: Settings, keystore: Path, credentials: dict[str, str]
) -> str:
    """SASL_SSL for clients (SCRAM-SHA-512 and PLAIN, a client certificate required);
    controller and inter-broker traffic stay on loopback in plaintext."""
    port = settings.secure_kafka_port
    client, controller, broker = f"{HOST}:{port}", f"{HOST}:{port + 1}", f"{HOST}:{port + 2}"
    plain_users = f'user_{SECURE_USER}="{credentials["password"]}"'
    props = {
        "controller.quorum.voters": f"1@{controller}",
        "listeners": f"SASL_SSL://{client},CONTROLLER://{controller},BROKER://{broker}",
        "advertised.listeners": f"SASL_SSL://{client},BROKER://{broker}",
        "inter.broker.listener.name": "BROKER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,BROKER:PLAINTEXT,SASL_SSL:SASL_SSL",
        "log.dirs": str(SECURE / "kafka-data"),
        "sasl.enabled.mechanisms": "SCRAM-SHA-512,PLAIN",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "listener.name.sasl_ssl.plain.sasl.jaas.config":
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};",
        "listener.name.sasl_ssl.ssl.client.auth": "required",
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": str(keystore),
        "ssl.keystore.password": credentials["keystore_password"],
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(keystore.with_name("ca.pem")),
        **dev_broker_properties(settings),
    }  # fmt: skip
    return "".join(f"{key}={value}\n" for key, value in props.items())


def secure_env_document(settings: Settings, credentials: dict[str, str]) -> dict[str, str]:
    """How to reach the secure broker; the keys after the first are the names of
    salewatch's SALEWATCH_KAFKA_* settings (lower case, without the prefix)."""
    tls = SECURE / "tls"
    return {
        "kafka_bootstrap": f"{HOST}:{settings.secure_kafka_port}",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": SECURE_USER,
        "sasl_password": credentials["password"],
        "ssl_cafile": str(tls / "ca.pem"),
        "ssl_certfile": str(tls / "client.pem"),
        "ssl_keyfile": str(tls / "client.key"),
    }


def start_secure_kafka(settings: Settings, service: Service) -> None:
    fetch_kafka_jars(settings)
    SECURE.mkdir(parents=True, exist_ok=True, mode=0o700)
    credentials = secure_credentials()
    make_certificates(SECURE / "tls")
    keystore = broker_keystore(SECURE / "tls", credentials["keystore_password"])
    properties = SECURE / "server.properties"
    properties.write_text(secure_server_properties(settings, keystore, credentials))
    properties.chmod(0o600)
    write_kafka_logging()
    scram = f"SCRAM-SHA-512=[name={SECURE_USER},password={credentials['password']}]"
    format_kafka_storage(settings, properties, SECURE / "kafka-data", ("--add-scram", scram))
    spawn(service, kafka_java_command(settings, ["kafka.Kafka", str(properties)], heap="512m"))


# --------------------------------------------------------------------------- prometheus


def prometheus_config(settings: Settings) -> str:
    # JSON is valid YAML: no YAML library needed, and paths are quoted safely.
    alertmanager = f"{HOST}:{settings.alertmanager_port}"
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES_GLOB)],  # a glob: none existing yet is fine
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [
            {
                "job_name": "prometheus",
                "static_configs": [{"targets": [f"{HOST}:{settings.prometheus_port}"]}],
            },
            {
                # Tests and the demo register a worker by dropping
                # [{"targets": ["host:port"]}] into .stack/targets/<name>.json.
                "job_name": "salewatch",
                "file_sd_configs": [
                    {"files": [str(TARGETS_DIR / "*.json")], "refresh_interval": "1s"}
                ],
            },
            {
                # Workers with SALEWATCH_WEB_AUTH_TOKEN set to the token in SCRAPE_TOKEN.
                "job_name": "salewatch-auth",
                "authorization": {"type": "Bearer", "credentials_file": str(SCRAPE_TOKEN)},
                "file_sd_configs": [
                    {"files": [str(AUTH_TARGETS_DIR / "*.json")], "refresh_interval": "1s"}
                ],
            },
        ],
    }
    return json.dumps(config, indent=2) + "\n"


def write_scrape_token() -> None:
    """A random token, once: workers that require it are scraped with it."""
    if SCRAPE_TOKEN.exists():
        return
    SCRAPE_TOKEN.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    SCRAPE_TOKEN.write_text(os.urandom(24).hex())
    SCRAPE_TOKEN.chmod(0o600)


def start_prometheus(settings: Settings, service: Service) -> None:
    config = STATE / "prometheus.yml"
    config.write_text(prometheus_config(settings))
    TARGETS_DIR.mkdir(parents=True, exist_ok=True)
    AUTH_TARGETS_DIR.mkdir(parents=True, exist_ok=True)
    write_scrape_token()
    prometheus = require_tool("prometheus", "Install the Debian package `prometheus`.")
    spawn(
        service,
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={STATE / 'prometheus-data'}",
            f"--web.listen-address={HOST}:{settings.prometheus_port}",
            "--web.enable-lifecycle",
            "--storage.tsdb.retention.time=2d",
        ],
    )


MINIMAL_ALERTMANAGER_CONFIG = """\
# Generated by stack/devstack.py because alerts/alertmanager.yml does not exist.
route:
  receiver: "null"
  group_wait: 1s
  group_interval: 5s
  repeat_interval: 1h
receivers:
  - name: "null"
"""


def dev_alertmanager_config(shipped: str, config_dir: Path) -> str:
    """The dev stack's variant of alerts/alertmanager.yml: the same global settings,
    templates, routes and inhibitions, and receivers of the same names without integrations,
    so nothing leaves the machine (the shipped receivers need secrets and outside endpoints).

    Text, not YAML (stdlib only): the shipped file keeps `receivers:` as its last top-level
    key and is cut there; relative template paths are made absolute (the variant is in
    .stack/).
    """
    cut = re.search(r"^receivers:[ \t]*(#.*)?$", shipped, flags=re.MULTILINE)
    if cut is None:
        raise StackError(f"{_rel(ALERTMANAGER_CONFIG)}: no top-level `receivers:` key")
    head, receivers = shipped[: cut.start()], shipped[cut.end() :]
    if re.search(r"^[^\s#]", receivers, flags=re.MULTILINE):
        raise StackError(
            f"{_rel(ALERTMANAGER_CONFIG)}: `receivers:` must be the last top-level key"
        )
    items = re.findall(r"^( *)- name:[ \t]*(\S+)", receivers, flags=re.MULTILINE)
    indent = min((len(spaces) for spaces, _ in items), default=0)
    names = [name.strip("\"'") for spaces, name in items if len(spaces) == indent]

    def absolute(match: re.Match[str]) -> str:
        path = match.group(3)
        if not os.path.isabs(path):
            path = str(config_dir / path)
        return f"{match.group(1)}{json.dumps(path)}{match.group(4)}"

    templates = re.search(r"^templates:.*\n((?:[ \t]+.*\n|[ \t]*\n)*)", head, flags=re.MULTILINE)
    if templates is not None:
        block = re.sub(
            r"^(\s*-\s*)([\"']?)([^\"'#\s]+)\2([ \t]*(?:#.*)?)$",
            absolute,
            templates.group(1),
            flags=re.MULTILINE,
        )
        head = head[: templates.start(1)] + block + head[templates.end(1) :]
    lines = [
        f"# Generated by stack/devstack.py from {_rel(ALERTMANAGER_CONFIG)}: receivers emptied."
    ]
    lines += [head.rstrip("\n"), "receivers:", *(f"  - name: {json.dumps(n)}" for n in names)]
    return "\n".join(lines) + "\n"


def write_alertmanager_config() -> Path:
    config = STATE / "alertmanager.yml"
    if ALERTMANAGER_CONFIG.exists():
        shipped = ALERTMANAGER_CONFIG.read_text()
        config.write_text(dev_alertmanager_config(shipped, ALERTMANAGER_CONFIG.parent))
    else:
        config.write_text(MINIMAL_ALERTMANAGER_CONFIG)
    return config


def start_alertmanager(settings: Settings, service: Service) -> None:
    config = write_alertmanager_config()
    binary = alertmanager_binary()
    if binary is None:
        raise StackError("Alertmanager not found: install Debian's prometheus-alertmanager")
    spawn(
        service,
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={STATE / 'alertmanager-data'}",
            f"--web.listen-address={HOST}:{settings.alertmanager_port}",
            f"--web.external-url=http://{HOST}:{settings.alertmanager_port}",
            "--cluster.listen-address=",  # single instance: no gossip port
        ],
    )


# --------------------------------------------------------------------------- config reload


def config_files(service: Service) -> list[Path]:
    """The files a daemon read at start: a change means it needs a reload."""
    if service.name == "prometheus":
        return [STATE / "prometheus.yml", *sorted(RULES_GLOB.parent.glob(RULES_GLOB.name))]
    if service.name == "alertmanager":  # the sources of the variant .stack/alertmanager.yml
        return [ALERTMANAGER_CONFIG, *sorted(ALERTMANAGER_TEMPLATES.glob("*.tmpl"))]
    return []


def _fingerprint_file(service: Service) -> Path:
    return STATE / "run" / f"{service.name}.config-sha256"


def config_fingerprint(service: Service) -> str:
    digest = hashlib.sha256()
    for path in config_files(service):
        digest.update(str(path).encode() + b"\0")
        with contextlib.suppress(OSError):
            digest.update(path.read_bytes())
    return digest.hexdigest()


def record_config(service: Service) -> None:
    if config_files(service):
        _fingerprint_file(service).write_text(config_fingerprint(service) + "\n")


def started_with(service: Service, argument: str) -> bool:
    """Whether the running daemon has this command-line argument (True if we cannot tell)."""
    pid = running_pid(service)
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if pid else []
    except OSError:
        return True
    return not argv or argument.encode() in argv


def reload_if_changed(service: Service) -> None:
    """Apply edited rule files or Alertmanager config to a running daemon.

    Only on change: a Prometheus reload drops its Alertmanager list for ~5 s, which a
    test that just called `up` would see.
    """
    recorded = _read_text(_fingerprint_file(service))
    if not config_files(service) or recorded == config_fingerprint(service):
        return
    if service.name == "alertmanager":
        try:
            config = write_alertmanager_config()
        except StackError as exc:
            print(f"  warning: alertmanager configuration not reloaded: {exc}")
            return
        if not started_with(service, f"--config.file={config}"):
            print(
                "  warning: alertmanager was started on alerts/alertmanager.yml, not on the dev"
                " variant; not reloaded. Restart the stack: devstack.py down && devstack.py up"
            )
            return
    if http_ok(f"{service.address}/-/reload", method="POST"):
        record_config(service)
        print(f"  {service.name}: configuration changed, reloaded")
    else:
        log = _rel(service.log_file)
        print(f"  warning: {service.name} rejected the new configuration, see {log}")


# --------------------------------------------------------------------------- commands

# Kafka first: a failed jar fetch or format then leaves nothing half-started, and its JVM
# boots while the two Go daemons start.
STARTERS: dict[str, Callable[[Settings, Service], None]] = {
    "kafka": start_kafka,
    "prometheus": start_prometheus,
    "alertmanager": start_alertmanager,
}


def check_ports_free(service: Service) -> None:
    for env_name, port in service.ports.items():
        if not port_is_free(port):
            raise StackError(
                f"port {port} for {service.name} is taken by another program (not started by "
                # "NAME+1": a port derived from NAME
                f"this stack). Stop it or choose another port: export "
                f"{env_name.partition('+')[0]}=<port>"
            )


def wait_healthy(all_services: list[Service], timeout_s: float) -> None:
    pending = list(all_services)
    deadline = time.monotonic() + timeout_s
    while pending:
        for service in list(pending):
            if running_pid(service) is None:
                raise StackError(
                    f"{service.name} exited during startup. Last lines of "
                    f"{_rel(service.log_file)}:\n{_log_tail(service.log_file)}"
                )
            if service.healthy():
                print(f"  {service.name} ready at {service.address}")
                pending.remove(service)
        if pending and time.monotonic() > deadline:
            names = ", ".join(s.name for s in pending)
            logs = ", ".join(_rel(s.log_file) for s in pending)
            raise StackError(f"{names} not answering after {timeout_s:.0f}s; see {logs}")
        if pending:
            time.sleep(0.25)


def write_env_file(settings: Settings) -> None:
    partial = ENV_FILE.with_suffix(".json.partial")
    partial.write_text(json.dumps(env_document(settings), indent=2) + "\n")
    partial.replace(ENV_FILE)  # atomic: readers never see half a file


def identity(settings: Settings) -> dict[str, str | int]:
    """What a running stack was started with; neither the timeout nor the secure broker
    (started apart, by `up-secure`) is part of it."""
    return {
        k: v for k, v in asdict(settings).items() if k not in ("timeout_s", "secure_kafka_port")
    }


def check_started_with(settings: Settings) -> None:
    """A running stack on other ports or another Kafka would never become healthy: say so."""
    recorded = _read_text(STARTED_WITH)
    if recorded is not None and json.loads(recorded) != identity(settings):
        raise StackError(
            f"the running stack was started with other settings ({recorded.strip()}); "
            "run `devstack.py down` first, then `up` with the new settings"
        )


def cmd_up(settings: Settings) -> int:
    started = time.monotonic()
    all_services = services(settings)
    running_names = {s.name for s in all_services if running_pid(s) is not None}
    if running_names:
        check_started_with(settings)
    if len(running_names) == len(all_services) and all(s.healthy() for s in all_services):
        (STATE / "prometheus.yml").write_text(prometheus_config(settings))
        AUTH_TARGETS_DIR.mkdir(parents=True, exist_ok=True)
        write_scrape_token()
        for service in all_services:
            reload_if_changed(service)
        write_env_file(settings)
        print(f"Stack already running ({_rel(ENV_FILE)}).")
        return 0
    require_tool("java", "Install a JDK 17+ (Debian: apt-get install openjdk-17-jdk).")
    ensure_debian_tools()
    by_name = {s.name: s for s in all_services}
    to_start = [by_name[name] for name in STARTERS if name not in running_names]
    for service in to_start:
        check_ports_free(service)  # fail before starting anything
    STARTED_WITH.parent.mkdir(parents=True, exist_ok=True)
    STARTED_WITH.write_text(json.dumps(identity(settings)) + "\n")
    names = [s.name if s.name != "kafka" else f"kafka {settings.kafka_version}" for s in to_start]
    print(f"Starting {', '.join(names)}...")
    for service in to_start:
        STARTERS[service.name](settings, service)
        record_config(service)
    wait_healthy(all_services, settings.timeout_s)
    write_env_file(settings)
    print(f"Stack up in {time.monotonic() - started:.1f}s; addresses in {_rel(ENV_FILE)}")
    return 0


def cmd_up_secure(settings: Settings) -> int:
    """The secure broker beside the dev stack (which it does not need or touch)."""
    started = time.monotonic()
    service = secure_service(settings)
    if running_pid(service) is None:
        require_tool("java", "Install a JDK 17+ (Debian: apt-get install openjdk-17-jdk).")
        check_ports_free(service)
        print(f"Starting kafka-secure (Kafka {settings.kafka_version}, SASL_SSL + mTLS)...")
        start_secure_kafka(settings, service)
    wait_healthy([service], settings.timeout_s)
    document = secure_env_document(settings, secure_credentials())
    partial = SECURE_ENV_FILE.with_suffix(".json.partial")
    partial.write_text(json.dumps(document, indent=2) + "\n")
    partial.chmod(0o600)
    partial.replace(SECURE_ENV_FILE)
    print(f"Secure broker up in {time.monotonic() - started:.1f}s; see {_rel(SECURE_ENV_FILE)}")
    return 0


def cmd_status(settings: Settings) -> int:
    all_up = True
    for service in services(settings):
        pid = running_pid(service)
        if pid is None:
            state = "stopped"
        elif service.healthy():
            state = "healthy"
        else:
            state = "not answering"
        all_up = all_up and state == "healthy"
        where = f"pid {pid}" if pid is not None else "no process"
        print(f"{service.name:<13} {state:<14} {service.address:<24} ({where})")
    secure = secure_service(settings)
    if (pid := running_pid(secure)) is not None:  # optional: not part of the exit status
        state = "healthy" if secure.healthy() else "not answering"
        print(f"{secure.name:<13} {state:<14} {secure.address:<24} (pid {pid})")
    print(f"env: {_rel(ENV_FILE)}" if ENV_FILE.exists() else "env: not written (run `up`)")
    return 0 if all_up else 1


def cmd_down(settings: Settings) -> int:
    all_services = [*services(settings), secure_service(settings)]
    if not any(running_pid(s) is not None for s in all_services):
        print("Stack not running.")
    else:
        stop(all_services)
        print("Stack stopped (data kept in .stack/; `rm -rf .stack` for a clean slate).")
    ENV_FILE.unlink(missing_ok=True)
    SECURE_ENV_FILE.unlink(missing_ok=True)
    return 0


def stop_only(name: str) -> Callable[[Settings], int]:
    """A command that stops one service, its data kept: an outage for fault tests; `up`
    starts it again. (Alertmanager keeps its silences, not its alerts: senders re-send.)"""

    def command(settings: Settings) -> int:
        (service,) = (service for service in services(settings) if service.name == name)
        if running_pid(service) is None:
            print(f"{name} not running.")
        else:
            stop([service], whole_stack=False)
        return 0

    return command


def cmd_logs(settings: Settings) -> int:
    for service in [*services(settings), secure_service(settings)]:
        print(f"{service.name:<13} {service.log_file}")
    return 0


COMMANDS: dict[str, Callable[[Settings], int]] = {
    "up": cmd_up,
    "up-secure": cmd_up_secure,
    "status": cmd_status,
    "down": cmd_down,
    "stop-kafka": stop_only("kafka"),
    "stop-alertmanager": stop_only("alertmanager"),
    "logs": cmd_logs,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("command", choices=COMMANDS)
    args = parser.parse_args(argv)
    try:
        settings = load_settings(os.environ)
        if args.command in ("up", "up-secure", "down", "stop-kafka", "stop-alertmanager"):
            with stack_lock():
                return COMMANDS[args.command](settings)
        return COMMANDS[args.command](settings)
    except StackError as error:
        print(f"devstack: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
