"""Personal data: encrypted at rest, keyed-hash lookups, masked in lists, whole reads audited."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import text

from engine.bootstrap import Services
from engine.services import pii
from engine.services.audit import verify_chains

ID_NUMBER = "11010519491231002X"
PHONE = "13812345678"


def register(client: Any, auth: Any, **over: Any) -> dict[str, Any]:
    body = {
        "channel": "visit",
        "received_on": "2026-03-02",
        "petitioners": [{"name": "张三", "id_number": ID_NUMBER, "phone": PHONE}],
        "subject": "土地补偿",
        "request": "要求补发土地补偿款",
        "category": "claim",
    }
    body.update(over)
    r = client.post("/api/v1/petitions", json=body, headers=auth("clerk"))
    assert r.status_code == 201, r.get_json()
    return r.get_json()  # type: ignore[no-any-return]


def raw_petitioner_rows(services: Services) -> list[dict[str, Any]]:
    with services.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text("SELECT * FROM petitioners"))]


def test_id_and_phone_are_encrypted_at_rest(client: Any, auth: Any, services: Services) -> None:
    register(client, auth)
    rows = raw_petitioner_rows(services)
    assert rows
    for row in rows:
        dump = repr(row)
        assert ID_NUMBER not in dump and PHONE not in dump
        assert ID_NUMBER[:6] + "19491231" not in dump  # not even the birth-date digits
        assert row["id_number_enc"].startswith("v1:") and row["phone_enc"].startswith("v1:")
        cipher = pii.cipher_for(services.settings)
        assert cipher.decrypt(row["id_number_enc"]) == ID_NUMBER
        assert cipher.decrypt(row["phone_enc"]) == PHONE


def test_same_value_encrypts_differently_but_hashes_the_same(services: Services) -> None:
    cipher = pii.cipher_for(services.settings)
    a, b = (
        pii.protect_id_number(cipher, ID_NUMBER),
        pii.protect_id_number(cipher, ID_NUMBER.lower()),
    )
    assert a.enc != b.enc  # random nonce: equal values are not linkable from ciphertexts
    assert a.hash == b.hash == pii.id_number_hash(cipher, f" {ID_NUMBER} ")
    assert pii.phone_hash(cipher, "+86 138-1234-5678") == pii.protect_phone(cipher, PHONE).hash


def test_a_value_sealed_with_another_key_or_altered_is_refused(services: Services) -> None:
    cipher = pii.cipher_for(services.settings)
    sealed = cipher.encrypt(ID_NUMBER)
    other = pii.cipher_for(replace(services.settings, pii_key=base64.b64encode(b"k" * 32).decode()))
    assert other.key_id != cipher.key_id
    with pytest.raises(pii.PiiKeyError):
        other.decrypt(sealed)
    version, key_id, body = sealed.split(":", 2)
    raw = bytearray(base64.b64decode(body))
    raw[-1] ^= 1
    with pytest.raises(pii.PiiKeyError):
        cipher.decrypt(f"{version}:{key_id}:{base64.b64encode(bytes(raw)).decode()}")
    # The hash key differs with the key too: a leaked hash column is useless without the key.
    assert other.lookup_hash("id_number", ID_NUMBER) != cipher.lookup_hash("id_number", ID_NUMBER)


def test_bad_pii_key_is_refused(services: Services) -> None:
    with pytest.raises(pii.PiiKeyError):
        pii.cipher_for(replace(services.settings, pii_key=base64.b64encode(b"short").decode()))


def test_repeat_check_finds_the_person_by_keyed_hash(
    client: Any, auth: Any, services: Services
) -> None:
    first = register(client, auth)
    r = client.get(
        "/api/v1/petitions/repeat-check",
        query_string={"id_number": ID_NUMBER.lower(), "matter": "土地补偿款"},
        headers=auth("clerk"),
    )
    assert r.status_code == 200, r.get_json()
    assert first["id"] in [
        item.get("petition_id", item.get("id")) for item in r.get_json()["items"]
    ]


def test_lists_and_plain_reads_show_masks_only(client: Any, auth: Any, services: Services) -> None:
    created = register(client, auth)
    for who in ("clerk", "handler", "leader", "supervisor"):
        listing = client.get("/api/v1/petitions", headers=auth(who))
        assert listing.status_code == 200
        body = listing.get_data(as_text=True)
        assert ID_NUMBER not in body and PHONE not in body
        detail = client.get(f"/api/v1/petitions/{created['id']}", headers=auth(who))
        if detail.status_code == 200:
            person = detail.get_json()["petitioners"][0]
            assert person["id_number"] != ID_NUMBER and "*" in person["id_number"]
            assert person["phone"] != PHONE and "*" in person["phone"]


def test_whole_read_only_for_revealing_roles_and_audited(
    client: Any, auth: Any, services: Services
) -> None:
    created = register(client, auth)
    url = f"/api/v1/petitions/{created['id']}?reveal=true"
    whole = client.get(url, headers=auth("clerk"))
    assert whole.status_code == 200
    assert whole.get_json()["petitioners"][0]["id_number"] == ID_NUMBER
    with services.engine.connect() as conn:
        events = conn.execute(
            text(
                "SELECT action, actor_id FROM audit_events "
                "WHERE case_id = :case_id AND action = 'pii.revealed'"
            ),
            {"case_id": created["case_id"]},
        ).all()
    assert len(events) == 1
    # A handler asking for the whole value is refused or shown the mask, never the number.
    handler = client.get(url, headers=auth("handler"))
    assert ID_NUMBER not in handler.get_data(as_text=True)
    assert handler.status_code in {200, 403}
    # Out of scope: the petition does not exist for a village handler.
    assert client.get(url, headers=auth("handler_v01")).status_code == 404
    with services.uow() as uow:
        assert verify_chains(uow) == []
