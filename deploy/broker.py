"""A local Apache Kafka (KRaft) broker assembled from Maven Central jars.

No Docker and no Apache download mirror are needed: ``fetch_jars`` asks Maven for the broker's
runtime classpath (``deploy/kafka/pom.xml``), ``start`` writes one ``server.properties`` per node,
formats the storage and launches each node as a detached JVM (``kafka.Kafka``) that outlives the
calling process. ``stop`` reads the state file the start left in the data directory.

Only the standard library is imported at module level; readiness is confirmed with a
hand-written Kafka ``Metadata`` request over a plain (or TLS) socket, so this module does not need
kafka-python. ``start(..., tls=True)`` makes its certificates with ``cryptography``, imported then.

Data directory layout (``start(data_dir, nodes)``)::

    data_dir/broker.json           state: cluster id, ports, pids, bootstrap
    data_dir/node-<i>.log          the node's JVM stdout/stderr (log4j console appender)
    data_dir/node-<i>/server.properties
    data_dir/node-<i>/data/        the node's log.dirs (formatted storage)
    data_dir/secrets.json          passwords of admin / broker / controller (0600)
    data_dir/clients/NAME.properties  one principal's Kafka client settings (0600)
    data_dir/tls/                  with ``tls=True`` (0700; files 0600): ``ca.crt`` (the local CA
                                   clients trust), ``server.p12`` (the brokers' key and
                                   certificate), ``server.p12.password``

Command line: ``python -m deploy.broker {fetch|start|stop|status} ...`` (see ``deploy/kafka.sh``).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from deploy._local import (
    LOOPBACK,
    failure_status,
    flock,
    free_ports,
    load_state,
    log_tail,
    process_argv,
    save_state,
    write_atomic,
)

__all__ = [
    "BrokerCluster",
    "BrokerError",
    "BrokerNode",
    "client_config_path",
    "fetch_jars",
    "kafka_version",
    "log_tail",
    "read_properties",
    "start",
    "status",
    "stop",
    "write_client_properties",
]

PACKAGE_DIR = Path(__file__).resolve().parent
POM = PACKAGE_DIR / "kafka" / "pom.xml"
LOG4J_CONFIG = PACKAGE_DIR / "kafka" / "log4j2.xml"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

STATE_FILE = "broker.json"
LOCK_FILE = ".broker.lock"
LIBS_MARKER = ".complete"

#: Max heap per node (override: ``LEDGER_KAFKA_HEAP`` / ``heap=``). Measured on 4.3.1: ~40 MiB
#: live after a full GC following 100k records, and a 48 MiB heap still serves that load, once
#: the log cleaner's 128 MiB on-heap dedupe buffer is shrunk (``_server_properties``; with the
#: default buffer a 192 MiB heap dies with OutOfMemoryError at startup). 192 MiB is ~4x the
#: live set; RSS is ~180 MiB per node either way. See deploy/README.md.
DEFAULT_HEAP = "192m"
#: Seconds ``start`` waits for every node to serve metadata.
DEFAULT_TIMEOUT = 90.0
#: Seconds ``stop`` waits for a controlled shutdown before SIGKILL.
STOP_TIMEOUT = 30.0
#: Seconds a node that has lost its controller quorum gets before SIGKILL (see ``_terminate``).
QUORUM_LOST_GRACE = 8.0

_JVM_FLAGS = (
    # measured start to "Kafka Server started": 1.15 s / 1.4 s CPU with these two flags,
    # 1.5 s / 2.3 s CPU SerialGC alone, 1.6-2.2 s / 2.7 s CPU with Kafka's default G1
    "-XX:+UseSerialGC",  # small heaps, 2 cores, up to 3 JVMs: no concurrent GC threads
    "-XX:TieredStopAtLevel=1",  # C1 only: plenty fast for a dev/test broker
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)

_LISTENER = "CLIENT"
_CONTROLLER = "CONTROLLER"

#: Client authentication on the client listener (contract §7); the controller listener (loopback,
#: broker<->controller and controller<->controller only) uses SASL/PLAIN with a static user,
#: because KRaft controllers cannot check SCRAM credentials they have not loaded yet.
SASL_MECHANISM = "SCRAM-SHA-512"
SECURITY_PROTOCOL = "SASL_PLAINTEXT"
#: The client listener's protocol with ``tls=True``: SCRAM inside TLS, the server certificate
#: signed by a CA made for this data directory (``DATA/tls/ca.crt``, ``ssl.ca.location``).
TLS_SECURITY_PROTOCOL = "SASL_SSL"
TLS_DIR = "tls"
CA_CERT = "ca.crt"
KEYSTORE = "server.p12"
KEYSTORE_PASSWORD = "server.p12.password"
#: Validity of the local CA and the server certificate; a certificate within
#: ``TLS_RENEW_DAYS`` of its end is made again by the next ``start``.
TLS_VALID_DAYS = 825
TLS_RENEW_DAYS = 30
#: Principals every cluster has from its first format: `admin` (operations, super user), `broker`
#: (inter-broker traffic, super user) and `controller` (PLAIN on the controller listener only).
ADMIN = "admin"
BROKER_USER = "broker"
CONTROLLER_USER = "controller"
SECRETS_FILE = "secrets.json"
CLIENTS_DIR = "clients"


class BrokerError(RuntimeError):
    """The broker could not be fetched, started, reached or stopped."""


# --------------------------------------------------------------------------- classpath


def kafka_version() -> str:
    """The Kafka version pinned in ``deploy/kafka/pom.xml`` (property ``kafka.version``)."""
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = ET.parse(POM).getroot().find("m:properties/m:kafka.version", ns)
    if node is None or not (node.text or "").strip():
        raise BrokerError(f"{POM}: no <kafka.version> property")
    return (node.text or "").strip()


def default_libs_dir() -> Path:
    """``$LEDGER_KAFKA_LIBS`` or ``~/.cache/trial-ledger/kafka-<version>/libs``."""
    env = os.environ.get("LEDGER_KAFKA_LIBS")
    if env:
        return Path(env).expanduser().resolve()
    return Path.home() / ".cache" / "trial-ledger" / f"kafka-{kafka_version()}" / "libs"


def _pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def fetch_jars(cache_dir: Path | None = None) -> Path:
    """Materialise the broker classpath with Maven and return the directory holding the jars.

    ``cache_dir`` is the jar directory itself (default: ``default_libs_dir()``). Idempotent: a
    marker file records the digest of the POM the jars came from; a complete directory for the
    same POM is returned at once (a stale one is fetched again). A directory without the marker
    that already holds ``kafka_2.13-*.jar`` is used as is. Safe against concurrent callers
    (file lock, atomic rename).
    """
    libs = (cache_dir if cache_dir is not None else default_libs_dir()).expanduser().resolve()
    digest = _pom_digest()
    marker = libs / LIBS_MARKER
    if marker.is_file() and marker.read_text().strip() == digest:
        return libs
    if libs.is_dir() and not marker.exists() and any(libs.iterdir()):
        if any(libs.glob("kafka_2.13-*.jar")):
            return libs  # a classpath provided by hand (e.g. a Kafka distribution's libs/)
        raise BrokerError(f"{libs} is not empty and holds no Kafka jars; not overwriting it")
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("Maven (mvn) is not on PATH; it is needed once to fetch the Kafka jars")
    with flock(libs.parent / f".{libs.name}.lock"):
        if marker.is_file() and marker.read_text().strip() == digest:
            return libs
        staging = libs.parent / f".{libs.name}.tmp-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        cmd = [
            mvn,
            "-B",
            "-q",
            "-f",
            str(POM),
            f"{DEPENDENCY_PLUGIN}:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        jars = sorted(staging.glob("*.jar")) if staging.is_dir() else []
        if proc.returncode != 0 or not jars:
            shutil.rmtree(staging, ignore_errors=True)
            raise BrokerError(
                f"mvn copy-dependencies failed (exit {proc.returncode}):\n"
                f"{' '.join(cmd)}\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
            )
        if not any(j.name.startswith(f"kafka_2.13-{kafka_version()}") for j in jars):
            shutil.rmtree(staging, ignore_errors=True)
            raise BrokerError(f"mvn copied no kafka_2.13-{kafka_version()} jar into {staging}")
        (staging / LIBS_MARKER).write_text(digest + "\n")
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
    return libs


# --------------------------------------------------------------------------- state


@dataclass
class BrokerNode:
    """One KRaft node (combined broker + controller) of a local cluster."""

    node_id: int
    port: int
    controller_port: int
    pid: int | None
    log_path: Path
    config_path: Path

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def is_alive(self) -> bool:
        """True if ``pid`` is a live (non-zombie) JVM running this node's config."""
        return self.pid is not None and _is_our_jvm(self.pid, self.config_path)


