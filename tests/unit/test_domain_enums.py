"""Domain enums: glossary values with zh/en labels (DOMAIN.md §1)."""

from __future__ import annotations

import pytest

from engine.domain import enums
from engine.domain.enums import ALL_ENUMS, Channel, DisputeType, Rating, Role


def test_every_member_of_every_enum_has_both_labels() -> None:
    declared = {
        obj
        for obj in vars(enums).values()
        if isinstance(obj, type) and issubclass(obj, enums.LabelledEnum)
    } - {enums.LabelledEnum}
    assert set(ALL_ENUMS) == declared
    assert len(ALL_ENUMS) == 25
    for enum_cls in ALL_ENUMS:
        for member in enum_cls:
            assert member.label("zh")
            assert member.label("en")


def test_labels_in_both_languages() -> None:
    assert Channel.visit.label("zh") == "走访"
    assert Channel.visit.label("en") == "Visit"
    assert Rating.labels("zh") == {
        "satisfied": "满意",
        "basically_satisfied": "基本满意",
        "dissatisfied": "不满意",
    }


def test_values_are_the_glossary_strings() -> None:
    assert Channel.visit == "visit"
    assert [r.value for r in Role] == [
        "admin",
        "intake",
        "handler",
        "leader",
        "supervisor",
        "reporter",
    ]
    assert len(DisputeType) == 10


def test_parse_names_allowed_values_on_error() -> None:
    assert Channel.parse("fax") is Channel.fax
    with pytest.raises(ValueError, match="visit, letter, online, phone, fax"):
        Channel.parse("email")
