"""A local PostgreSQL server for the ledger's PostgreSQL store, run from the installed binaries.

No Docker: ``start`` finds the server binaries of the PostgreSQL installed on the machine
(``initdb``, ``pg_ctl``, ``postgres``, ``psql``), initialises a cluster in the data directory on
first use, listens on 127.0.0.1 on a free port (its unix socket stays inside the data directory),
starts it with ``pg_ctl`` as a detached process that outlives the caller, waits until it accepts
connections, creates two password login roles and the database, has the ledger create its schema
as the owner role, makes the store append-only for the ledger role, checks that the URL it returns
really connects, and returns that URL (``postgresql://ledger:PASSWORD@127.0.0.1:PORT/ledger``),
ready for ``ledger --store``. ``stop`` is ``pg_ctl stop -m fast``.

Two roles (issue 13, "append-only store"):

* ``ledger_owner`` (``LOGIN CREATEDB``) owns the database, its ``public`` schema and every table,
  sequence, type and function of the ledger. Its URL (``PostgresServer.owner_url``, ``owner_url``
  in the state file) is for schema changes only; the ledger never runs with it in service.
* ``ledger`` (``LOGIN``, no ``CREATEDB``), the role of the printed URL, may ``SELECT`` and
  ``INSERT`` the ledger's tables, use their sequences, take the ``LOCK TABLE ... IN EXCLUSIVE
  MODE`` eventsourcing takes per insert (PostgreSQL up to 16 allows it only with ``UPDATE``,
  ``DELETE`` or ``TRUNCATE``: it gets ``TRUNCATE``; from 17 on ``MAINTAIN``) and move a Kafka
  offset forward (``UPDATE (notification_id)`` on ``*_tracking`` tables). Owner-owned triggers,
  enabled ``ALWAYS``, refuse every ``UPDATE``, ``DELETE`` and ``TRUNCATE`` of a ledger table
  (an offset only moves forward), whoever runs it; the ledger role owns nothing, so it cannot
  drop or disable them, nor alter or drop a table.

The schema is the ledger's own: ``schema()`` runs ``LedgerService(OWNER_URL)`` in a child Python
(with eventsourcing's ``CREATE_TABLE`` on), then the grants and triggers as the superuser. ``start``
does that once per database; after a ledger upgrade that adds tables run ``schema`` again.

PostgreSQL refuses to run as root: run as root, every server command runs as the ``postgres``
OS user (``subprocess`` ``user=``/``group=``, with that user's groups), which owns the data
directory; run as anyone else, they run as the current user.

Only the standard library is imported (database work goes through ``psql``; the schema step runs
the ledger in a child process), so importing this module does not need psycopg.

Data directory layout (``start(data_dir)``)::

    data_dir/postgres.json   state: binaries, version, port, role, password, databases (0600)
    data_dir/postgres.log    the server log (``pg_ctl -l``), appended across restarts
    data_dir/pgdata/         the cluster (``initdb``), mode 0700, owned by the server's user
    data_dir/pgdata/ledger.conf  listen address, port, socket dir; rewritten on every start
    data_dir/run/            the unix socket directory (mode 0700)

Authentication: ``trust`` on the unix socket (reachable only by the server's user and root),
``scram-sha-256`` over TCP, so the URL's password is really checked.

The passwords are in the state file and in the URLs, and nowhere else: not on a command line
(``psql`` gets one in ``PGPASSWORD``, the schema step the owner URL in ``LEDGER_STORE``; the server
gets only their SCRAM verifiers, on ``psql``'s standard input), not in an error message, not in
``status`` (``***``).

Command line: ``python -m deploy.postgres {start|stop|status|schema} [DATA_DIR]`` (``start`` and
``schema`` print the ledger role's URL as the last line of standard output).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import pwd
import re
import secrets
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
    redacted,
    save_state,
    write_atomic,
)

__all__ = [
    "Account",
    "PostgresError",
    "PostgresServer",
    "find_bin_dir",
    "load",
    "log_tail",
    "schema",
    "server_account",
    "start",
    "status",
    "stop",
]

STATE_FILE = "postgres.json"
LOG_FILE = "postgres.log"
LOCK_FILE = ".postgres.lock"
CLUSTER_DIR = "pgdata"
SOCKET_DIR = "run"
CONF_FILE = "ledger.conf"

#: The OS account that runs the server when we are root (PostgreSQL refuses to run as root).
SERVER_OS_USER = "postgres"
#: The cluster's superuser (reachable only over the unix socket), the ledger's login role and
#: the role that owns the ledger's database and schema.
SUPERUSER = "postgres"
DEFAULT_ROLE = "ledger"
OWNER_ROLE = "ledger_owner"
DEFAULT_DATABASE = "ledger"
#: Seconds ``start`` waits for the server to accept connections.
DEFAULT_TIMEOUT = 60.0
#: Seconds ``stop`` waits for a fast shutdown before an immediate one.
STOP_TIMEOUT = 30.0

BIN_ENV = "LEDGER_POSTGRES_BIN"
DATA_ENV = "LEDGER_POSTGRES_DATA"
_SERVER_BINARIES = ("initdb", "pg_ctl", "postgres", "psql")
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class PostgresError(RuntimeError):
    """The server could not be found, initialised, started, reached or stopped."""


# --------------------------------------------------------------------------- binaries


def _has_server_binaries(directory: Path) -> bool:
    return all((directory / name).is_file() for name in _SERVER_BINARIES)


def _version_key(directory: Path) -> tuple[int, ...]:
    """``/usr/lib/postgresql/15/bin`` -> (15,): newest Debian installation first."""
    return tuple(int(part) for part in re.findall(r"\d+", directory.parent.name))


def find_bin_dir() -> Path:
    """The directory holding ``initdb``, ``pg_ctl``, ``postgres`` and ``psql``.

    Tried in order: ``$LEDGER_POSTGRES_BIN``; ``pg_config --bindir``; the newest
    ``/usr/lib/postgresql/*/bin`` (Debian and Ubuntu keep the server binaries off ``PATH``); the
    directory of ``initdb`` on ``PATH``. Raises ``PostgresError`` naming what was tried.
    """
    tried: list[str] = []
    env = os.environ.get(BIN_ENV)
    if env:
        directory = Path(env).expanduser()
        if _has_server_binaries(directory):
            return directory
        raise PostgresError(
            f"${BIN_ENV}={env} does not hold the PostgreSQL server binaries "
            f"({', '.join(_SERVER_BINARIES)})"
        )
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        proc = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False, timeout=30
        )
        if proc.returncode == 0 and proc.stdout.strip():
            candidates.append(Path(proc.stdout.strip()))
    tried.append(f"pg_config --bindir ({'not on PATH' if pg_config is None else 'ran'})")
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    tried.append("/usr/lib/postgresql/*/bin")
    initdb = shutil.which("initdb")
    if initdb is not None:
        candidates.append(Path(initdb).parent)
    tried.append("initdb on PATH")
    for directory in candidates:
        if _has_server_binaries(directory):
            return directory
    raise PostgresError(
        "PostgreSQL is not installed: no directory with its server binaries "
        f"({', '.join(_SERVER_BINARIES)}); tried {'; '.join(tried)}. Install it "
        f"(Debian/Ubuntu: apt-get install postgresql) or set ${BIN_ENV} to its bin directory"
    )


