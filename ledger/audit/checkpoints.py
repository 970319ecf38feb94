"""Checkpoints (signed tree heads) and the Ed25519 key that signs them (contract §6).

A checkpoint is `{"trial_id", "log", "size", "root", "recorded_at", "key_id", "signature"}`; the
signature is Ed25519 over the RFC 8785 bytes of the other fields. `key_id` is the first 16 hex
digits of SHA-256 over the raw public key, so a receipt names the key that must check it. A
checkpoint with no key (`key_id` and `signature` null) is recorded when the ledger runs without a
signing key; verify reports each one.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.audit.canonical import CanonicalShape
from ledger.audit.provenance import CHECKPOINT_FIELDS


def key_id_of(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def load_public_key(pem: str | bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM; ValueError (one line) for anything else."""
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as error:
        raise ValueError(f"not a PEM public key: {error}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the public key is not an Ed25519 key")
    return key


@dataclass(frozen=True, slots=True)
class Signer:
    """The ledger's signing key."""

    private_key: Ed25519PrivateKey
    # Derived once: every sealed batch names the key.
    key_id: str = field(init=False, compare=False)
    public_key_pem: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key_id", key_id_of(self.public_key))
        object.__setattr__(self, "public_key_pem", public_key_pem(self.public_key))

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    def sign(self, unsigned: Mapping[str, Any]) -> str:
        return base64.b64encode(self.private_key.sign(signed_bytes(unsigned))).decode("ascii")


def generate_signing_key(path: Path) -> Signer:
    """A new Ed25519 key written as PKCS#8 PEM, readable by its owner only; never overwrites."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    return Signer(key)


def load_signing_key(path: Path) -> Signer:
    """The key named by `--signing-key` / LEDGER_SIGNING_KEY; ValueError (one line) if unusable."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read signing key {path}: {error.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"signing key {path} is not an unencrypted PEM private key: {error}"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"signing key {path} is not an Ed25519 key")
    return Signer(key)


_SIGNED_FIELDS = tuple(k for k in CHECKPOINT_FIELDS if k != "signature")
_SIGNED_SHAPE = CanonicalShape(
    _SIGNED_FIELDS, texts=("trial_id", "log", "root", "recorded_at", "key_id")
)


def configured_signer(path: Path | None) -> Signer | None:
    """The signing key at `path` (`--signing-key`, whose default is LEDGER_SIGNING_KEY:
    `ledger.settings`); None when none is configured."""
    return load_signing_key(path) if path is not None else None


def signed_bytes(checkpoint: Mapping[str, Any]) -> bytes:
    """What the signature covers: every checkpoint field but the signature, RFC 8785."""
    return _SIGNED_SHAPE.dumps({k: checkpoint.get(k) for k in _SIGNED_FIELDS})


def make_checkpoint(
    *,
    trial_id: str | None,
    log: str,
    size: int,
    root: str,
    recorded_at: str,
    signer: Signer | None,
) -> dict[str, Any]:
    unsigned: dict[str, Any] = {
        "trial_id": trial_id,
        "log": log,
        "size": size,
        "root": root,
        "recorded_at": recorded_at,
        "key_id": signer.key_id if signer else None,
    }
    return {**unsigned, "signature": signer.sign(unsigned) if signer else None}


def signature_problem(
    checkpoint: Mapping[str, Any], public_keys: Mapping[str, Ed25519PublicKey]
) -> str | None:
    """Why the checkpoint's signature does not hold, or None when it does."""
    key_id, signature = checkpoint.get("key_id"), checkpoint.get("signature")
    if key_id is None or signature is None:
        return "checkpoint is not signed (the ledger ran without a signing key)"
    key = public_keys.get(str(key_id))
    if key is None:
        return f"no public key for key id {key_id}"
    try:
        key.verify(base64.b64decode(str(signature), validate=True), signed_bytes(checkpoint))
    except (InvalidSignature, ValueError):
        return f"signature does not verify with key {key_id}"
    return None
