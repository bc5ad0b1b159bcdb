"""Rotating the PII key: every sealed value moves to the new key, lookups and re-imports still
work, a second run has nothing to do, a dry run changes nothing, a foreign value stops it."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, text

from engine.bootstrap import Services, build_services
from engine.persistence.models import AuditEvent, Petition
from engine.services import pii
from engine.services.petition_import import import_petitions, rekey_imports
from tests.security.test_pii import ID_NUMBER, PHONE, raw_petitioner_rows, register
from tests.service.petition_support import actor
from tests.service.test_petition_import import CLOSED, ledger

NEW_KEY = base64.b64encode(b"n" * 32).decode()


def rotated_services(services: Services) -> Services:
    """The same database, as a process started with FENGQIAO_PII_KEY set to the new key."""
    return build_services(replace(services.settings, pii_key=NEW_KEY), services.clock, deploy=False)


def key_ids(services: Services) -> set[str]:
    return {
        pii.key_id_of(row[column])
        for row in raw_petitioner_rows(services)
        for column in ("id_number_enc", "phone_enc")
        if row[column]
    }


def test_rotation_reseals_every_value_and_keeps_lookups_and_imports_working(
    client: Any, auth: Any, services: Services
) -> None:
    first = register(client, auth)
    ledger_file = ledger([CLOSED])
    assert (
        import_petitions(services, actor(services, "admin"), ledger_file, "a.xlsx").count(
            "imported"
        )
        == 1
    )
    old = pii.cipher_for(services.settings)
    assert key_ids(services) == {old.key_id}

    rotated = rotated_services(services)
    try:
        new = pii.cipher_for(rotated.settings)
        before = raw_petitioner_rows(services)
        dry = pii.rotate_key(rotated, old, dry_run=True)
        assert dry == {"rows": 2, "rotated": 4, "already_new": 0}
        assert raw_petitioner_rows(services) == before  # the dry run wrote nothing

        counts = pii.rotate_key(rotated, old)
        assert counts == {"rows": 2, "rotated": 4, "already_new": 0}
        assert rekey_imports(rotated, old) == {"imports": 1, "rekeyed": 1}
        assert key_ids(services) == {new.key_id}
        rows = {r["name"]: r for r in raw_petitioner_rows(services)}
        assert new.decrypt(rows["张三"]["id_number_enc"]) == ID_NUMBER
        assert new.decrypt(rows["张三"]["phone_enc"]) == PHONE
        assert rows["张三"]["id_number_hash"] == pii.id_number_hash(new, ID_NUMBER)
        with pytest.raises(pii.PiiKeyError):
            old.decrypt(rows["张三"]["id_number_enc"])

        # A second run finds nothing left to do.
        assert pii.rotate_key(rotated, old) == {"rows": 2, "rotated": 0, "already_new": 4}
        assert rekey_imports(rotated, old) == {"imports": 1, "rekeyed": 0}

        # The repeat check finds the person by the hash under the new key.
        from web.app import create_app

        new_client = create_app(services=rotated).test_client()
        token = new_client.post(
            "/api/v1/auth/token", json={"username": "clerk", "password": "demo1234"}
        ).get_json()["access_token"]
        found = new_client.get(
            "/api/v1/petitions/repeat-check",
            query_string={"id_number": ID_NUMBER, "matter": "土地补偿款"},
            headers={"Authorization": f"Bearer {token}"},
        ).get_json()
        assert first["id"] in [i.get("petition_id", i.get("id")) for i in found["items"]]

        # Re-importing the ledger under the new key recognises the row: nothing added.
        with rotated.uow() as uow:
            petitions_before = uow.session.scalar(select(func.count()).select_from(Petition))
        again = import_petitions(rotated, actor(rotated, "admin"), ledger_file, "a-copy.xlsx")
        assert again.count("imported") == 0 and again.count("skipped") == 1
        with rotated.uow() as uow:
            assert uow.session.scalar(select(func.count()).select_from(Petition)) == (
                petitions_before
            )
            to_keys = [
                e.detail["to_key"]
                for e in uow.session.scalars(
                    select(AuditEvent).where(AuditEvent.action == "pii.key_rotated")
                )
            ]
        # One event per real run (the dry run records none).
        assert to_keys == [new.key_id, new.key_id]
    finally:
        rotated.engine.dispose()


def test_a_value_under_a_third_key_stops_the_rotation_and_names_its_row(
    client: Any, auth: Any, services: Services
) -> None:
    register(client, auth)
    stranger = pii.cipher_for(
        replace(services.settings, pii_key=base64.b64encode(b"s" * 32).decode())
    )
    with services.engine.begin() as conn:
        conn.execute(text("UPDATE petitioners SET phone_enc = :v"), {"v": stranger.encrypt(PHONE)})
    before = raw_petitioner_rows(services)
    rotated = rotated_services(services)
    try:
        with pytest.raises(pii.PiiKeyError, match=r"petitioners row \d+, phone"):
            pii.rotate_key(rotated, pii.cipher_for(services.settings))
        assert raw_petitioner_rows(services) == before  # the failed batch was rolled back
        with pytest.raises(pii.PiiKeyError, match="same key"):
            pii.rotate_key(rotated, pii.cipher_for(rotated.settings))
    finally:
        rotated.engine.dispose()


def test_the_command_line_rotates_with_the_old_key_from_the_environment(
    client: Any, auth: Any, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    from web.cli import main

    register(client, auth)
    old = pii.cipher_for(services.settings)
    env = {
        "FENGQIAO_DATABASE_URL": services.settings.database_url,
        "FENGQIAO_INSTANCE_DIR": services.settings.instance_dir,
        "FENGQIAO_SECRET_KEY": services.settings.secret_key,
        "FENGQIAO_PII_KEY": NEW_KEY,
        "FENGQIAO_PII_OLD_KEY": services.settings.pii_key,
    }
    runner = CliRunner()
    dry = runner.invoke(main, ["pii", "rotate", "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    assert "would re-encrypt 2 values in 1 rows" in dry.output
    assert key_ids(services) == {old.key_id}
    done = runner.invoke(main, ["pii", "rotate"], env=env)
    assert done.exit_code == 0, done.output
    assert f"key {old.key_id} -> " in done.output and "re-encrypted 2 values" in done.output
    assert key_ids(services) == {pii.cipher_for(replace(services.settings, pii_key=NEW_KEY)).key_id}
    # Running it with the new key as the old one is refused with a clear message.
    same = runner.invoke(main, ["pii", "rotate"], env={**env, "FENGQIAO_PII_OLD_KEY": NEW_KEY})
    assert same.exit_code != 0 and "same key" in same.output