# --------------------------------------------------------------------------- the server's user


@dataclass(frozen=True)
class Account:
    """The OS account the server runs as (``server_account``)."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str

    @property
    def is_current(self) -> bool:
        return self.uid == os.geteuid()

    @property
    def owner(self) -> tuple[int, int] | None:
        """(uid, gid) to hand our files to, None when that is us already."""
        return None if self.is_current else (self.uid, self.gid)


def server_account() -> Account:
    """``postgres`` when we are root (PostgreSQL refuses to run as root), else ourselves."""
    if os.geteuid() == 0:
        try:
            entry = pwd.getpwnam(SERVER_OS_USER)
        except KeyError:
            raise PostgresError(
                f"running as root, and there is no {SERVER_OS_USER!r} OS user to run PostgreSQL "
                f"as (PostgreSQL refuses to run as root); install the postgresql package or run "
                f"as an ordinary user"
            ) from None
    else:
        entry = pwd.getpwuid(os.geteuid())
    groups = tuple(os.getgrouplist(entry.pw_name, entry.pw_gid))
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid, groups, entry.pw_dir)


def _unreachable_ancestor(path: Path, account: Account) -> Path | None:
    """The first folder above ``path`` that ``account`` may not enter, or None."""
    if account.uid == 0 or account.is_current:
        return None
    for folder in reversed(path.parents):
        if not folder.exists():
            return None  # created by us below, with the default (searchable) mode
        info = folder.stat()
        if info.st_uid == account.uid:
            bit = stat.S_IXUSR
        elif info.st_gid in account.groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            return folder
    return None


def _environment(account: Account, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Our environment less libpq's ``PG*`` variables, with the server user's home and name,
    plus ``extra`` (e.g. ``PGPASSWORD``: the environment, unlike the command line, is private)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if not account.is_current:
        env.update(HOME=account.home, USER=account.name, LOGNAME=account.name)
    env.update(extra or {})
    return env


def _run(
    account: Account,
    cmd: Sequence[str | Path],
    *,
    cwd: Path,
    timeout: float,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    new_session: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL program as ``account`` (dropping root's identity when we are root), in
    ``_environment(account, env)``."""
    identity: dict[str, Any] = {}
    if not account.is_current:
        identity = {"user": account.uid, "group": account.gid, "extra_groups": account.groups}
    try:
        return subprocess.run(
            [str(part) for part in cmd],
            cwd=cwd,
            env=_environment(account, env),
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            start_new_session=new_session,
            **identity,
        )
    except subprocess.TimeoutExpired as exc:
        raise PostgresError(f"{Path(cmd[0]).name} did not finish in {timeout:.0f}s") from exc