@dataclass
class BrokerCluster:
    """A local Kafka cluster started by ``start``; its state lives in ``data_dir/broker.json``."""

    data_dir: Path
    cluster_id: str
    nodes: list[BrokerNode]
    libs: Path
    heap: str
    extra_config: dict[str, str] = field(default_factory=dict)
    tls: bool = False
    """The client listener is SASL_SSL (``start(..., tls=True)``), not SASL_PLAINTEXT."""

    @property
    def security_protocol(self) -> str:
        """``security.protocol`` of the client listener."""
        return TLS_SECURITY_PROTOCOL if self.tls else SECURITY_PROTOCOL

    @property
    def ca_file(self) -> Path | None:
        """The CA certificate clients verify the brokers with (``tls``), else None."""
        return self.data_dir / TLS_DIR / CA_CERT if self.tls else None

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT[,127.0.0.1:PORT...]`` — every node's client listener."""
        return ",".join(n.address for n in self.nodes)

    @property
    def log_paths(self) -> list[Path]:
        return [n.log_path for n in self.nodes]

    @property
    def admin(self) -> tuple[str, str]:
        """(user, password) of the cluster's super user ``admin``."""
        return ADMIN, _secrets(self.data_dir)[ADMIN]

    def client_config(self, principal: str = ADMIN) -> Path:
        """The client properties file of ``principal`` (``data_dir/clients/NAME.properties``)."""
        return client_config_path(self.data_dir, principal)

    def node(self, node_id: int) -> BrokerNode:
        for n in self.nodes:
            if n.node_id == node_id:
                return n
        raise KeyError(f"no node {node_id} in {self.data_dir} (nodes: {self._ids()})")

    def _ids(self) -> list[int]:
        return [n.node_id for n in self.nodes]

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Controlled shutdown of every node (SIGTERM, then SIGKILL after ``timeout``)."""
        stop(self.data_dir, timeout=timeout)

    def refresh(self) -> None:
        """Re-read the pids from ``broker.json`` (another ``start`` may have restarted nodes)."""
        current = load(self.data_dir)
        if current is not None and current.cluster_id == self.cluster_id:
            pids = {n.node_id: n.pid for n in current.nodes}
            for n in self.nodes:
                n.pid = pids.get(n.node_id, n.pid)

    def kill_node(self, node_id: int) -> None:
        """SIGKILL one node (a crash, for failover tests) and wait until it is gone."""
        self.refresh()
        n = self.node(node_id)
        if n.pid is not None and n.is_alive():
            _signal(n.pid, signal.SIGKILL)
            _wait_gone(n, 10.0)

    def stop_node(self, node_id: int, timeout: float = STOP_TIMEOUT) -> None:
        """Controlled shutdown of one node (SIGTERM, SIGKILL after ``timeout``)."""
        self.refresh()
        _terminate([self.node(node_id)], timeout, self.nodes)

    def restart_node(self, node_id: int, timeout: float = DEFAULT_TIMEOUT) -> BrokerNode:
        """Start a stopped/killed node again (same id, ports, storage); wait until it serves."""
        with flock(self.data_dir / LOCK_FILE):
            self.refresh()
            n = self.node(node_id)
            if not n.is_alive():
                n.pid = _launch(n, self.libs, self.heap)
                _write_state(self)
            _wait_ready(self, [n], timeout)
        return n

    def alive_nodes(self) -> list[BrokerNode]:
        return [n for n in self.nodes if n.is_alive()]

    def to_json(self) -> dict[str, Any]:
        return {
            "kafka_version": kafka_version(),
            "cluster_id": self.cluster_id,
            "bootstrap": self.bootstrap,
            "libs": str(self.libs),
            "heap": self.heap,
            "extra_config": self.extra_config,
            "tls": self.tls,
            "nodes": [
                {
                    "node_id": n.node_id,
                    "port": n.port,
                    "controller_port": n.controller_port,
                    "pid": n.pid,
                    "log": str(n.log_path),
                    "config": str(n.config_path),
                }
                for n in self.nodes
            ],
        }

    @classmethod
    def from_json(cls, data_dir: Path, raw: Mapping[str, Any]) -> BrokerCluster:
        nodes = [
            BrokerNode(
                node_id=int(n["node_id"]),
                port=int(n["port"]),
                controller_port=int(n["controller_port"]),
                pid=None if n.get("pid") is None else int(n["pid"]),
                log_path=Path(n["log"]),
                config_path=Path(n["config"]),
            )
            for n in raw["nodes"]
        ]
        return cls(
            data_dir=data_dir,
            cluster_id=str(raw["cluster_id"]),
            nodes=nodes,
            libs=Path(raw["libs"]),
            heap=str(raw["heap"]),
            extra_config={str(k): str(v) for k, v in raw.get("extra_config", {}).items()},
            tls=raw.get("tls", False) is True,
        )


def _write_state(cluster: BrokerCluster) -> None:
    save_state(cluster.data_dir / STATE_FILE, cluster.to_json())


def load(data_dir: Path) -> BrokerCluster | None:
    """The cluster recorded in ``data_dir`` (running or not), or None if none was started there."""
    return load_state(data_dir, STATE_FILE, BrokerCluster.from_json, BrokerError, "broker state")


# --------------------------------------------------------------------------- credentials


def new_password() -> str:
    """A random password (URL-safe: no quoting needed in JAAS or properties files)."""
    return secrets.token_urlsafe(24)


def _secrets(data_dir: Path) -> dict[str, str]:
    """The cluster's own passwords (admin, broker, controller), made once, kept 0600."""
    path = data_dir / SECRETS_FILE
    if path.is_file():
        try:
            raw = json.loads(path.read_text())
            return {name: str(raw[name]) for name in (ADMIN, BROKER_USER, CONTROLLER_USER)}
        except (ValueError, KeyError, TypeError) as exc:
            raise BrokerError(f"{path}: unreadable broker secrets ({exc})") from exc
    made = {name: new_password() for name in (ADMIN, BROKER_USER, CONTROLLER_USER)}
    write_atomic(path, json.dumps(made, indent=2) + "\n", mode=0o600)
    return made


