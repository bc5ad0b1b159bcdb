"""Rendering of the notification templates in zh-CN and en."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest

from notifications.message import PermanentError
from notifications.templates import REQUIRED_PARAMS, SHORT_MAX, TEMPLATES, render

BASE_URL = "https://fq.example.cn"

SAMPLE_PARAMS: dict[str, dict[str, Any]] = {
    "task_available": {
        "task_name": "受理告知",
        "case_no": "XF2026-000123",
        "due_on": date(2026, 10, 8),
        "url": "/tasks/41",
    },
    "task_assigned": {
        "task_name": "调查核实",
        "case_no": "XF2026-000123",
        "due_on": "2026-10-08",
        "url": "/tasks/42",
    },
    "warning_yellow": {
        "case_no": "XF2026-000123",
        "deadline_label": "办理答复",
        "due_on": date(2026, 10, 8),
        "days_left": 3,
        "url": "/cases/7",
    },
    "warning_red": {
        "case_no": "XF2026-000123",
        "deadline_label": "办理答复",
        "due_on": date(2026, 10, 8),
        "days_over": 2,
        "url": "/cases/7",
    },
    "supervision_notice": {
        "case_no": "XF2026-000123",
        "method_label": "电话督办",
        "notes": "请于本周内书面答复信访人。",
        "supervisor": "区信访局张科长",
        "url": "/cases/7",
    },
    "screening_opened": {
        "unit_name": "桥东村",
        "month": "2026-10",
        "due_on": date(2026, 10, 25),
        "url": "/screening/3",
    },
    "screening_due_soon": {
        "unit_name": "桥东村",
        "month": "2026-10",
        "due_on": date(2026, 10, 25),
        "days_left": 1,
        "url": "/screening/3",
    },
    "screening_overdue": {
        "unit_name": "桥东村",
        "month": "2026-10",
        "due_on": date(2026, 10, 25),
        "url": "/screening/3",
    },
    "contact_due": {"person_name": "王某某", "due_on": date(2026, 10, 8), "url": "/persons/9"},
    "contact_missed": {"person_name": "王某某", "due_on": date(2026, 10, 8), "url": "/persons/9"},
    "contact_urgent": {
        "person_name": "王某某",
        "situation": "扬言近日赴京上访，已购买车票。",
        "reporter": "网格员李明",
        "url": "/persons/9",
    },
    "daily_digest": {
        "display_name": "陈主任",
        "date": date(2026, 10, 8),
        "due_today": [
            {"case_no": "XF2026-000123", "task_name": "受理告知", "due_on": date(2026, 10, 8)},
            {"case_no": "XF2026-000130", "task_name": "调查核实", "due_on": "2026-10-08"},
        ],
        "overdue": [
            {"case_no": "XF2026-000101", "task_name": "办理答复", "due_on": date(2026, 10, 1)}
        ],
        "url": "/my/tasks",
    },
    "reply_delivered_sms": {
        "case_no": "XF2026-000123",
        "query_code": "7K3M9Q2D",
        "evaluation_url": "https://fq.gov.cn/e/7K3M9Q2D",
    },
}

CJK = re.compile(r"[\u4e00-\u9fff]")
LEFTOVER_PLACEHOLDER = re.compile(r"\{[a-z_]+\}")


def test_every_template_has_sample_params_and_both_languages() -> None:
    assert set(SAMPLE_PARAMS) == set(TEMPLATES) == set(REQUIRED_PARAMS)
    for key, by_language in TEMPLATES.items():
        assert set(by_language) == {"zh-CN", "en"}, key


@pytest.mark.parametrize("language", ["zh-CN", "en"])
@pytest.mark.parametrize("template", sorted(SAMPLE_PARAMS))
def test_every_template_renders_in_both_languages(template: str, language: str) -> None:
    rendered = render(template, SAMPLE_PARAMS[template], language, base_url=BASE_URL)

    for text in (rendered.subject, rendered.body, rendered.short):
        assert text.strip()
        assert not LEFTOVER_PLACEHOLDER.search(text), text
    assert "\n" not in rendered.subject
    assert len(rendered.short) <= SHORT_MAX
    assert rendered.link is not None
    assert rendered.link.startswith("https://")
    if language == "zh-CN":
        assert rendered.subject.startswith("【枫桥】")
        assert rendered.short.startswith("【枫桥】")
    else:
        assert "Fengqiao" in rendered.subject
        # English wording: outside the (Chinese) sample values, no Chinese text.
        assert not CJK.search(_strip_values(rendered.body, SAMPLE_PARAMS[template]))


def _strip_values(text: str, params: dict[str, Any]) -> str:
    for value in params.values():
        if isinstance(value, list):
            for item in value:
                for field in item.values():
                    text = text.replace(str(field), "")
        else:
            text = text.replace(str(value), "")
    return text


def test_task_assigned_reads_like_an_office_notice_with_its_due_date() -> None:
    rendered = render("task_assigned", SAMPLE_PARAMS["task_assigned"], "zh-CN", BASE_URL)

    assert rendered.subject == "【枫桥】您有一件待办：调查核实（XF2026-000123）"
    assert "请于 2026-10-08 前处理。" in rendered.body
    assert (
        rendered.short
        == "【枫桥】您有一件待办：调查核实（XF2026-000123），请于 2026-10-08 前处理。"
    )
    assert rendered.link == "https://fq.example.cn/tasks/42"
    assert "https://fq.example.cn/tasks/42" in rendered.body


def test_task_without_due_date_asks_for_prompt_handling() -> None:
    params = {k: v for k, v in SAMPLE_PARAMS["task_available"].items() if k != "due_on"}

    zh = render("task_available", params, "zh-CN")
    en = render("task_available", params, "en")

    assert "请及时处理。" in zh.body
    assert "Please deal with it promptly." in en.body
    assert "Due" not in en.short


def test_english_counts_days_in_singular_and_plural() -> None:
    one = render("screening_due_soon", SAMPLE_PARAMS["screening_due_soon"], "en")
    three = render("warning_yellow", SAMPLE_PARAMS["warning_yellow"], "en")

    assert "1 day from now" in one.body
    assert "3 days from now" in three.body


def test_month_is_written_the_way_each_language_writes_it() -> None:
    zh = render("screening_opened", SAMPLE_PARAMS["screening_opened"], "zh-CN")
    en = render("screening_opened", SAMPLE_PARAMS["screening_opened"], "en")

    assert zh.subject == "【枫桥】2026年10月矛盾纠纷排查已开始"
    assert "零报告" in zh.body
    assert en.subject == "[Fengqiao] Dispute screening for October 2026 has started"


def test_daily_digest_lists_each_task_on_its_own_line() -> None:
    rendered = render("daily_digest", SAMPLE_PARAMS["daily_digest"], "zh-CN", BASE_URL)

    lines = rendered.body.splitlines()
    assert "今日到期（2 件）：" in lines
    assert "已逾期（1 件）：" in lines
    assert "  · XF2026-000123　受理告知（2026-10-08 到期）" in lines
    assert "  · XF2026-000101　办理答复（2026-10-01 到期）" in lines
    assert "今日到期 2 件，已逾期 1 件" in rendered.subject


def test_daily_digest_with_nothing_overdue_says_none() -> None:
    params = {**SAMPLE_PARAMS["daily_digest"], "overdue": []}

    en = render("daily_digest", params, "en")

    assert "Overdue (0):\n  (none)" in en.body


def test_daily_digest_entry_without_a_case_number_is_permanent() -> None:
    params = {**SAMPLE_PARAMS["daily_digest"], "overdue": [{"task_name": "x", "due_on": "d"}]}

    with pytest.raises(PermanentError, match="case_no"):
        render("daily_digest", params, "zh-CN")


def test_reply_sms_to_the_petitioner_fits_one_segment_with_code_and_link() -> None:
    rendered = render("reply_delivered_sms", SAMPLE_PARAMS["reply_delivered_sms"], "zh-CN")

    assert len(rendered.short) <= 70
    assert rendered.short.startswith("【枫桥】")
    assert "XF2026-000123" in rendered.short
    assert "7K3M9Q2D" in rendered.short
    assert rendered.short.endswith("https://fq.gov.cn/e/7K3M9Q2D")
    assert rendered.link == "https://fq.gov.cn/e/7K3M9Q2D"


def test_reply_sms_drops_the_case_number_before_cutting_a_long_link() -> None:
    params = {
        **SAMPLE_PARAMS["reply_delivered_sms"],
        "evaluation_url": "https://xf.example.gov.cn/eval/7K3M9Q2D",
    }

    rendered = render("reply_delivered_sms", params, "zh-CN")

    assert len(rendered.short) <= 70
    assert rendered.short.endswith("https://xf.example.gov.cn/eval/7K3M9Q2D")


def test_reply_sms_without_room_for_the_link_keeps_the_query_code() -> None:
    params = {
        **SAMPLE_PARAMS["reply_delivered_sms"],
        "evaluation_url": "https://xinfang.example.gov.cn/petitions/evaluation/7K3M9Q2D",
    }

    rendered = render("reply_delivered_sms", params, "zh-CN")

    assert len(rendered.short) <= 70
    assert "7K3M9Q2D" in rendered.short
    assert "…" not in rendered.short


def test_overlong_short_text_is_cut_to_one_segment() -> None:
    params = {**SAMPLE_PARAMS["contact_due"], "person_name": "某" * 80}

    rendered = render("contact_due", params, "zh-CN")

    assert len(rendered.short) == SHORT_MAX
    assert rendered.short.endswith("…")


@pytest.mark.parametrize(
    ("template", "param"),
    [(t, p) for t, names in sorted(REQUIRED_PARAMS.items()) for p in names],
)
def test_missing_param_is_a_permanent_error(template: str, param: str) -> None:
    params = {k: v for k, v in SAMPLE_PARAMS[template].items() if k != param}

    with pytest.raises(PermanentError, match=param):
        render(template, params, "zh-CN")


def test_unknown_template_is_a_permanent_error() -> None:
    with pytest.raises(PermanentError, match="unknown template"):
        render("no_such_template", {}, "zh-CN")


def test_unknown_language_falls_back_to_chinese() -> None:
    rendered = render("contact_due", SAMPLE_PARAMS["contact_due"], "fr")

    assert rendered.subject == "【枫桥】重点人员联系提醒：王某某"


def test_braces_in_user_text_are_shown_not_interpreted() -> None:
    params = {**SAMPLE_PARAMS["supervision_notice"], "notes": "见附件{0}与{url}及{__class__}"}

    rendered = render("supervision_notice", params, "zh-CN")

    assert "督办意见：见附件{0}与{url}及{__class__}" in rendered.body


def test_absolute_links_are_left_alone_and_relative_ones_kept_without_base_url() -> None:
    absolute = {**SAMPLE_PARAMS["contact_due"], "url": "https://other.example/x"}

    assert render("contact_due", absolute, "en", BASE_URL).link == "https://other.example/x"
    assert render("contact_due", SAMPLE_PARAMS["contact_due"], "en").link == "/persons/9"


def test_newline_in_a_param_does_not_break_the_subject() -> None:
    params = {**SAMPLE_PARAMS["task_assigned"], "task_name": "调查\n核实"}

    rendered = render("task_assigned", params, "zh-CN")

    assert "\n" not in rendered.subject