def _own(path: Path, account: Account, mode: int) -> None:
    if account.owner is not None:
        os.chown(path, *account.owner)
    path.chmod(mode)


# --------------------------------------------------------------------------- state


@dataclass
class PostgresServer:
    """A local server started by ``start``; its state lives in ``data_dir/postgres.json``."""

    data_dir: Path
    bin_dir: Path
    version: str
    port: int
    role: str
    password: str = field(repr=False)  # not in tracebacks and test reports
    databases: list[str] = field(default_factory=list)
    durable: bool = True
    owner: str = OWNER_ROLE
    owner_password: str = field(default="", repr=False)  # "" in a state file older than the split
    append_only: list[str] = field(default_factory=list)  # databases whose schema step ran

    @property
    def cluster_dir(self) -> Path:
        return self.data_dir / CLUSTER_DIR

    @property
    def socket_dir(self) -> Path:
        return self.data_dir / SOCKET_DIR

    @property
    def log_path(self) -> Path:
        return self.data_dir / LOG_FILE

    def url(self, database: str = DEFAULT_DATABASE) -> str:
        """``postgresql://ROLE:PASSWORD@127.0.0.1:PORT/DATABASE`` (a ``--store`` value)."""
        return f"postgresql://{self.role}:{self.password}@{LOOPBACK}:{self.port}/{database}"

    def owner_url(self, database: str = DEFAULT_DATABASE) -> str:
        """The owner role's URL: for creating and changing the schema, never for the service."""
        return f"postgresql://{self.owner}:{self.owner_password}@{LOOPBACK}:{self.port}/{database}"

    def pid(self) -> int | None:
        """The postmaster's pid if it runs this cluster (not a zombie, not a recycled pid)."""
        try:
            first = (self.cluster_dir / "postmaster.pid").read_text().split("\n", 1)[0]
            pid = int(first)
        except (OSError, ValueError):
            return None
        argv = process_argv(pid)
        if argv is None or not argv[0].endswith(b"postgres"):
            return None
        return pid if str(self.cluster_dir).encode() in argv else None

    def is_running(self) -> bool:
        return self.pid() is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "bin_dir": str(self.bin_dir),
            "version": self.version,
            "host": LOOPBACK,
            "port": self.port,
            "role": self.role,
            "password": self.password,
            "databases": self.databases,
            "durable": self.durable,
            "url": self.url(self.databases[0] if self.databases else DEFAULT_DATABASE),
            "owner": self.owner,
            "owner_password": self.owner_password,
            "owner_url": self.owner_url(self.databases[0] if self.databases else DEFAULT_DATABASE),
            "append_only": self.append_only,
            "cluster": str(self.cluster_dir),
            "socket_dir": str(self.socket_dir),
            "log": str(self.log_path),
        }

    @classmethod
    def from_json(cls, data_dir: Path, raw: Mapping[str, Any]) -> PostgresServer:
        return cls(
            data_dir=data_dir,
            bin_dir=Path(raw["bin_dir"]),
            version=str(raw["version"]),
            port=int(raw["port"]),
            role=str(raw["role"]),
            password=str(raw["password"]),
            databases=[str(name) for name in raw.get("databases", [])],
            durable=bool(raw.get("durable", True)),
            owner=str(raw.get("owner", OWNER_ROLE)),
            owner_password=str(raw.get("owner_password", "")),
            append_only=[str(name) for name in raw.get("append_only", [])],
        )


def load(data_dir: Path) -> PostgresServer | None:
    """The server recorded in ``data_dir`` (running or not), or None if none was started there."""
    return load_state(data_dir, STATE_FILE, PostgresServer.from_json, PostgresError, "server state")


def _write_state(server: PostgresServer, account: Account) -> None:
    save_state(server.data_dir / STATE_FILE, server.to_json(), mode=0o600, owner=account.owner)


# --------------------------------------------------------------------------- cluster


