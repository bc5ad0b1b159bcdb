"""Petitioners' personal data: AES-GCM at rest, keyed hashes for lookups, masks for lists.

ID numbers and phone numbers are stored three ways (DESIGN.md §6, issue 9):

- ``*_enc``: AES-256-GCM ciphertext ``v1:<key id>:<base64(nonce | ciphertext)>``; the key id
  (8 hex digits of the key's SHA-256) is bound as associated data, so a value can only be
  opened with the key that sealed it;
- ``*_hash``: HMAC-SHA256 of the normalized value under a second key, for exact lookups and
  repeat detection without decrypting anything;
- ``*_masked``: the list form (``3301**********1234``, ``138****5678``).

Keys come from ``FENGQIAO_PII_KEY`` (base64 of 32 random bytes); when it is unset they are
derived from the secret key with HKDF so that the demo works out of the box. Both the
encryption key and the hash key are derived from that one master key with HKDF, each with its
own ``info`` label. Rotation (`rotate_key`, ``fengqiao pii rotate``): with the new key set,
a re-encryption pass opens each value with the old key (recognised by its key id) and writes
ciphertext and hash anew; the key id in every ciphertext says which rows are still on the old
key, so an interrupted pass resumes where it stopped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import or_, select

from engine.config import Settings
from engine.domain.text import mask_id_number, mask_phone
from engine.persistence.db import UnitOfWork
from engine.persistence.models import Case, KeyPerson, Petitioner
from engine.services.access import Actor
from engine.services.audit import record_case_event, record_event

if TYPE_CHECKING:
    from engine.bootstrap import Services

FORMAT_VERSION = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12  # the GCM standard nonce
# Roles that may see a whole ID or phone number (the petition office and leaders in scope).
REVEAL_ROLES = ("admin", "intake", "leader")


class PiiKeyError(ValueError):
    """FENGQIAO_PII_KEY is not base64 of exactly 32 bytes, or a value was sealed by another key."""


def _hkdf(material: bytes, info: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=KEY_BYTES, salt=b"fengqiao-pii", info=info
    ).derive(material)


@dataclass(frozen=True)
class PiiCipher:
    """Seals, opens and hashes personal identifiers with the configured key."""

    key_id: str
    enc_key: bytes
    hash_key: bytes

    def encrypt(self, value: str) -> str:
        """AES-GCM ciphertext of ``value``, tagged with the format and key id."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.enc_key).encrypt(nonce, value.encode("utf-8"), self.key_id.encode())
        token = base64.b64encode(nonce + sealed).decode("ascii")
        return f"{FORMAT_VERSION}:{self.key_id}:{token}"

    def decrypt(self, token: str) -> str:
        """The plain value of a ciphertext sealed by ``encrypt`` with this key."""
        try:
            version, key_id, body = token.split(":", 2)
        except ValueError:
            raise PiiKeyError("not a sealed value") from None
        if version != FORMAT_VERSION or key_id != self.key_id:
            raise PiiKeyError(f"value sealed with key {key_id}, current key is {self.key_id}")
        raw = base64.b64decode(body)
        try:
            plain = AESGCM(self.enc_key).decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], self.key_id.encode()
            )
        except InvalidTag:
            raise PiiKeyError("sealed value was altered or the key is wrong") from None
        return plain.decode("utf-8")

    def lookup_hash(self, kind: str, normalized: str) -> str:
        """Keyed HMAC-SHA256 (hex) of a normalized identifier of ``kind`` (id_number, phone)."""
        message = f"{kind}:{normalized}".encode()
        return hmac.new(self.hash_key, message, hashlib.sha256).hexdigest()


@lru_cache(maxsize=8)
def _cipher(pii_key: str, secret_key: str) -> PiiCipher:
    if pii_key:
        try:
            master = base64.b64decode(pii_key, validate=True)
        except ValueError:
            raise PiiKeyError("FENGQIAO_PII_KEY must be base64 of 32 bytes") from None
        if len(master) != KEY_BYTES:
            raise PiiKeyError(
                f"FENGQIAO_PII_KEY must decode to {KEY_BYTES} bytes, got {len(master)}"
            )
    else:
        master = _hkdf(secret_key.encode("utf-8"), b"fengqiao pii master from secret key")
    enc_key = _hkdf(master, b"fengqiao pii aes-256-gcm")
    hash_key = _hkdf(master, b"fengqiao pii hmac-sha256")
    return PiiCipher(hashlib.sha256(enc_key).hexdigest()[:8], enc_key, hash_key)


def cipher_for(settings: Settings) -> PiiCipher:
    """The cipher of these settings (FENGQIAO_PII_KEY, else derived from the secret key)."""
    return _cipher(settings.pii_key, settings.secret_key)


def normalize_id_number(value: str) -> str:
    """The canonical form of a resident ID number: trimmed, upper-case check character."""
    return unicodedata.normalize("NFKC", value).strip().upper()


def normalize_phone(value: str) -> str:
    """The canonical form of a phone number: its digits, without a +86 country prefix."""
    digits = re.sub(r"\D", "", unicodedata.normalize("NFKC", value))
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    return digits