def client_config_path(data_dir: Path, principal: str) -> Path:
    """``data_dir/clients/PRINCIPAL.properties``: the Kafka client settings of one principal."""
    return Path(data_dir).expanduser().resolve() / CLIENTS_DIR / f"{principal}.properties"


def read_properties(path: Path) -> dict[str, str]:
    """A Java ``.properties`` file as a dict (``key=value`` or ``key: value`` lines; ``#``/``!``
    comments). Escapes and continuation lines are not supported (the files written here have
    none)."""
    values: dict[str, str] = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        text = line.strip()
        if not text or text[0] in "#!":
            continue
        cut = min((i for i in (text.find("="), text.find(":")) if i > 0), default=-1)
        if cut < 0:
            raise ValueError(f"{path}:{number}: not a key=value line")
        values[text[:cut].strip()] = text[cut + 1 :].strip()
    return values


def write_client_properties(
    data_dir: Path,
    principal: str,
    password: str,
    bootstrap: str,
    *,
    ca_file: Path | None = None,
    extra: Mapping[str, str] | None = None,
) -> Path:
    """Write (atomically, mode 0600) the client properties file of ``principal``; return it.

    ``extra``: more keys (e.g. a site's ``ledger.submissions.topic``).
    With ``ca_file`` (a TLS broker: ``BrokerCluster.ca_file``) the file says
    ``security.protocol=SASL_SSL`` and ``ssl.ca.location=CA_FILE``.
    """
    path = client_config_path(data_dir, principal)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    values = {
        "bootstrap.servers": bootstrap,
        "security.protocol": SECURITY_PROTOCOL if ca_file is None else TLS_SECURITY_PROTOCOL,
        "sasl.mechanism": SASL_MECHANISM,
        "sasl.username": principal,
        "sasl.password": password,
    }
    if ca_file is not None:
        values["ssl.ca.location"] = str(Path(ca_file).resolve())
    values.update(extra or {})
    lines = [f"# Kafka client settings of principal {principal}; written by deploy/broker.py"]
    lines += [f"{key}={value}" for key, value in values.items()]
    write_atomic(path, "\n".join(lines) + "\n", mode=0o600)
    return path


# --------------------------------------------------------------------------- TLS


@dataclass(frozen=True)
class TlsFiles:
    """The TLS material of a data directory (``DATA/tls``, made by ``tls_files``)."""

    ca_cert: Path
    keystore: Path
    keystore_password: str


