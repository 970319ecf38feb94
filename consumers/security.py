"""Who may write what on the broker (contract §7): SCRAM users, ACLs, the ledger's topics.

`deploy/broker.py` starts a broker that refuses anonymous clients (SASL/SCRAM-SHA-512 on the client
listener, inside TLS with `start(..., tls=True)`; StandardAuthorizer with
`allow.everyone.if.no.acl.found=false`) and knows only its super users. `provision` then, as
`admin`, adds the principals `ledger` and `auditor` and the demo site, creates the topics (the
ledger's own ones with `HISTORY_CONFIGS`), grants the ACLs of `acl_table` and writes each
principal's client properties file (on a TLS broker with `security.protocol=SASL_SSL` and
`ssl.ca.location`, the broker's CA); `add_site` does the same for one more site.
Both are idempotent: a principal keeps the password of its existing file.

A site's identity is its topic: only the site `S` may write `trial.submissions.S`, so a message on
it was sent by `S` as the broker authenticated it (consumers/ingest.py passes it on as
`Delivery.site`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from consumers._kafka import (
    SUBMISSIONS_TOPIC_KEY,
    KafkaSettings,
    client_settings,
    kafka,
    kafka_errors,
    load_client_properties,
)
from consumers.ingest import DEFAULT_GROUP
from consumers.outbox import TRANSACTIONAL_ID_PREFIX
from consumers.topics import (
    HISTORY_CONFIGS,
    LEDGER_TOPICS,
    SUBMISSIONS_TOPIC,
    ensure_topics,
    site_topic,
)

LEDGER = "ledger"
AUDITOR = "auditor"
DEMO_SITE = "edc-site-01"
#: Names a site cannot take: the cluster's and the ledger's own principals.
RESERVED = frozenset({"admin", "broker", "controller", LEDGER, AUDITOR, "trial-ledger"})
#: A site name is a Kafka topic suffix and a SCRAM user name: a small alphabet, no dots.
SITE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


class ProvisioningError(ValueError):
    """The broker's users, topics or ACLs could not be set up (one-line reason)."""


@dataclass(frozen=True, slots=True)
class Grant:
    """One row of the ACL table: `principal` may `operations` on a resource (allow, any host)."""

    principal: str
    resource: str  # TOPIC, GROUP, TRANSACTIONAL_ID
    name: str
    pattern: str  # LITERAL or PREFIXED
    operations: tuple[str, ...]

    def describe(self) -> str:
        star = "*" if self.pattern == "PREFIXED" else ""
        return f"{self.principal}: {','.join(self.operations)} on {self.resource} {self.name}{star}"


def ledger_grants() -> list[Grant]:
    """What the `ledger` principal may do: read every submissions topic (legacy and per-site, one
    prefix), write (and create, describe the settings of) its own topics, use its transactional
    ids and its consumer group."""
    grants = [
        Grant(LEDGER, "TOPIC", SUBMISSIONS_TOPIC, "PREFIXED", ("READ", "DESCRIBE")),
        Grant(LEDGER, "GROUP", DEFAULT_GROUP, "LITERAL", ("READ", "DESCRIBE")),
        Grant(LEDGER, "TRANSACTIONAL_ID", TRANSACTIONAL_ID_PREFIX, "PREFIXED",
              ("WRITE", "DESCRIBE")),
    ]
    grants += [
        Grant(LEDGER, "TOPIC", topic, "LITERAL",
              ("WRITE", "READ", "DESCRIBE", "CREATE", "DESCRIBE_CONFIGS"))
        for topic in LEDGER_TOPICS
    ]
    return grants


def auditor_grants() -> list[Grant]:
    """The auditor reads the ledger's own topics and their settings; nothing else."""
    return [Grant(AUDITOR, "TOPIC", topic, "LITERAL", ("READ", "DESCRIBE", "DESCRIBE_CONFIGS"))
            for topic in LEDGER_TOPICS]


def site_grants(site: str) -> list[Grant]:
    """A site writes its own submissions topic; nothing else (not even reading it back)."""
    return [Grant(site, "TOPIC", site_topic(site), "LITERAL", ("WRITE", "DESCRIBE"))]


def acl_table(sites: Iterable[str] = (DEMO_SITE,)) -> list[Grant]:
    """Every ACL a provisioned broker holds (`admin` is a super user and needs none)."""
    return [*ledger_grants(), *auditor_grants(), *(g for s in sites for g in site_grants(s))]


def check_site_name(site: str) -> str:
    """`site`, if it can name a principal and a topic; ProvisioningError otherwise."""
    if not SITE_NAME.fullmatch(site):
        raise ProvisioningError(
            f"site name {site!r}: use 1-64 letters, digits, '-' or '_', starting with a letter "
            f"or digit"
        )
    if site in RESERVED:
        raise ProvisioningError(f"site name {site!r} is reserved")
    return site