def _initdb(server: PostgresServer, account: Account) -> None:
    proc = _run(
        account,
        [
            server.bin_dir / "initdb",
            "--pgdata",
            server.cluster_dir,
            "--username",
            SUPERUSER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--no-locale",
            "--no-instructions",
            *([] if server.durable else ["--no-sync"]),
        ],
        cwd=server.data_dir,
        timeout=120,
    )
    with server.log_path.open("a") as log:
        log.write(f"==== initdb (exit {proc.returncode})\n{proc.stdout}{proc.stderr}")
    if proc.returncode != 0:
        raise PostgresError(
            f"initdb of {server.cluster_dir} failed (exit {proc.returncode}):\n"
            f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
    config = server.cluster_dir / "postgresql.conf"
    with config.open("a") as handle:
        handle.write(f"\n# added by deploy/postgres.py\ninclude '{CONF_FILE}'\n")


def _write_server_config(server: PostgresServer, account: Account) -> None:
    settings = {
        "listen_addresses": f"'{LOOPBACK}'",
        "port": str(server.port),
        "unix_socket_directories": f"'{server.socket_dir}'",
        "unix_socket_permissions": "0700",
        "password_encryption": "scram-sha-256",
        # CREATE/ALTER/DROP (a dropped trigger, say) land in the server log with who ran them
        "log_statement": "'ddl'",
        "log_line_prefix": "'%m [%p] %q%u@%d '",
    }
    if not server.durable:  # test servers: a crash may lose data, and nobody minds
        settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
    lines = ["# written by deploy/postgres.py; rewritten on every start"]
    lines += [f"{name} = {value}" for name, value in settings.items()]
    text = "\n".join(lines) + "\n"
    write_atomic(server.cluster_dir / CONF_FILE, text, mode=0o600, owner=account.owner)


def _wait_for_a_dead_postmaster(server: PostgresServer, patience: float = 15.0) -> None:
    """After a crash (kill -9) the postmaster's pid stays in /proc until its parent reaps it,
    and its backends run on a moment: pg_ctl takes the pid for a live server and refuses to
    start ("lock file postmaster.pid already exists"). Wait, at most `patience` seconds, until
    no process of the old cluster is left."""
    try:
        pid = int((server.cluster_dir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return
    marker = str(server.cluster_dir).encode()
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        old = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _of_cluster(p, marker)]
        if not old and not Path(f"/proc/{pid}").exists():
            return
        time.sleep(0.2)


def _of_cluster(proc: Path, marker: bytes) -> bool:
    try:
        return marker in (proc / "cmdline").read_bytes()
    except OSError:
        return False


def _pg_ctl_start(server: PostgresServer, account: Account, timeout: float) -> None:
    _wait_for_a_dead_postmaster(server)
    with server.log_path.open("a") as log:
        log.write(f"==== {time.strftime('%Y-%m-%dT%H:%M:%S')} pg_ctl start (port {server.port})\n")
    proc = _run(
        account,
        [
            server.bin_dir / "pg_ctl",
            "start",
            "--pgdata",
            server.cluster_dir,
            "--log",
            server.log_path,
            "--wait",
            "--timeout",
            str(max(1, round(timeout))),
        ],
        cwd=server.data_dir,
        timeout=timeout + 30,
        new_session=True,  # detached: the server outlives us and never becomes our zombie
    )
    if proc.returncode != 0 or not server.is_running():
        raise PostgresError(
            f"PostgreSQL in {server.cluster_dir} did not start (pg_ctl exit {proc.returncode}: "
            f"{(proc.stdout + proc.stderr).strip()[-500:]}); log {server.log_path}:\n"
            f"{log_tail(server.log_path)}"
        )


def _psql(
    server: PostgresServer,
    account: Account,
    script: str,
    *,
    variables: Mapping[str, str] | None = None,
    database: str = "postgres",
    password: str | None = None,
) -> str:
    """Run ``script`` through ``psql`` (stopping at the first error); return what it printed.

    Without ``password``: as the superuser over the unix socket (``trust``). With it: as the
    login role over TCP to 127.0.0.1, the way the ledger connects. Nothing secret goes on the
    command line, which every local user can read (``/proc/PID/cmdline``): the password goes in
    ``PGPASSWORD``, the psql ``variables`` in ``\\set`` lines ahead of the script on standard
    input. The error leaves out the password and a variable named ``password``.
    """
    via_tcp = password is not None
    host = LOOPBACK if via_tcp else str(server.socket_dir)
    username = server.role if via_tcp else SUPERUSER
    cmd: list[str | Path] = [
        server.bin_dir / "psql",
        "--host",
        host,
        "--port",
        str(server.port),
        "--username",
        username,
        "--dbname",
        database,
        "--no-psqlrc",
        "--no-password",
        "--quiet",
        "--tuples-only",
        "--no-align",
        "--set",
        "ON_ERROR_STOP=1",
    ]
    settings = []
    for name, value in (variables or {}).items():
        if "'" in value or "\\" in value:
            raise ValueError(f"psql variable {name}: quotes and backslashes are not passed")
        settings.append(f"\\set {name} '{value}'\n")
    proc = _run(
        account,
        cmd,
        cwd=server.data_dir,
        timeout=60,
        stdin="".join(settings) + script,
        env=None if password is None else {"PGPASSWORD": password},
    )
    if proc.returncode != 0:
        error = proc.stderr.strip()[-2000:]
        for secret in (password, (variables or {}).get("password")):
            if secret:
                error = error.replace(secret, "***")
        raise PostgresError(f"psql as {username} on {host} port {server.port} failed: {error}")
    return proc.stdout


def _scram_verifier(password: str, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier of ``password`` (RFC 5802/7677, as PostgreSQL stores it).

    ``ALTER ROLE … PASSWORD`` takes it in place of the password, which then never reaches the
    server, whose log records a failing statement with its text.
    """
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    stored_key = hashlib.sha256(hmac.digest(salted, b"Client Key", "sha256")).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    salt64, stored64, server64 = (
        base64.b64encode(b).decode() for b in (salt, stored_key, server_key)
    )
    return f"SCRAM-SHA-256${iterations}:{salt64}${stored64}:{server64}"


_BOOTSTRAP = """
SELECT format('CREATE ROLE %I LOGIN CREATEDB', :'owner')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'owner') \\gexec
ALTER ROLE :"owner" LOGIN CREATEDB PASSWORD :'owner_password';
SELECT format('CREATE ROLE %I LOGIN', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \\gexec
ALTER ROLE :"role" LOGIN NOCREATEDB NOCREATEROLE PASSWORD :'password';
-- the owner may end the ledger role's sessions (DROP DATABASE ... WITH (FORCE)); never the reverse
GRANT :"role" TO :"owner";
SELECT format('CREATE DATABASE %I OWNER %I', :'database', :'owner')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'database') \\gexec
ALTER DATABASE :"database" OWNER TO :"owner";
"""

# In the ledger's database: what the ledger role made before the owner existed becomes the
# owner's (a data directory from before the split); nobody but the owner creates in `public`.
_BOOTSTRAP_DATABASE = """
REASSIGN OWNED BY :"role" TO :"owner";
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE ALL ON SCHEMA public FROM :"role";
GRANT USAGE ON SCHEMA public TO :"role";
"""


def _bootstrap(server: PostgresServer, account: Account, database: str) -> None:
    """The owner role (may create databases), the ledger role (may not), ``database`` owned by
    the owner, and nothing in it owned by the ledger role."""
    variables = {
        "role": server.role,
        "password": _scram_verifier(server.password),
        "owner": server.owner,
        "owner_password": _scram_verifier(server.owner_password),
        "database": database,
    }
    _psql(server, account, _BOOTSTRAP, variables=variables)
    _psql(
        server,
        account,
        _BOOTSTRAP_DATABASE,
        variables={"role": server.role, "owner": server.owner},
        database=database,
    )
    if database not in server.databases:
        server.databases.append(database)


#: The ledger creates its own tables: opening a ``LedgerService`` with eventsourcing's
#: ``CREATE_TABLE`` on runs its ``CREATE TABLE/TYPE/INDEX/FUNCTION`` statements (all idempotent).
_SCHEMA_SCRIPT = (
    "import os\n"
    "from ledger.application import LedgerService\n"
    "LedgerService(os.environ['LEDGER_STORE']).close()\n"
)
#: Settings that would stop the schema step from creating the tables.
_NO_CREATE_KEYS = ("CREATE_TABLE", "TRIALLEDGER_CREATE_TABLE")


def _create_schema(server: PostgresServer, database: str) -> None:
    """Run the ledger once as the owner, in a child Python, so it creates its tables.

    The owner URL travels in ``LEDGER_STORE`` (the environment, not the command line)."""
    env = {k: v for k, v in os.environ.items() if k not in _NO_CREATE_KEYS}
    env["LEDGER_STORE"] = server.owner_url(database)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _SCHEMA_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=180,
        )
    except subprocess.TimeoutExpired as exc:
        raise PostgresError(f"creating the ledger schema in {database} took over 180 s") from exc
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        error = lines[-1] if lines else f"exit {proc.returncode}"
        for secret in (server.owner_password, server.password):
            error = error.replace(secret, "***")
        raise PostgresError(
            f"the ledger could not create its schema in {database} as {server.owner}: {error}"
        )


#: As the superuser, in the ledger's database, after ``_create_schema``. Every table of
#: ``public`` that the owner owns is the ledger's: the ledger role may read it, insert into it,
#: lock it (eventsourcing's ``LOCK TABLE ... IN EXCLUSIVE MODE`` needs ``UPDATE``, ``DELETE`` or
#: ``TRUNCATE`` up to PostgreSQL 16, ``MAINTAIN`` from 17 on) and use its sequences; an offset
#: table (``*_tracking``) also lets it move ``notification_id`` forward (eventsourcing's
#: ``INSERT ... ON CONFLICT DO UPDATE``). Row triggers refuse ``UPDATE``/``DELETE`` (a tracking
#: row: ``DELETE`` and any update but an offset moving forward), a statement trigger refuses
#: ``TRUNCATE``; both fire for every role (``ENABLE ALWAYS``: even with
#: ``session_replication_role = replica``). Idempotent: it resets the ledger role's grants first.
_APPEND_ONLY = """
BEGIN;
CREATE OR REPLACE FUNCTION public.ledger_refuse_rewrite() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  RAISE EXCEPTION 'the ledger is append-only: % on %.% refused',
    TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END
$fn$;
CREATE OR REPLACE FUNCTION public.ledger_offset_forward_only() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  IF NEW.application_name IS DISTINCT FROM OLD.application_name
     OR NEW.notification_id IS NULL
     OR (OLD.notification_id IS NOT NULL AND NEW.notification_id <= OLD.notification_id) THEN
    RAISE EXCEPTION 'the ledger is append-only: an offset in %.% only moves forward (% -> %)',
      TG_TABLE_SCHEMA, TG_TABLE_NAME, OLD.notification_id, NEW.notification_id
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END
$fn$;
ALTER FUNCTION public.ledger_refuse_rewrite() OWNER TO :"owner";
ALTER FUNCTION public.ledger_offset_forward_only() OWNER TO :"owner";
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM :"role";
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM :"role";
CREATE TEMPORARY TABLE ledger_tables ON COMMIT DROP AS
SELECT c.oid::regclass AS name,
       c.relname LIKE '%\\_tracking'
       AND EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid
                   AND a.attname = 'notification_id' AND NOT a.attisdropped)
       AND EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid
                   AND a.attname = 'application_name' AND NOT a.attisdropped) AS tracking
  FROM pg_class c
 WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
   AND pg_get_userbyid(c.relowner) = :'owner';