def _write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one rename; the new file is 0600 from its creation."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    tmp.replace(path)


def _cert_expires_soon(path: Path) -> bool:
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(path.read_bytes())
    left = cert.not_valid_after_utc - datetime.now(UTC)
    return left < timedelta(days=TLS_RENEW_DAYS)


def tls_files(data_dir: Path, *, renew: bool = True) -> TlsFiles:
    """The local CA and the brokers' key and certificate of ``data_dir``, made on first use.

    A CA (EC P-256, CA:TRUE, pathlen 0) signs one server certificate for ``127.0.0.1`` and
    ``localhost`` (serverAuth); the CA's private key is never written (a new server certificate
    means a new CA). Files under ``DATA/tls`` (0700), each 0600: ``ca.crt`` (PEM), ``server.p12``
    (PKCS#12: key, certificate, CA; AES-256 / PBKDF2-SHA256), ``server.p12.password``. Kept as
    they are while the certificates have more than ``TLS_RENEW_DAYS`` days left, or always with
    ``renew=False`` (some node still runs with them).
    """
    folder = Path(data_dir) / TLS_DIR
    ca_path, store_path = folder / CA_CERT, folder / KEYSTORE
    password_path = folder / KEYSTORE_PASSWORD
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    if ca_path.is_file() and store_path.is_file() and password_path.is_file():
        try:
            if not renew or not _cert_expires_soon(ca_path):
                return TlsFiles(ca_path, store_path, password_path.read_text().strip())
        except ValueError:
            pass  # unreadable: make new ones
    password = new_password()
    ca_pem, keystore = _make_certificates(password.encode())
    _write_private(password_path, (password + "\n").encode())
    _write_private(store_path, keystore)
    _write_private(ca_path, ca_pem)
    return TlsFiles(ca_path, store_path, password)


