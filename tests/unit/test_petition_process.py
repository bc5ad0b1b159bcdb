"""The petition BPMN files on the real runtime, and the personal-data cipher (issue 3, 9)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.clock import SettableClock
from engine.config import PROJECT_ROOT, Settings
from engine.services import pii
from engine.workflow import Definition, Snapshot, WorkflowRuntime, parse_definition
from engine.workflow.lint import lint_process

WORKFLOWS = PROJECT_ROOT / "workflows"
ROLES = ["admin", "intake", "handler", "leader", "supervisor", "reporter"]


@pytest.mark.parametrize("name", ["petition", "petition_review", "petition_supervision"])
def test_petition_processes_parse_and_lint_clean(name: str) -> None:
    definition = parse_definition((WORKFLOWS / f"{name}.bpmn").read_bytes())
    assert definition.process_id == name
    assert lint_process(definition, roles=ROLES) == []
    assert b"bpmndi:BPMNDiagram" in Path(WORKFLOWS / f"{name}.bpmn").read_bytes()


def run_to_evaluation(runtime: WorkflowRuntime, timer_at: str) -> tuple[Definition, Snapshot]:
    d = parse_definition((WORKFLOWS / "petition.bpmn").read_bytes())
    snap = runtime.start(d, {"unit_id": 2, "acceptance_due_on": "2026-03-17"})
    steps = [
        {"decision": "accept", "responsible_unit_id": 5, "reply_due_on": "2026-05-06"},
        {"findings": "x", "method": "mediation", "request_extension": False},
        {"outcome": "support", "reply_text": "t"},
        {"approve": True, "reply_returns": 0},
        {"delivered_on": "2026-03-19", "evaluation_due_on": "2026-04-03",
         "evaluation_timer_at": timer_at},
    ]  # fmt: skip
    for data in steps:
        snap = runtime.complete(d, snap.state, snap.tasks[0].id, data)
    return d, snap


def test_evaluation_timer_fires_even_when_the_clock_is_well_past_it() -> None:
    clock = SettableClock(datetime(2026, 3, 20, 2, tzinfo=UTC))
    runtime = WorkflowRuntime(clock)
    d, snap = run_to_evaluation(runtime, "2026-04-04T00:00:00+08:00")
    assert [t.bpmn_id for t in snap.tasks] == ["record_evaluation"]
    assert snap.next_timer_at == datetime(2026, 4, 3, 16, tzinfo=UTC)
    clock.set(datetime(2026, 4, 20, 2, tzinfo=UTC))  # days late, not exactly on time
    fired = runtime.fire_timers(d, snap.state)
    assert fired.status == "completed"
    assert fired.completed[-1] == "end_not_evaluated"


def test_a_window_already_past_at_delivery_closes_the_instance_at_once() -> None:
    runtime = WorkflowRuntime(SettableClock(datetime(2026, 4, 20, 2, tzinfo=UTC)))
    _d, snap = run_to_evaluation(runtime, "2026-04-04T00:00:00+08:00")
    assert snap.status == "completed"
    assert snap.tasks == ()


def test_pii_cipher_round_trips_and_binds_the_key() -> None:
    settings = Settings.from_env({}, secret_key="s1", instance_dir="/tmp")  # noqa: S108
    cipher = pii.cipher_for(settings)
    sealed = cipher.encrypt("110101199003071233")
    assert sealed.startswith(f"v1:{cipher.key_id}:")
    assert "110101199003071233" not in sealed
    assert cipher.decrypt(sealed) == "110101199003071233"
    assert cipher.encrypt("x") != cipher.encrypt("x")  # fresh nonce each time

    other = pii.cipher_for(Settings.from_env({}, secret_key="s2", instance_dir="/tmp"))  # noqa: S108
    with pytest.raises(pii.PiiKeyError):
        other.decrypt(sealed)
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(pii.PiiKeyError):
        cipher.decrypt(tampered)

    explicit = base64.b64encode(bytes(range(32))).decode()
    keyed = pii.cipher_for(Settings.from_env({}, pii_key=explicit, instance_dir="/tmp"))  # noqa: S108
    assert keyed.key_id != cipher.key_id
    with pytest.raises(pii.PiiKeyError):
        pii.cipher_for(Settings.from_env({}, pii_key="c2hvcnQ=", instance_dir="/tmp"))  # noqa: S108


def test_lookup_hashes_ignore_how_the_number_was_written() -> None:
    cipher = pii.cipher_for(Settings.from_env({}, secret_key="s1", instance_dir="/tmp"))  # noqa: S108
    assert pii.phone_hash(cipher, "+86 138-0013-8000") == pii.phone_hash(cipher, "13800138000")
    assert pii.id_number_hash(cipher, " 11010119900307123x ") == pii.id_number_hash(
        cipher, "11010119900307123X"
    )
    assert pii.phone_hash(cipher, "13800138000") != pii.id_number_hash(cipher, "13800138000")
    protected = pii.protect_phone(cipher, "138 0013 8000")
    assert protected.masked == "138****8000"