@dataclass(frozen=True)
class Protected:
    """The three stored forms of one identifier."""

    enc: str
    hash: str
    masked: str


def protect_id_number(cipher: PiiCipher, value: str) -> Protected:
    """Seal, hash and mask a resident ID number."""
    normalized = normalize_id_number(value)
    return Protected(
        cipher.encrypt(normalized),
        cipher.lookup_hash("id_number", normalized),
        mask_id_number(normalized),
    )


def protect_phone(cipher: PiiCipher, value: str) -> Protected:
    """Seal, hash and mask a phone number."""
    normalized = normalize_phone(value)
    return Protected(
        cipher.encrypt(normalized),
        cipher.lookup_hash("phone", normalized),
        mask_phone(normalized),
    )


def id_number_hash(cipher: PiiCipher, value: str) -> str:
    """The lookup hash of an ID number as typed."""
    return cipher.lookup_hash("id_number", normalize_id_number(value))


def phone_hash(cipher: PiiCipher, value: str) -> str:
    """The lookup hash of a phone number as typed."""
    return cipher.lookup_hash("phone", normalize_phone(value))


def may_reveal(actor: Actor, unit_path: str | None) -> bool:
    """Whether the actor's role allows whole ID and phone numbers on a case of this unit."""
    return actor.covers(unit_path, REVEAL_ROLES)


def record_reveal(
    uow: UnitOfWork,
    case: Case,
    actor: Actor,
    *,
    petitioner_ids: list[int],
    fields: list[str],
    now: datetime,
) -> None:
    """Audit one whole read of petitioners' personal data on the case's chain."""
    record_case_event(
        uow,
        case,
        "pii.revealed",
        actor_id=actor.user_id,
        at=now,
        detail={"petitioner_ids": petitioner_ids, "fields": fields},
    )


# -- key rotation -------------------------------------------------------------------------------

# Every table holding sealed identifiers: (model, [(field prefix, hash kind)]).
SEALED_TABLES: tuple[tuple[type[Petitioner] | type[KeyPerson], tuple[str, ...]], ...] = (
    (Petitioner, ("id_number", "phone")),
    (KeyPerson, ("id_number", "phone")),
)
ROTATION_BATCH = 500


def old_cipher(old_pii_key: str, settings: Settings) -> PiiCipher:
    """The cipher of the key being retired (empty: the one derived from the secret key)."""
    return _cipher(old_pii_key, settings.secret_key)


def key_id_of(token: str) -> str:
    """The id of the key that sealed a stored value."""
    parts = token.split(":", 2)
    if len(parts) != 3 or parts[0] != FORMAT_VERSION:
        raise PiiKeyError("not a sealed value")
    return parts[1]


def rotate_key(
    services: Services,
    old: PiiCipher,
    *,
    dry_run: bool = False,
    batch: int = ROTATION_BATCH,
) -> dict[str, int]:
    """Re-seal every stored identifier under the configured key; returns the counts.

    Values already under the new key are left alone, so a pass that stopped half-way (or a
    second run) only does what is left. A value sealed by neither key raises PiiKeyError
    naming its row; the batch it is in is rolled back, earlier batches stay done. With
    `dry_run` nothing is written. One audit event records the rotation."""
    new = cipher_for(services.settings)
    if old.key_id == new.key_id:
        raise PiiKeyError(
            f"the old and the new key are the same key ({new.key_id}): set FENGQIAO_PII_KEY "
            "to the new key and give the old one"
        )
    counts = {"rows": 0, "rotated": 0, "already_new": 0}
    for model, fields in SEALED_TABLES:
        last_id = 0
        while True:
            with services.uow() as uow:
                rows: list[Any] = list(
                    uow.session.scalars(
                        select(model)
                        .where(
                            model.id > last_id,
                            or_(*(getattr(model, f"{f}_enc").is_not(None) for f in fields)),
                        )
                        .order_by(model.id)
                        .limit(batch)
                    )
                )
                if not rows:
                    break
                for row in rows:
                    last_id = row.id
                    counts["rows"] += 1
                    for field in fields:
                        token = getattr(row, f"{field}_enc")
                        if token is None:
                            continue
                        if key_id_of(token) == new.key_id:
                            counts["already_new"] += 1
                            continue
                        try:
                            plain = old.decrypt(token)
                        except PiiKeyError as exc:
                            raise PiiKeyError(
                                f"{model.__tablename__} row {row.id}, {field}: {exc}"
                            ) from None
                        setattr(row, f"{field}_enc", new.encrypt(plain))
                        setattr(row, f"{field}_hash", new.lookup_hash(field, plain))
                        counts["rotated"] += 1
                if not dry_run:
                    uow.commit()
    if not dry_run:
        with services.uow() as uow:
            record_event(
                uow,
                "pii.key_rotated",
                actor_id=None,
                at=services.clock.now(),
                detail={"from_key": old.key_id, "to_key": new.key_id, **counts},
            )
            uow.commit()
    return counts