def _make_certificates(password: bytes) -> tuple[bytes, bytes]:
    """(CA certificate PEM, PKCS#12 keystore of the server key + certificate + CA)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.now(UTC) - timedelta(minutes=5)  # clock skew between makers and checkers
    until = now + timedelta(days=TLS_VALID_DAYS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "trial-ledger"),
        x509.NameAttribute(NameOID.COMMON_NAME,
                           f"trial-ledger local Kafka CA {secrets.token_hex(4)}"),
    ])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "trial-ledger"),
            x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
        ]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(
            x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address(LOOPBACK)),
            ]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    keystore = pkcs12.serialize_key_and_certificates(
        b"kafka", key, cert, [ca_cert], serialization.BestAvailableEncryption(password)
    )
    return ca_cert.public_bytes(serialization.Encoding.PEM), keystore


# --------------------------------------------------------------------------- processes


def _is_our_jvm(pid: int, config_path: Path) -> bool:
    argv = process_argv(pid)
    return argv is not None and b"kafka.Kafka" in argv and str(config_path).encode() in argv


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _wait_gone(node: BrokerNode, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not node.is_alive():
            return True
        time.sleep(0.05)
    return not node.is_alive()


def _terminate(
    targets: Sequence[BrokerNode], timeout: float, cluster: Sequence[BrokerNode] = ()
) -> None:
    """SIGTERM ``targets`` (controlled shutdown, in parallel); SIGKILL what is left after
    ``timeout``, or ``QUORUM_LOST_GRACE`` seconds after fewer than a majority of the ``cluster``
    nodes still run. Measured on 3 nodes: the active controller, left alone, waits ~5 s for its
    gone voters before exiting; once (in a failover test) a node hung until SIGKILL at 30 s.
    """
    alive = [n for n in targets if n.pid is not None and n.is_alive()]
    for n in alive:
        assert n.pid is not None
        _signal(n.pid, signal.SIGTERM)
    others = [n for n in cluster if n not in targets]
    majority = len(cluster) // 2 + 1
    deadline = time.monotonic() + timeout
    while alive:
        alive = [n for n in alive if n.is_alive()]
        now = time.monotonic()
        running = len(alive) + sum(1 for n in others if n.is_alive())
        if alive and len(cluster) > 1 and running < majority:
            deadline = min(deadline, now + QUORUM_LOST_GRACE)
        if alive and now >= deadline:
            for n in alive:
                assert n.pid is not None
                _signal(n.pid, signal.SIGKILL)
            for n in alive:
                _wait_gone(n, 10.0)
            return
        time.sleep(0.05)


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise BrokerError("java is not on PATH (Kafka 4 needs Java 17+)")
    return java


def _java_cmd(libs: Path, heap: str, main: str, *args: str) -> list[str]:
    return [
        _java(),
        f"-Xmx{heap}",
        *_JVM_FLAGS,
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        "-cp",
        f"{libs}/*",
        main,
        *args,
    ]


# `sh` backgrounds the JVM and exits at once, so the JVM is not our child: it outlives us
# (`ledger broker start` returns), leaves no zombie and no still-running Popen behind.
_SPAWN = 'log=$1; shift; "$@" </dev/null >>"$log" 2>&1 & echo $!'


def _launch(node: BrokerNode, libs: Path, heap: str) -> int:
    cmd = _java_cmd(libs, heap, "kafka.Kafka", str(node.config_path))
    with node.log_path.open("a") as log:
        log.write(f"\n==== {time.strftime('%Y-%m-%dT%H:%M:%S')} starting node {node.node_id}\n")
    proc = subprocess.run(
        ["/bin/sh", "-c", _SPAWN, "sh", str(node.log_path), *cmd],
        cwd=node.config_path.parent,
        capture_output=True,
        text=True,
        check=False,
        start_new_session=True,
        timeout=30,
    )
    try:
        return int(proc.stdout.strip())
    except ValueError:
        raise BrokerError(f"could not launch node {node.node_id}: {proc.stderr}") from None


# --------------------------------------------------------------------------- readiness probe


class _ProbeError(Exception):
    pass


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            raise _ProbeError("connection closed")
        buf += chunk
    return bytes(buf)


def _request(sock: socket.socket, api_key: int, version: int, corr: int, body: bytes) -> bytes:
    client = b"trial-ledger-probe"
    header = struct.pack(">hhih", api_key, version, corr, len(client)) + client
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    resp = _recv_exact(sock, size)
    (got,) = struct.unpack_from(">i", resp, 0)
    if got != corr:
        raise _ProbeError(f"correlation id {got} != {corr}")
    return resp[4:]


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return values

    def int16(self) -> int:
        return int(self.take(">h")[0])

    def int32(self) -> int:
        return int(self.take(">i")[0])

    def string(self) -> str | None:
        size = self.int16()
        if size < 0:
            return None
        raw = self.data[self.pos : self.pos + size]
        self.pos += size
        return raw.decode()


def _sasl_authenticate(sock: socket.socket, user: str, password: str) -> None:
    """SaslHandshake v1 + SCRAM-SHA-512 (RFC 5802) over SaslAuthenticate v0, stdlib only."""
    mech = SASL_MECHANISM.encode()
    r = _Reader(_request(sock, 17, 1, 2, struct.pack(">h", len(mech)) + mech))
    error = r.int16()
    if error:
        raise _ProbeError(f"SaslHandshake error {error}")
    nonce = base64.b64encode(os.urandom(18)).decode()
    name = user.replace("=", "=3D").replace(",", "=2C")
    first_bare = f"n={name},r={nonce}"
    server_first = _sasl_exchange(sock, 3, f"n,,{first_bare}".encode()).decode()
    attrs = dict(item.split("=", 1) for item in server_first.split(",") if "=" in item)
    if not attrs.get("r", "").startswith(nonce):
        raise _ProbeError("SCRAM: the server's nonce does not extend ours")
    salted = hashlib.pbkdf2_hmac(
        "sha512", password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"])
    )
    client_key = hmac.digest(salted, b"Client Key", "sha512")
    without_proof = f"c=biws,r={attrs['r']}"
    auth_message = f"{first_bare},{server_first},{without_proof}".encode()
    signature = hmac.digest(hashlib.sha512(client_key).digest(), auth_message, "sha512")
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    final = f"{without_proof},p={base64.b64encode(proof).decode()}".encode()
    server_final = _sasl_exchange(sock, 4, final).decode()
    expected = hmac.digest(hmac.digest(salted, b"Server Key", "sha512"), auth_message, "sha512")
    if server_final != f"v={base64.b64encode(expected).decode()}":
        raise _ProbeError("SCRAM: the server's signature is wrong")


def _sasl_exchange(sock: socket.socket, corr: int, data: bytes) -> bytes:
    r = _Reader(_request(sock, 36, 0, corr, struct.pack(">i", len(data)) + data))
    error = r.int16()
    message = r.string()
    if error:
        raise _ProbeError(f"SASL authentication failed (error {error}: {message})")
    (size,) = r.take(">i")
    return r.data[r.pos : r.pos + int(size)]


def _connect(port: int, timeout: float, ca_file: Path | None) -> socket.socket:
    """A socket to 127.0.0.1:``port``; with ``ca_file``, TLS verified against that CA."""
    sock = socket.create_connection((LOOPBACK, port), timeout=timeout)
    if ca_file is None:
        return sock
    context = ssl.create_default_context(cafile=str(ca_file))
    try:
        return context.wrap_socket(sock, server_hostname=LOOPBACK)
    except BaseException:
        sock.close()
        raise


def metadata_brokers(
    port: int,
    timeout: float = 2.0,
    credentials: tuple[str, str] | None = None,
    ca_file: Path | None = None,
) -> tuple[str | None, set[int]]:
    """(cluster id, ids of the live brokers) as seen by the broker at 127.0.0.1:``port``.

    Stdlib Kafka protocol: (with ``ca_file``, TLS verified against that CA), ApiVersions v0, then
    (with ``credentials``, user and password) SASL/SCRAM-SHA-512, then Metadata v4..v8
    (non-flexible) for no topics.
    Raises OSError (``ssl.SSLError`` included) or ``BrokerError`` if the broker does not answer
    properly.
    """
    try:
        with _connect(port, timeout, ca_file) as sock:
            r = _Reader(_request(sock, 18, 0, 1, b""))  # ApiVersions v0
            error = r.int16()
            if error:
                raise _ProbeError(f"ApiVersions error {error}")
            versions = {}
            for _ in range(r.int32()):
                key, lo, hi = r.take(">hhh")
                versions[int(key)] = (int(lo), int(hi))
            if credentials is not None:
                _sasl_authenticate(sock, *credentials)
            lo, hi = versions.get(3, (0, -1))
            version = max(lo, 4)
            if version > min(hi, 8):
                raise _ProbeError(f"broker supports Metadata v{lo}-v{hi}, probe speaks v4-v8")
            # topics = [] (none), allow_auto_topic_creation = false (+ 2 flags for v8)
            body = struct.pack(">i", 0) + b"\x00" + (b"\x00\x00" if version >= 8 else b"")
            r = _Reader(_request(sock, 3, version, 5, body))
            r.int32()  # throttle_time_ms
            ids = set()
            for _ in range(r.int32()):
                ids.add(r.int32())
                r.string()  # host
                r.int32()  # port
                r.string()  # rack
            cluster_id = r.string()
            return cluster_id, ids
    except (_ProbeError, struct.error, KeyError, ValueError) as exc:
        raise BrokerError(f"metadata probe of {LOOPBACK}:{port} failed: {exc}") from exc


def _wait_ready(cluster: BrokerCluster, nodes: Sequence[BrokerNode], timeout: float) -> None:
    """Wait until each of ``nodes`` answers Metadata listing every node of ``nodes`` as live."""
    expected = {n.node_id for n in nodes} | {n.node_id for n in cluster.alive_nodes()}
    pending = list(nodes)
    deadline = time.monotonic() + timeout
    last_error: dict[int, str] = {}
    while pending:
        for n in list(pending):
            if not n.is_alive():
                raise BrokerError(
                    f"Kafka node {n.node_id} (pid {n.pid}) exited during startup"
                    f"{_cause_in(log_tail(n.log_path, lines=400))}; log {n.log_path}:\n"
                    f"{log_tail(n.log_path)}"
                )
            try:
                cluster_id, ids = metadata_brokers(
                    n.port, credentials=cluster.admin, ca_file=cluster.ca_file
                )
            except (OSError, BrokerError) as exc:
                last_error[n.node_id] = str(exc)
                continue
            if cluster_id != cluster.cluster_id:
                raise BrokerError(
                    f"127.0.0.1:{n.port} belongs to cluster {cluster_id}, "
                    f"not {cluster.cluster_id} (port taken by another broker?)"
                )
            if expected <= ids:
                pending.remove(n)
            else:
                last_error[n.node_id] = (
                    f"live brokers {sorted(ids)}, waiting for {sorted(expected)}"
                )
        if not pending:
            return
        if time.monotonic() > deadline:
            n = pending[0]
            raise BrokerError(
                f"Kafka node {n.node_id} not ready after {timeout:.0f}s "
                f"({last_error.get(n.node_id, 'no answer')}); log {n.log_path}:\n"
                f"{log_tail(n.log_path)}"
            )
        time.sleep(0.2)


# --------------------------------------------------------------------------- config


def _new_cluster_id() -> str:
    """Kafka's Uuid.randomUuid().toString(): URL-safe base64, no padding, not starting with -."""
    while True:
        cid = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def _jaas(module: str, user: str, password: str, *extra: str) -> str:
    options = " ".join((f'username="{user}"', f'password="{password}"', *extra))
    return f"{module} required {options};"


