"""Repeat-matter detection and personal identifier masking/validation."""

from __future__ import annotations

import pytest

from engine.domain.text import (
    REPEAT_SIMILARITY,
    is_repeat_matter,
    mask_id_number,
    mask_phone,
    matter_similarity,
    normalize_matter,
    valid_id_number,
    valid_phone,
)


def test_normalize_folds_full_width_case_spaces_and_punctuation() -> None:
    assert normalize_matter("ＡＢＣ　公司，拖欠“工资”！ ok.") == "abc公司拖欠工资ok"


def test_reworded_complaint_is_flagged_as_repeat() -> None:
    first = "张三反映某公司拖欠工资三个月"
    assert matter_similarity(first, "张三反映：某公司拖欠其工资3个月未付！") >= REPEAT_SIMILARITY
    assert is_repeat_matter(first, "某公司拖欠工资三个月，张三反映")
    assert matter_similarity(first, first) == 1.0


def test_different_matters_are_not_flagged() -> None:
    assert not is_repeat_matter("反映A公司拖欠工资", "反映B小区物业乱收费")
    assert not is_repeat_matter("反映甲建筑公司拖欠农民工工资", "反映乙餐馆拖欠服务员工资")


def test_empty_matter_matches_nothing() -> None:
    assert matter_similarity("", "") == 0.0
    assert matter_similarity("！！", "反映问题") == 0.0


def test_id_number_is_masked_keeping_first_and_last_four() -> None:
    assert mask_id_number("110101199003071234") == "1101**********1234"
    assert mask_id_number("1234") == "****"


def test_phone_is_masked() -> None:
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("+86 138 1234 5678") == "138****5678"
    assert mask_phone("010-62345678") == "010-****5678"


@pytest.mark.parametrize("number", ["11010519491231002X", "11010519491231002x"])
def test_valid_id_number_with_x_checksum(number: str) -> None:
    assert valid_id_number(number)


@pytest.mark.parametrize(
    "number",
    [
        "110105194912310021",  # wrong check digit
        "110105194913310027",  # month 13
        "11010519491231002",  # 17 characters
        "1101051949123100XX",
        "",
    ],
)
def test_invalid_id_numbers_are_refused(number: str) -> None:
    assert not valid_id_number(number)


@pytest.mark.parametrize(
    "phone", ["13812345678", "19912345678", "+8613812345678", "0571-87654321", "01062345678"]
)
def test_valid_phone_numbers(phone: str) -> None:
    assert valid_phone(phone)


@pytest.mark.parametrize("phone", ["12812345678", "1381234567", "87654321", "abc", ""])
def test_invalid_phone_numbers(phone: str) -> None:
    assert not valid_phone(phone)