SELECT format('GRANT SELECT, INSERT, %s ON %s TO %I',
              CASE WHEN current_setting('server_version_num')::int >= 170000
                   THEN 'MAINTAIN' ELSE 'TRUNCATE' END, name, :'role')
  FROM ledger_tables \\gexec
SELECT format('GRANT UPDATE (notification_id) ON %s TO %I', name, :'role')
  FROM ledger_tables WHERE tracking \\gexec
SELECT format('DROP TRIGGER IF EXISTS %I ON %s', trigger, name)
  FROM ledger_tables,
       unnest(ARRAY['ledger_append_only', 'ledger_offset_forward', 'ledger_no_truncate']) trigger
\\gexec
SELECT format('CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON %s '
              'FOR EACH ROW EXECUTE FUNCTION public.ledger_refuse_rewrite()', name)
  FROM ledger_tables WHERE NOT tracking \\gexec
SELECT format('CREATE TRIGGER ledger_append_only BEFORE DELETE ON %s '
              'FOR EACH ROW EXECUTE FUNCTION public.ledger_refuse_rewrite()', name)
  FROM ledger_tables WHERE tracking \\gexec
SELECT format('CREATE TRIGGER ledger_offset_forward BEFORE UPDATE ON %s '
              'FOR EACH ROW EXECUTE FUNCTION public.ledger_offset_forward_only()', name)
  FROM ledger_tables WHERE tracking \\gexec