def _security_properties(cluster: BrokerCluster) -> dict[str, str]:
    """SASL on both listeners and the StandardAuthorizer, deny by default (contract §7)."""
    pw = _secrets(cluster.data_dir)
    client, controller = _LISTENER.lower(), _CONTROLLER.lower()
    mech = SASL_MECHANISM.lower()
    props = {
        "listener.security.protocol.map": (
            f"{_CONTROLLER}:SASL_PLAINTEXT,{_LISTENER}:{cluster.security_protocol}"
        ),
        "sasl.enabled.mechanisms": SASL_MECHANISM,
        "sasl.mechanism.inter.broker.protocol": SASL_MECHANISM,
        f"listener.name.{client}.sasl.enabled.mechanisms": SASL_MECHANISM,
        f"listener.name.{client}.{mech}.sasl.jaas.config": _jaas(
            "org.apache.kafka.common.security.scram.ScramLoginModule",
            BROKER_USER, pw[BROKER_USER],
        ),
        "sasl.mechanism.controller.protocol": "PLAIN",
        f"listener.name.{controller}.sasl.enabled.mechanisms": "PLAIN",
        f"listener.name.{controller}.plain.sasl.jaas.config": _jaas(
            "org.apache.kafka.common.security.plain.PlainLoginModule",
            CONTROLLER_USER, pw[CONTROLLER_USER],
            f'user_{CONTROLLER_USER}="{pw[CONTROLLER_USER]}"',
        ),
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": ";".join(f"User:{u}" for u in (ADMIN, BROKER_USER, CONTROLLER_USER)),
        "allow.everyone.if.no.acl.found": "false",
    }
    if cluster.tls:
        props.update(_tls_properties(cluster))
    return props


def _tls_properties(cluster: BrokerCluster) -> dict[str, str]:
    """TLS on the client listener (clients and inter-broker traffic; the controller listener
    stays SASL_PLAINTEXT on loopback): the PKCS#12 keystore of ``tls_files``, the CA as a PEM
    truststore (brokers verify each other, hostname included), no client certificates."""
    files = tls_files(cluster.data_dir, renew=not cluster.alive_nodes())
    prefix = f"listener.name.{_LISTENER.lower()}."
    return {
        f"{prefix}ssl.keystore.type": "PKCS12",
        f"{prefix}ssl.keystore.location": str(files.keystore),
        f"{prefix}ssl.keystore.password": files.keystore_password,
        f"{prefix}ssl.key.password": files.keystore_password,
        f"{prefix}ssl.truststore.type": "PEM",
        f"{prefix}ssl.truststore.location": str(files.ca_cert),
        f"{prefix}ssl.client.auth": "none",
        f"{prefix}ssl.endpoint.identification.algorithm": "https",
        f"{prefix}ssl.enabled.protocols": "TLSv1.3,TLSv1.2",
    }


