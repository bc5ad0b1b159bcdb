"""BPMN element names written as '中文 English' show in the page language."""

from __future__ import annotations

from typing import Any

from web.pages import element_name


def test_bilingual_names_follow_the_page_language(app: Any) -> None:
    with app.test_request_context("/tasks?lang=zh-CN"):
        assert element_name("办理 Handle") == "办理"
        assert element_name("组建专班 Form the special team") == "组建专班"
        assert element_name("上报排查结果") == "上报排查结果"
    with app.test_request_context("/tasks?lang=en"):
        assert element_name("办理 Handle") == "Handle"
        assert element_name("复查/复核意见 Decide review") == "Decide review"
        assert element_name("Review 审核") == "Review 审核"  # not in our convention: unchanged
        assert element_name("上报排查结果") == "上报排查结果"