def provision(data_dir: Path, sites: Sequence[str] = (DEMO_SITE,)) -> dict[str, Path]:
    """Set up the principals, topics and ACLs of a broker started by `deploy.broker.start`.

    Returns each principal's client properties file (admin, ledger, auditor, every site).
    """
    from deploy import broker

    cluster = broker.load(Path(data_dir))
    if cluster is None:
        raise ProvisioningError(f"no broker was started with data directory {data_dir}")
    for site in sites:
        check_site_name(site)
    admin_file = cluster.client_config(broker.ADMIN)
    admin = load_client_properties(admin_file)
    rf = min(3, len(cluster.nodes))
    files = {broker.ADMIN: admin_file}
    principals = [LEDGER, AUDITOR, *sites]
    passwords = {name: _password(cluster.data_dir, name) for name in principals}
    with _admin_failures():
        _upsert_users(admin, passwords)
        ensure_topics(admin, [SUBMISSIONS_TOPIC, *(site_topic(s) for s in sites)],
                      replication_factor=rf)
        ensure_topics(admin, LEDGER_TOPICS, replication_factor=rf, configs=HISTORY_CONFIGS)
        grant(admin, acl_table(sites))
    for name in principals:
        extra = {SUBMISSIONS_TOPIC_KEY: site_topic(name)} if name in sites else {}
        files[name] = broker.write_client_properties(
            cluster.data_dir, name, passwords[name], cluster.bootstrap,
            ca_file=cluster.ca_file, extra=extra)
    return files


def add_site(data_dir: Path, site: str) -> Path:
    """Add one site principal, its topic and its ACL; return its client properties file."""
    check_site_name(site)
    from deploy import broker

    cluster = broker.load(Path(data_dir))
    if cluster is None:
        raise ProvisioningError(f"no broker was started with data directory {data_dir}")
    if not cluster.alive_nodes():
        raise ProvisioningError(f"the broker in {cluster.data_dir} is not running "
                                f"(ledger broker start --data {cluster.data_dir})")
    admin = load_client_properties(cluster.client_config(broker.ADMIN))
    password = _password(cluster.data_dir, site)
    with _admin_failures():
        _upsert_users(admin, {site: password})
        ensure_topics(admin, [site_topic(site)], replication_factor=min(3, len(cluster.nodes)))
        grant(admin, site_grants(site))
    return broker.write_client_properties(cluster.data_dir, site, password, cluster.bootstrap,
                                          ca_file=cluster.ca_file,
                                          extra={SUBMISSIONS_TOPIC_KEY: site_topic(site)})


def grant(admin: KafkaSettings, grants: Iterable[Grant]) -> None:
    """Create the ACLs of `grants` (existing identical ACLs are kept as they are)."""
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePattern,
        ResourceType,
    )

    acls = [
        ACL(f"User:{g.principal}", "*", ACLOperation[operation], ACLPermissionType.ALLOW,
            ResourcePattern(ResourceType[g.resource], g.name, ACLResourcePatternType[g.pattern]))
        for g in grants
        for operation in g.operations
    ]
    client = kafka().KafkaAdminClient(**client_settings(admin, "trial-ledger-provision"))
    with closing(client):
        result = client.create_acls(acls)
    failed = result.get("failed", []) if isinstance(result, dict) else []
    if failed:
        acl, error = failed[0][:2]
        raise ProvisioningError(f"could not create ACL {acl}: {error}")


def _upsert_users(admin: KafkaSettings, passwords: dict[str, str]) -> None:
    from kafka.admin import ScramMechanism, UserScramCredentialUpsertion

    client = kafka().KafkaAdminClient(**client_settings(admin, "trial-ledger-provision"))
    with closing(client):
        result = client.alter_user_scram_credentials([
            UserScramCredentialUpsertion(user, ScramMechanism.SCRAM_SHA_512, password)
            for user, password in passwords.items()
        ])
    errors = {user: error for user, error in (result or {}).items() if error}
    if errors:
        user, error = next(iter(errors.items()))
        raise ProvisioningError(f"could not set the SCRAM credentials of {user}: {error}")


def _password(data_dir: Path, principal: str) -> str:
    """The principal's password from its existing client file, or a new random one."""
    from deploy import broker

    path = broker.client_config_path(data_dir, principal)
    if path.is_file():
        existing = load_client_properties(path).password
        if existing:
            return existing
    return broker.new_password()


@contextmanager
def _admin_failures() -> Iterator[None]:
    """Kafka errors while provisioning become one-line ProvisioningErrors."""
    try:
        yield
    except (kafka_errors().KafkaError, TimeoutError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ProvisioningError(
            f"setting up the broker failed: {type(error).__name__}: {reason}"
        ) from None