def _server_properties(cluster: BrokerCluster, node: BrokerNode) -> dict[str, str]:
    n = len(cluster.nodes)
    rf = str(min(n, 3))
    min_isr = "1" if n == 1 else "2"
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "listeners": (
            f"{_LISTENER}://{LOOPBACK}:{node.port},{_CONTROLLER}://{LOOPBACK}:{node.controller_port}"
        ),
        "advertised.listeners": f"{_LISTENER}://{LOOPBACK}:{node.port}",
        "controller.listener.names": _CONTROLLER,
        "inter.broker.listener.name": _LISTENER,
        "log.dirs": str(node.config_path.parent / "data"),
        # replication: RF 3 / min ISR 2 on three nodes, 1/1 on one
        "default.replication.factor": rf,
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": rf,
        "transaction.state.log.replication.factor": rf,
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": rf,
        "share.coordinator.state.topic.min.isr": min_isr,
        "num.partitions": "1",
        # a topic exists because someone with the right to create it did (issue 13 item 6)
        "auto.create.topics.enable": "false",
        # dev/test niceties
        "group.initial.rebalance.delay.ms": "0",
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.num.partitions": "10",
        "share.coordinator.state.topic.num.partitions": "10",
        # the cleaner's 128 MiB default dedupe buffer is most of a small heap
        "log.cleaner.dedupe.buffer.size": str(8 * 1024 * 1024),
        # fence a crashed node after 6 s instead of 9 s (failover tests)
        "broker.heartbeat.interval.ms": "1000",
        "broker.session.timeout.ms": "6000",
    }
    if n == 1:
        props["controller.quorum.bootstrap.servers"] = f"{LOOPBACK}:{node.controller_port}"
    else:
        props["controller.quorum.voters"] = ",".join(
            f"{m.node_id}@{LOOPBACK}:{m.controller_port}" for m in cluster.nodes
        )
    props.update(_security_properties(cluster))
    props.update(cluster.extra_config)
    return props


def _write_config(cluster: BrokerCluster, node: BrokerNode) -> None:
    node.config_path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# written by deploy/broker.py; rewritten on every start"]
    lines += [f"{k}={v}" for k, v in _server_properties(cluster, node).items()]
    write_atomic(node.config_path, "\n".join(lines) + "\n", mode=0o600)  # holds passwords