SELECT format('CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON %s '
              'FOR EACH STATEMENT EXECUTE FUNCTION public.ledger_refuse_rewrite()', name)
  FROM ledger_tables \\gexec
SELECT format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', l.name, t.tgname)
  FROM ledger_tables l JOIN pg_trigger t ON t.tgrelid = l.name::oid
 WHERE t.tgname LIKE 'ledger\\_%' \\gexec
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO :"role";
SELECT count(*) FROM ledger_tables;
COMMIT;
"""


def _make_append_only(server: PostgresServer, account: Account, database: str) -> int:
    """The grants and triggers of ``_APPEND_ONLY``; returns how many tables they cover."""
    variables = {"role": server.role, "owner": server.owner}
    out = _psql(server, account, _APPEND_ONLY, variables=variables, database=database)
    tables = int(out.strip().splitlines()[-1])
    if tables == 0:
        raise PostgresError(
            f"the ledger's schema step left no table owned by {server.owner} in {database}"
        )
    return tables


def _check_url(server: PostgresServer, account: Account, database: str) -> None:
    """Connect the way the ledger will: TCP to 127.0.0.1, password authentication."""
    url = redacted(server.url(database))
    try:
        answer = _psql(server, account, "SELECT 1;", database=database, password=server.password)
    except PostgresError as exc:
        raise PostgresError(f"the server runs but {url} does not connect: {exc}") from None
    if answer.strip() != "1":
        raise PostgresError(f"the server runs but {url} answers {answer.strip()!r} to SELECT 1")


def _prepare_data_dir(data_dir: Path, account: Account) -> None:
    ours = {STATE_FILE, LOG_FILE, LOCK_FILE, CLUSTER_DIR, SOCKET_DIR}
    if data_dir.is_dir() and not (data_dir / STATE_FILE).is_file():
        strangers = sorted(p.name for p in data_dir.iterdir() if p.name not in ours)
        if strangers:
            raise PostgresError(
                f"{data_dir} is not empty and holds no server started by deploy/postgres.py "
                f"({', '.join(strangers[:5])}); give an empty or new directory"
            )
    blocked = _unreachable_ancestor(data_dir, account)
    if blocked is not None:
        raise PostgresError(
            f"the {account.name!r} OS user, which runs PostgreSQL, cannot reach {data_dir}: "
            f"{blocked} is not searchable by it (mode {stat.S_IMODE(blocked.stat().st_mode):04o}); "
            f"use a data directory it can reach (e.g. under /tmp or {account.home})"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    _own(data_dir, account, 0o700)
    socket_dir = data_dir / SOCKET_DIR
    socket_dir.mkdir(exist_ok=True)
    _own(socket_dir, account, 0o700)
    log = data_dir / LOG_FILE
    log.touch()
    _own(log, account, 0o600)


def _postgres_version(bin_dir: Path, account: Account, cwd: Path) -> str:
    proc = _run(account, [bin_dir / "postgres", "--version"], cwd=cwd, timeout=30)
    match = re.search(r"\d+(\.\d+)*", proc.stdout)
    if proc.returncode != 0 or match is None:
        raise PostgresError(f"{bin_dir / 'postgres'} --version failed: {proc.stderr.strip()}")
    return match.group(0)


# --------------------------------------------------------------------------- public API


def start(
    data_dir: Path,
    *,
    database: str = DEFAULT_DATABASE,
    timeout: float = DEFAULT_TIMEOUT,
    durable: bool = True,
) -> str:
    """Start (or find running) the local server of ``data_dir``; return the database's URL.

    On first use, ``initdb`` creates the cluster in ``data_dir/pgdata`` and a free loopback port
    is chosen (kept across restarts). Returns once the server accepts connections, ``database``
    exists (owned by the login role) and the returned URL connects with its password. Idempotent:
    a running server is reused (``database`` is created if it is new). ``durable=False`` turns
    off fsync, synchronous commit and full-page writes (for throwaway test servers). The server
    is detached: it keeps running after this process exits, until ``stop``.
    """
    if not _IDENTIFIER.fullmatch(database):
        raise ValueError(f"database name {database!r}: use lower-case letters, digits and _")
    data_dir = Path(data_dir).expanduser().resolve()
    account = server_account()
    _prepare_data_dir(data_dir, account)
    with flock(data_dir / LOCK_FILE):
        server = load(data_dir)
        initialised = (data_dir / CLUSTER_DIR / "PG_VERSION").is_file()
        if server is None and initialised:
            raise PostgresError(
                f"{data_dir / CLUSTER_DIR} holds a cluster but {data_dir / STATE_FILE} is gone "
                f"(port, password); start it by hand with pg_ctl or move it away"
            )
        fresh = server is None or not initialised
        if server is None or fresh:
            bin_dir = find_bin_dir()
            shutil.rmtree(data_dir / CLUSTER_DIR, ignore_errors=True)  # a half-made cluster
            server = PostgresServer(
                data_dir=data_dir,
                bin_dir=bin_dir,
                version=_postgres_version(bin_dir, account, data_dir),
                port=free_ports(1)[0],
                role=DEFAULT_ROLE,
                password=secrets.token_urlsafe(18),
                durable=durable,
                owner_password=secrets.token_urlsafe(18),
            )
            _initdb(server, account)
            _write_state(server, account)
        elif not _has_server_binaries(server.bin_dir):
            raise PostgresError(
                f"{data_dir} was created with PostgreSQL {server.version} from {server.bin_dir}, "
                f"which is no longer installed"
            )
        if not server.is_running():
            server.durable = durable
            attempts = 3 if fresh else 1
            for attempt in range(attempts):
                _write_server_config(server, account)
                try:
                    _pg_ctl_start(server, account, timeout)
                    break
                except PostgresError as exc:
                    # another process took the port we picked: a fresh cluster may move
                    if "Address already in use" not in str(exc) or attempt + 1 == attempts:
                        raise
                    server.port = free_ports(1)[0]
        if not server.owner_password:  # a data directory from before the owner role
            server.owner_password = secrets.token_urlsafe(18)
        _bootstrap(server, account, database)
        _write_state(server, account)
        if database not in server.append_only:
            _schema_step(server, account, database)
        _check_url(server, account, database)
        return server.url(database)


def _schema_step(server: PostgresServer, account: Account, database: str) -> None:
    _create_schema(server, database)
    _make_append_only(server, account, database)
    if database not in server.append_only:
        server.append_only.append(database)
    _write_state(server, account)


def schema(data_dir: Path, *, database: str = DEFAULT_DATABASE) -> str:
    """(Re)create the ledger's schema in ``database`` of the running server of ``data_dir`` as
    the owner and make it append-only for the ledger role; return the ledger role's URL.

    ``start`` does this once per database; run it again after a ledger upgrade that adds tables
    (a table the step has not covered is refused to the ledger role: it fails, loudly).
    """
    data_dir = Path(data_dir).expanduser().resolve()
    server = load(data_dir)
    if server is None:
        raise PostgresError(f"no PostgreSQL server was started in {data_dir} (no {STATE_FILE})")
    if not server.is_running():
        raise PostgresError(f"the PostgreSQL server of {data_dir} is not running; start it")
    if database not in server.databases:
        raise PostgresError(
            f"{database!r} is not a database of {data_dir}; `start --database {database}` it"
        )
    account = server_account()
    with flock(data_dir / LOCK_FILE):
        _schema_step(server, account, database)
    return server.url(database)


def stop(data_dir: Path, timeout: float = STOP_TIMEOUT) -> None:
    """Stop the server of ``data_dir`` (fast shutdown; an immediate one after ``timeout``).

    Idempotent (stopping a stopped server does nothing); the cluster and state file stay, so a
    later ``start`` resumes with the same data, port and password. Raises ``PostgresError`` if no
    server was ever started in ``data_dir``.
    """
    data_dir = Path(data_dir).expanduser().resolve()
    server = load(data_dir)
    if server is None:
        raise PostgresError(f"no PostgreSQL server was started in {data_dir} (no {STATE_FILE})")
    account = server_account()
    with flock(data_dir / LOCK_FILE):
        if not server.is_running():
            return
        for mode, wait in (("fast", timeout), ("immediate", 10.0)):
            proc = _run(
                account,
                [
                    server.bin_dir / "pg_ctl",
                    "stop",
                    "--pgdata",
                    server.cluster_dir,
                    "--mode",
                    mode,
                    "--wait",
                    "--timeout",
                    str(max(1, round(wait))),
                ],
                cwd=data_dir,
                timeout=wait + 30,
            )
            if not server.is_running():
                return
        raise PostgresError(
            f"PostgreSQL in {server.cluster_dir} did not stop (pg_ctl exit {proc.returncode}: "
            f"{(proc.stdout + proc.stderr).strip()[-500:]})"
        )


def status(data_dir: Path) -> dict[str, Any]:
    """The state file of ``data_dir`` plus ``running`` and ``pid``; the password is ``***``.

    Status goes to screens and logs; the URL with its password comes from ``start`` (idempotent:
    on a running server it only prints the URL) or the private state file.
    """
    data_dir = Path(data_dir).expanduser().resolve()
    server = load(data_dir)
    if server is None:
        return {"data_dir": str(data_dir), "running": False}
    info = server.to_json()
    info["password"] = "***"
    info["url"] = redacted(info["url"])
    info["owner_password"] = "***"
    info["owner_url"] = redacted(info["owner_url"])
    info["data_dir"] = str(data_dir)
    info["pid"] = server.pid()
    info["running"] = info["pid"] is not None
    return info


def default_data_dir() -> Path:
    """``$LEDGER_POSTGRES_DATA``, else ``~/.local/state/trial-ledger/postgres``.

    As root the server runs as ``postgres``, which cannot enter ``/root``: the default is then
    ``~postgres/trial-ledger`` (``/var/lib/postgresql/trial-ledger`` on Debian).
    """
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    if os.geteuid() == 0:
        return Path(server_account().home) / "trial-ledger"
    return Path.home() / ".local" / "state" / "trial-ledger" / "postgres"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.postgres", description="Local PostgreSQL server for the ledger."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("start", "start (or find running) the server; print the database URL last"),
        ("stop", "stop the server"),
        ("status", "print the server state as JSON (exit 3 unless it runs)"),
        ("schema", "recreate the ledger schema as the owner, append-only; print the URL last"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("data_dir", nargs="?", type=Path, default=None)
        if name in ("start", "schema"):
            p.add_argument("--database", default=DEFAULT_DATABASE)
        if name == "start":
            p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
            p.add_argument(
                "--no-fsync", action="store_true", help="throwaway server: fsync etc. off"
            )
    args = parser.parse_args(argv)
    data_dir = args.data_dir or default_data_dir()
    try:
        if args.command == "start":
            print(
                start(
                    data_dir,
                    database=args.database,
                    timeout=args.timeout,
                    durable=not args.no_fsync,
                )
            )
        elif args.command == "schema":
            print(schema(data_dir, database=args.database))
        elif args.command == "stop":
            stop(data_dir)
            print(f"stopped PostgreSQL in {data_dir}")
        else:
            info = status(data_dir)
            print(json.dumps(info, indent=2))
            return 0 if info["running"] else 3
    except (ValueError, OSError, PostgresError) as exc:
        return failure_status(exc)
    return 0



if __name__ == "__main__":
    sys.exit(main())