def _format(cluster: BrokerCluster, node: BrokerNode) -> None:
    if (node.config_path.parent / "data" / "meta.properties").is_file():
        return
    args = ["format", "-t", cluster.cluster_id, "-c", str(node.config_path)]
    if len(cluster.nodes) == 1:
        args.append("--standalone")
    pw = _secrets(cluster.data_dir)
    scram = [
        token
        for user in (ADMIN, BROKER_USER)
        for token in ("--add-scram", f"{SASL_MECHANISM}=[name={user},password={pw[user]}]")
    ]
    # The SCRAM users every node needs before it can authenticate anyone go into the metadata
    # at format time (KIP-900), through a java @argfile so no password shows in `ps` (the
    # classpath stays on the command line: the launcher expands `dir/*` only there).
    argfile = node.config_path.parent / ".format.args"
    tokens = ["kafka.tools.StorageTool", *args, *scram]
    quoted = ['"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"' for t in tokens]
    write_atomic(argfile, "\n".join(quoted) + "\n", mode=0o600)
    cmd = [*_java_cmd(cluster.libs, "128m", "kafka.tools.StorageTool")[:-1], f"@{argfile}"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
    finally:
        argfile.unlink(missing_ok=True)
    with node.log_path.open("a") as log:
        log.write(f"==== {' '.join(args)}\n{proc.stdout}{proc.stderr}")
    if proc.returncode != 0:
        raise BrokerError(
            f"formatting node {node.node_id} failed (exit {proc.returncode}):\n"
            f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )


def _new_cluster(
    data_dir: Path, nodes: int, libs: Path, heap: str, extra: Mapping[str, str], tls: bool
) -> BrokerCluster:
    ports = free_ports(2 * nodes)
    members = [
        BrokerNode(
            node_id=i,
            port=ports[2 * (i - 1)],
            controller_port=ports[2 * (i - 1) + 1],
            pid=None,
            log_path=data_dir / f"node-{i}.log",
            config_path=data_dir / f"node-{i}" / "server.properties",
        )
        for i in range(1, nodes + 1)
    ]
    return BrokerCluster(data_dir, _new_cluster_id(), members, libs, heap, dict(extra), tls)


# --------------------------------------------------------------------------- public API


def start(
    data_dir: Path,
    nodes: int = 1,
    *,
    heap: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    libs: Path | None = None,
    extra_config: Mapping[str, str] | None = None,
    tls: bool | None = None,
) -> BrokerCluster:
    """Start (or return the already running) local KRaft cluster of ``nodes`` nodes in ``data_dir``.

    ``tls=True``: the client listener is SASL_SSL with a certificate of a CA made for
    ``data_dir`` (``tls_files``); every client file names it (``ssl.ca.location``). A data
    directory keeps the mode it was first started with: ``tls=None`` (the default) means that
    mode (plain SASL for a new one), and asking for the other one is a ``BrokerError``.

    Returns once every node answers a Metadata request listing all nodes. Idempotent: a cluster
    already running there is returned as is; dead nodes of a recorded cluster are restarted with
    their storage and ports. Raises ``BrokerError`` (with the log tail) if a JVM dies or
    ``timeout`` passes. The JVMs are detached: they keep running after this process exits.
    """
    if nodes not in (1, 3):
        raise ValueError("nodes must be 1 or 3 (a KRaft quorum of one or three controllers)")
    data_dir = Path(data_dir).expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    heap = heap or os.environ.get("LEDGER_KAFKA_HEAP") or DEFAULT_HEAP
    jar_dir = fetch_jars(libs)
    with flock(data_dir / LOCK_FILE):
        cluster = load(data_dir)
        if cluster is not None and len(cluster.nodes) != nodes:
            raise BrokerError(
                f"{data_dir} holds a {len(cluster.nodes)}-node cluster, not {nodes}; "
                f"stop it and use another directory"
            )
        fresh = cluster is None
        held = sorted(p.name for p in data_dir.iterdir() if p.name != LOCK_FILE)
        if fresh and held:
            # A cluster whose state file is gone (its topics, maybe its JVMs still running) or
            # another tool's files: starting afresh would format them away. Never overwritten.
            raise BrokerError(
                f"{data_dir} holds {', '.join(held[:4])}{', ...' if len(held) > 4 else ''} but no "
                f"{STATE_FILE}: a broker whose state file is gone, or something else; nothing "
                "there is replaced: use a new or empty directory"
            )
        if cluster is not None and tls is not None and cluster.tls != tls:
            started = "with" if cluster.tls else "without"
            raise BrokerError(
                f"{data_dir} holds a broker started {started} TLS; start it as it was "
                f"or use another data directory"
            )
        if not fresh and not (data_dir / SECRETS_FILE).is_file():
            raise BrokerError(
                f"{data_dir} holds a broker started without authentication (no {SECRETS_FILE}); "
                f"use a new data directory"
            )
        attempts = 3 if fresh else 1
        for attempt in range(attempts):
            if fresh:
                cluster = _new_cluster(
                    data_dir, nodes, jar_dir, heap, extra_config or {}, bool(tls)
                )
                for n in cluster.nodes:  # leftovers of a cluster whose state file is gone
                    shutil.rmtree(n.config_path.parent, ignore_errors=True)
            assert cluster is not None
            cluster.libs, cluster.heap = jar_dir, heap
            if extra_config is not None:
                cluster.extra_config = dict(extra_config)
            dead = [n for n in cluster.nodes if not n.is_alive()]
            for n in dead:
                _write_config(cluster, n)
            for n in dead:
                _format(cluster, n)
            for n in dead:  # all before waiting on any: each waits for a quorum
                n.pid = _launch(n, jar_dir, heap)
            _write_state(cluster)
            try:
                _wait_ready(cluster, cluster.nodes, timeout)
            except BrokerError as exc:
                port_clash = "Address already in use" in str(exc)
                if not (fresh and port_clash and attempt + 1 < attempts):
                    raise
                # another process took a port we picked: wipe this fresh cluster, new ports
                _terminate(cluster.nodes, 5.0)
                for n in cluster.nodes:
                    shutil.rmtree(n.config_path.parent, ignore_errors=True)
                continue
            write_client_properties(
                data_dir, ADMIN, cluster.admin[1], cluster.bootstrap, ca_file=cluster.ca_file
            )
            return cluster
    raise AssertionError("unreachable")


def stop(data_dir: Path, timeout: float = STOP_TIMEOUT) -> None:
    """Stop the cluster started in ``data_dir``: SIGTERM (controlled shutdown), wait, SIGKILL.

    Idempotent (stopping a stopped cluster does nothing); storage and state file are kept, so a
    later ``start`` resumes with the same data. Raises ``BrokerError`` if no broker was ever
    started in ``data_dir``.
    """
    data_dir = Path(data_dir).expanduser().resolve()
    cluster = load(data_dir)
    if cluster is None:
        raise BrokerError(f"no Kafka broker was started in {data_dir} (no {STATE_FILE})")
    with flock(data_dir / LOCK_FILE):
        _terminate(cluster.nodes, timeout, cluster.nodes)
        for n in cluster.nodes:
            n.pid = None
        _write_state(cluster)


def status(data_dir: Path) -> dict[str, Any]:
    """The state file of ``data_dir`` plus ``alive`` per node and ``running`` (all alive)."""
    data_dir = Path(data_dir).expanduser().resolve()
    cluster = load(data_dir)
    if cluster is None:
        return {"data_dir": str(data_dir), "running": False, "nodes": []}
    info = cluster.to_json()
    info["data_dir"] = str(data_dir)
    for raw, node in zip(info["nodes"], cluster.nodes, strict=True):
        raw["alive"] = node.is_alive()
    info["running"] = all(raw["alive"] for raw in info["nodes"])
    return info


def default_data_dir() -> Path:
    """``$LEDGER_KAFKA_DATA`` or ``~/.local/state/trial-ledger/kafka``."""
    env = os.environ.get("LEDGER_KAFKA_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".local" / "state" / "trial-ledger" / "kafka"


def _cause_in(log: str) -> str:
    """The line of a dead node's log that says why, for the error's first line (the one a
    command prints): the root cause of the last Java exception ("Caused by: ... Address already
    in use"), else the last ERROR line."""
    lines = log.splitlines()
    for wanted in ("Caused by:", " ERROR "):
        found = [line.strip() for line in lines if wanted in line]
        if found:
            return f": {found[-1].removeprefix('Caused by:').strip()[-200:]}"
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.broker", description="Local Apache Kafka (KRaft) broker."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_fetch = sub.add_parser("fetch", help="download the broker jars (Maven); print their dir")
    p_fetch.add_argument("libs", nargs="?", type=Path, default=None)
    for name, text in (
        ("start", "start (or find running) broker; print the bootstrap servers"),
        ("stop", "stop the broker"),
        ("status", "print the broker state as JSON"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("data_dir", nargs="?", type=Path, default=None)
        if name == "start":
            p.add_argument("nodes", nargs="?", type=int, default=1, choices=(1, 3))
            p.add_argument("--heap", default=None, help=f"JVM -Xmx per node ({DEFAULT_HEAP})")
            p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
            p.add_argument("--tls", action="store_true", default=None,
                           help="client listener SASL_SSL with a local CA (DATA/tls/ca.crt)")
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            print(fetch_jars(args.libs))
            return 0
        data_dir = args.data_dir or default_data_dir()
        if args.command == "start":
            cluster = start(
                data_dir, args.nodes, heap=args.heap, timeout=args.timeout, tls=args.tls
            )
            print(cluster.bootstrap)
        elif args.command == "stop":
            stop(data_dir)
            print(f"stopped the broker in {data_dir}")
        else:
            info = status(data_dir)
            print(json.dumps(info, indent=2))
            return 0 if info["running"] else 3
    except (ValueError, OSError, BrokerError) as exc:
        return failure_status(exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
