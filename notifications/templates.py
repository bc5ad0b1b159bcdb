"""Message templates in zh-CN and en, kept as data, and `render()`.

Each template is (subject, body, short[, short fallbacks]) written with str.format named
placeholders. `body` is plain text for mail, webhooks and group robots; `short` is the SMS
text and must fit one SMS segment of Chinese (70 characters), so a template may list
shorter fallbacks tried in order before the text is cut.

Besides the caller's params a template may use a few values `render()` derives:
``due_sentence``/``due_short`` (from the optional ``due_on``), ``days_left_en``/
``days_over_en`` ("1 day", "3 days"), ``due_today_lines``/``overdue_lines`` and their
``*_count`` (from the daily digest's lists). ``month`` given as ``YYYY-MM`` (or a date) is
shown as 2026年10月 / October 2026.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, Final, NamedTuple

from notifications.message import DEFAULT_LANGUAGE, PermanentError, Rendered

SHORT_MAX: Final = 70  # one SMS segment of Chinese (UCS-2) text


class Template(NamedTuple):
    """One template in one language."""

    subject: str
    body: str
    short: str
    short_fallbacks: tuple[str, ...] = ()


# Params each template needs from the caller; `render()` rejects a message without them.
REQUIRED_PARAMS: Final[Mapping[str, tuple[str, ...]]] = {
    "task_available": ("task_name", "case_no", "url"),
    "task_assigned": ("task_name", "case_no", "url"),
    "warning_yellow": ("case_no", "deadline_label", "due_on", "days_left", "url"),
    "warning_red": ("case_no", "deadline_label", "due_on", "days_over", "url"),
    "supervision_notice": ("case_no", "method_label", "notes", "supervisor", "url"),
    "screening_opened": ("unit_name", "month", "due_on", "url"),
    "screening_due_soon": ("unit_name", "month", "due_on", "days_left", "url"),
    "screening_overdue": ("unit_name", "month", "due_on", "url"),
    "contact_due": ("person_name", "due_on", "url"),
    "contact_missed": ("person_name", "due_on", "url"),
    "contact_urgent": ("person_name", "situation", "reporter", "url"),
    "daily_digest": ("display_name", "date", "due_today", "overdue", "url"),
    "reply_delivered_sms": ("case_no", "query_code", "evaluation_url"),
}

# Params that are URLs, made absolute with `base_url`; and which of them is the link.
_URL_PARAMS: Final = ("url", "evaluation_url")
_LINK_PARAM: Final[Mapping[str, str]] = {"reply_delivered_sms": "evaluation_url"}

TEMPLATES: Final[Mapping[str, Mapping[str, Template]]] = {
    "task_available": {
        "zh-CN": Template(
            "【枫桥】待认领任务：{task_name}（{case_no}）",
            "您好：\n\n案件 {case_no} 有一项待办任务「{task_name}」，您所在岗位可认领办理。"
            "{due_sentence}\n\n办理入口：{url}",
            "【枫桥】有一件待办可认领：{task_name}（{case_no}），{due_short}",
        ),
        "en": Template(
            "[Fengqiao] Task to claim: {task_name} ({case_no})",
            'Hello,\n\nCase {case_no} has a task, "{task_name}", waiting for someone in '
            "your role to claim it. {due_sentence}\n\nOpen it here: {url}",
            "[Fengqiao] Task to claim: {task_name} ({case_no}).{due_short}",
        ),
    },
    "task_assigned": {
        "zh-CN": Template(
            "【枫桥】您有一件待办：{task_name}（{case_no}）",
            "您好：\n\n案件 {case_no} 的「{task_name}」已交由您办理。{due_sentence}"
            "\n\n办理入口：{url}",
            "【枫桥】您有一件待办：{task_name}（{case_no}），{due_short}",
        ),
        "en": Template(
            "[Fengqiao] New task for you: {task_name} ({case_no})",
            'Hello,\n\nThe task "{task_name}" on case {case_no} has been assigned to you. '
            "{due_sentence}\n\nOpen it here: {url}",
            "[Fengqiao] New task: {task_name} ({case_no}).{due_short}",
        ),
    },
    "warning_yellow": {
        "zh-CN": Template(
            "【枫桥】黄牌预警：{case_no} {deadline_label}将于 {due_on} 到期",
            "您好：\n\n案件 {case_no} 的{deadline_label}期限为 {due_on}，"
            "距到期还有 {days_left} 天，现予黄牌预警。请抓紧办理，确保按期办结。"
            "\n\n查看案件：{url}",
            "【枫桥】黄牌预警：{case_no} {deadline_label}还有{days_left}天到期（{due_on}），"
            "请抓紧办理。",
            ("【枫桥】黄牌预警：案件{case_no}还有{days_left}天到期（{due_on}），请抓紧办理。",),
        ),
        "en": Template(
            "[Fengqiao] Yellow card: {deadline_label} for {case_no} due on {due_on}",
            "Hello,\n\nThe {deadline_label} deadline for case {case_no} is {due_on}, "
            "{days_left_en} from now, and a yellow card has been raised. Please make sure "
            "the case is dealt with in time.\n\nView the case: {url}",
            "[Fengqiao] Yellow card: {case_no} {deadline_label} due {due_on} "
            "({days_left_en} left).",
            ("[Fengqiao] Yellow card: {case_no} due {due_on} ({days_left_en} left).",),
        ),
    },
    "warning_red": {
        "zh-CN": Template(
            "【枫桥】红牌警示：{case_no} {deadline_label}已逾期 {days_over} 天",
            "您好：\n\n案件 {case_no} 的{deadline_label}期限为 {due_on}，现已逾期 {days_over} 天，"
            "现予红牌警示。请立即办理，并说明逾期原因。\n\n查看案件：{url}",
            "【枫桥】红牌警示：{case_no} {deadline_label}已逾期{days_over}天（{due_on}到期），"
            "请立即办理。",
            ("【枫桥】红牌警示：案件{case_no}已逾期{days_over}天，请立即办理。",),
        ),
        "en": Template(
            "[Fengqiao] Red card: {deadline_label} for {case_no} is {days_over_en} overdue",
            "Hello,\n\nThe {deadline_label} deadline for case {case_no} was {due_on}. It is "
            "now {days_over_en} overdue and a red card has been raised. Please act on it "
            "immediately and record the reason for the delay.\n\nView the case: {url}",
            "[Fengqiao] Red card: {case_no} {deadline_label} {days_over_en} overdue. Act now.",
            ("[Fengqiao] Red card: {case_no} is {days_over_en} overdue. Act now.",),
        ),
    },
    "supervision_notice": {
        "zh-CN": Template(
            "【枫桥】督办通知：案件 {case_no}",
            "您好：\n\n{supervisor}已对案件 {case_no} 进行督办，督办方式：{method_label}。\n"
            "督办意见：{notes}\n\n请按督办意见抓紧办理，并及时反馈办理情况。\n\n查看案件：{url}",
            "【枫桥】督办通知：案件{case_no}已被督办（{method_label}），请抓紧办理并反馈。",
        ),
        "en": Template(
            "[Fengqiao] Supervision notice: case {case_no}",
            "Hello,\n\n{supervisor} has placed case {case_no} under supervision "
            "({method_label}).\nInstructions: {notes}\n\nPlease act on the instructions "
            "promptly and report back on progress.\n\nView the case: {url}",
            "[Fengqiao] Case {case_no} is under supervision ({method_label}). Please act.",
        ),
    },
    "screening_opened": {
        "zh-CN": Template(
            "【枫桥】{month}矛盾纠纷排查已开始",
            "{unit_name}：\n\n{month}矛盾纠纷排查工作已开始。请组织开展排查，并于 {due_on} 前"
            "在系统中报送排查结果；未排查出矛盾纠纷的，请报送零报告。\n\n报送入口：{url}",
            "【枫桥】{month}矛盾纠纷排查已开始，请于{due_on}前报送（无纠纷报零报告）。",
        ),
        "en": Template(
            "[Fengqiao] Dispute screening for {month} has started",
            "{unit_name}:\n\nThe dispute screening for {month} has started. Please carry "
            "out the screening and submit your results in the system by {due_on}. If no "
            "disputes are found, submit a zero report.\n\nSubmit here: {url}",
            "[Fengqiao] {month} dispute screening open: report by {due_on}.",
        ),
    },
    "screening_due_soon": {
        "zh-CN": Template(
            "【枫桥】{month}矛盾纠纷排查将于 {due_on} 截止报送",
            "{unit_name}：\n\n{month}矛盾纠纷排查报送截止日期为 {due_on}，还有 {days_left} 天，"
            "贵单位尚未报送。请抓紧完成排查并报送结果；未排查出矛盾纠纷的，请报送零报告。"
            "\n\n报送入口：{url}",
            "【枫桥】{unit_name}{month}排查尚未报送，{due_on}截止，还有{days_left}天。",
            ("【枫桥】{month}矛盾纠纷排查尚未报送，{due_on}截止，还有{days_left}天。",),
        ),
        "en": Template(
            "[Fengqiao] Dispute screening for {month} closes on {due_on}",
            "{unit_name}:\n\nYour unit has not yet submitted its dispute screening report "
            "for {month}. The deadline is {due_on}, {days_left_en} from now. Please finish "
            "the screening and submit the results (a zero report if no disputes were "
            "found).\n\nSubmit here: {url}",
            "[Fengqiao] {month} screening report due {due_on} ({days_left_en} left).",
        ),
    },
    "screening_overdue": {
        "zh-CN": Template(
            "【枫桥】{month}矛盾纠纷排查逾期未报",
            "{unit_name}：\n\n{month}矛盾纠纷排查已于 {due_on} 截止报送，贵单位至今未报送，"
            "已记为逾期。请立即补报排查结果；未排查出矛盾纠纷的，请报送零报告。\n\n报送入口：{url}",
            "【枫桥】{unit_name}{month}排查逾期未报（{due_on}截止），请立即补报。",
            ("【枫桥】{month}矛盾纠纷排查逾期未报（{due_on}截止），请立即补报。",),
        ),
        "en": Template(
            "[Fengqiao] Dispute screening report for {month} is overdue",
            "{unit_name}:\n\nThe dispute screening report for {month} was due on {due_on} "
            "and your unit has not submitted it; it is now recorded as overdue. Please "
            "submit it immediately (a zero report if no disputes were found).\n\n"
            "Submit here: {url}",
            "[Fengqiao] {month} screening report overdue (due {due_on}).",
        ),
    },
    "contact_due": {
        "zh-CN": Template(
            "【枫桥】重点人员联系提醒：{person_name}",
            "您好：\n\n按照稳控工作安排，请于 {due_on} 前联系重点人员{person_name}，"
            "了解其近况和诉求，并在系统中登记联系情况。\n\n登记入口：{url}",
            "【枫桥】请于{due_on}前联系重点人员{person_name}，并登记联系情况。",
        ),
        "en": Template(
            "[Fengqiao] Contact due: {person_name}",
            "Hello,\n\nUnder the stabilization plan, please contact the key person "
            "{person_name} by {due_on} to learn about their current situation and demands, "
            "and record the contact in the system.\n\nRecord it here: {url}",
            "[Fengqiao] Please contact {person_name} by {due_on} and record it.",
        ),
    },
    "contact_missed": {
        "zh-CN": Template(
            "【枫桥】重点人员联系逾期：{person_name}",
            "您好：\n\n重点人员{person_name}应于 {due_on} 前联系，至今未登记联系情况。"
            "请立即联系并补登记；确实无法取得联系的，请及时向包案领导报告。\n\n登记入口：{url}",
            "【枫桥】重点人员{person_name}应于{due_on}前联系，现已逾期，请立即联系并登记。",
        ),
        "en": Template(
            "[Fengqiao] Contact overdue: {person_name}",
            "Hello,\n\nThe key person {person_name} was due to be contacted by {due_on}, "
            "but no contact has been recorded. Please make contact now and record it; if "
            "they cannot be reached, report this to the lead leader without delay.\n\n"
            "Record it here: {url}",
            "[Fengqiao] Contact with {person_name} overdue (due {due_on}). Act now.",
        ),
    },
    "contact_urgent": {
        "zh-CN": Template(
            "【枫桥】紧急：重点人员{person_name}出现异常情况",
            "紧急情况报告：\n\n据{reporter}报告，重点人员{person_name}出现以下情况：\n{situation}"
            "\n\n请立即核实，按预案稳妥处置，并在系统中及时反馈处置情况。\n\n查看详情：{url}",
            "【枫桥】紧急：重点人员{person_name}出现异常情况（{reporter}报告），请立即核实处置。",
            ("【枫桥】紧急：重点人员{person_name}出现异常情况，请立即核实处置。",),
        ),
        "en": Template(
            "[Fengqiao] URGENT: situation reported for {person_name}",
            "Urgent report:\n\n{reporter} reports the following about the key person "
            "{person_name}:\n{situation}\n\nPlease verify at once, respond according to the "
            "contingency plan, and record the response in the system.\n\nView details: {url}",
            "[Fengqiao] URGENT: situation reported for {person_name}. Act now.",
        ),
    },
    "daily_digest": {
        "zh-CN": Template(
            "【枫桥】{date} 待办日报：今日到期 {due_today_count} 件，已逾期 {overdue_count} 件",
            "{display_name}，您好：\n\n截至 {date}，您的待办情况如下。\n\n"
            "今日到期（{due_today_count} 件）：\n{due_today_lines}\n\n"
            "已逾期（{overdue_count} 件）：\n{overdue_lines}\n\n请及时登录系统办理。工作台：{url}",
            "【枫桥】您今日到期待办{due_today_count}件，已逾期{overdue_count}件，请及时登录系统办理。",
        ),
        "en": Template(
            "[Fengqiao] Daily summary for {date}: {due_today_count} due today, "
            "{overdue_count} overdue",
            "Hello {display_name},\n\nHere are your tasks as of {date}.\n\n"
            "Due today ({due_today_count}):\n{due_today_lines}\n\n"
            "Overdue ({overdue_count}):\n{overdue_lines}\n\nOpen your workbench: {url}",
            "[Fengqiao] {due_today_count} due today, {overdue_count} overdue. Please log in.",
        ),
    },
    "reply_delivered_sms": {
        "zh-CN": Template(
            "【枫桥】您的信访事项处理意见已送达",
            "您好！您的信访事项（编号：{case_no}）处理意见书已送达。您可凭查询码 {query_code} "
            "查询办理情况，并欢迎对我们的办理工作作出评价：{evaluation_url}\n感谢您的理解和支持！",
            "【枫桥】您的信访件{case_no}已答复，查询码{query_code}，评价：{evaluation_url}",
            (
                "【枫桥】您的信访件已答复，查询码{query_code}，评价：{evaluation_url}",
                "【枫桥】您的信访件{case_no}已答复，查询码{query_code}，可凭码查询并评价。",
            ),
        ),
        "en": Template(
            "[Fengqiao] The reply to your petition has been delivered",
            "Hello. The written reply to your petition (No. {case_no}) has been delivered. "
            "You can follow your case with query code {query_code}, and we welcome your "
            "evaluation of how it was handled: {evaluation_url}\nThank you for your "
            "understanding and support.",
            "Fengqiao: reply to {case_no} sent. Code {query_code}. Rate: {evaluation_url}",
            (
                "Fengqiao: your petition was answered. Rate it: {evaluation_url}",
                "Fengqiao: reply to petition {case_no} sent. Query code {query_code}.",
            ),
        ),
    },
}

_PHRASES: Final[Mapping[str, Mapping[str, str]]] = {
    "zh-CN": {
        "due_sentence": "请于 {due_on} 前处理。",
        "due_sentence_none": "请及时处理。",
        "due_short": "请于 {due_on} 前处理。",
        "due_short_none": "请及时处理。",
        "digest_line": "  · {case_no}　{task_name}（{due_on} 到期）",
        "digest_none": "  （无）",
    },
    "en": {
        "due_sentence": "Please complete it by {due_on}.",
        "due_sentence_none": "Please deal with it promptly.",
        "due_short": " Due {due_on}.",
        "due_short_none": "",
        "digest_line": "  - {case_no}  {task_name} (due {due_on})",
        "digest_none": "  (none)",
    },
}

_MONTHS_EN: Final = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def template_keys() -> list[str]:
    """List every template key, sorted."""
    return sorted(TEMPLATES)


def render(
    template: str,
    params: Mapping[str, Any],
    language: str,
    base_url: str | None = None,
) -> Rendered:
    """Render a template in a language (unknown ones fall back to zh-CN); raise PermanentError."""
    by_language = TEMPLATES.get(template)
    if by_language is None:
        raise PermanentError(f"unknown template {template!r}")
    lang = language if language in by_language else DEFAULT_LANGUAGE
    tpl = by_language[lang]
    missing = [name for name in REQUIRED_PARAMS[template] if params.get(name) in (None, "")]
    if missing:
        raise PermanentError(f"template {template!r} is missing params: {', '.join(missing)}")

    values = _prepare(template, params, lang, base_url)
    try:
        subject = _one_line(tpl.subject.format_map(values))
        body = tpl.body.format_map(values)
        shorts = [s.format_map(values) for s in (tpl.short, *tpl.short_fallbacks)]
    except (KeyError, IndexError, ValueError) as exc:
        raise PermanentError(f"template {template!r} cannot be rendered: {exc!r}") from exc
    link = values.get(_LINK_PARAM.get(template, "url")) or None
    return Rendered(subject=subject, body=body, short=_fit_short(shorts), link=link)


def _prepare(
    template: str, params: Mapping[str, Any], lang: str, base_url: str | None
) -> dict[str, str]:
    """Turn the caller's params into the strings the template text uses."""
    phrases = _PHRASES.get(lang, _PHRASES[DEFAULT_LANGUAGE])
    values = {
        key: _as_text(value)
        for key, value in params.items()
        if isinstance(key, str) and not _is_list(value)
    }
    for name in _URL_PARAMS:
        if values.get(name):
            values[name] = absolute_url(values[name], base_url)
    if "month" in params:
        values["month"] = _month_label(params["month"], lang)
    due_on = values.get("due_on")
    if due_on:
        values["due_sentence"] = phrases["due_sentence"].format(due_on=due_on)
        values["due_short"] = phrases["due_short"].format(due_on=due_on)
    else:
        values["due_sentence"] = phrases["due_sentence_none"]
        values["due_short"] = phrases["due_short_none"]
    for name in ("days_left", "days_over"):
        if name in values:
            values[f"{name}_en"] = _days_en(values[name])
    if template == "daily_digest":
        for name in ("due_today", "overdue"):
            items = _digest_items(params.get(name), name)
            values[f"{name}_count"] = str(len(items))
            lines = [phrases["digest_line"].format_map(item) for item in items]
            values[f"{name}_lines"] = "\n".join(lines) if lines else phrases["digest_none"]
    return values


def absolute_url(url: str, base_url: str | None) -> str:
    """Join a path such as /tasks/12 to the site's base URL; leave absolute URLs alone."""
    if base_url and url.startswith("/") and not url.startswith("//"):
        return base_url.rstrip("/") + url
    return url


def _as_text(value: Any) -> str:
    """Show dates as YYYY-MM-DD and times as YYYY-MM-DD HH:MM; everything else with str()."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def _month_label(value: Any, lang: str) -> str:
    """Show a month given as YYYY-MM (or a date) the way each language writes it."""
    if isinstance(value, date):
        year, month = value.year, value.month
    else:
        text = str(value).strip()
        parts = text.split("-")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            return text
        year, month = int(parts[0]), int(parts[1])
        if not 1 <= month <= 12:
            return text
    if lang == "en":
        return f"{_MONTHS_EN[month - 1]} {year}"
    return f"{year}年{month}月"


def _days_en(days: str) -> str:
    return "1 day" if days.strip() == "1" else f"{days} days"


def _digest_items(value: Any, name: str) -> list[dict[str, str]]:
    """Check the digest's list of {case_no, task_name, due_on} and make its fields text."""
    if value is None:
        return []
    if not _is_list(value):
        raise PermanentError(f"daily_digest param {name!r} must be a list")
    items: list[dict[str, str]] = []
    for entry in value:
        if not isinstance(entry, Mapping):
            raise PermanentError(f"daily_digest {name!r} entries must be mappings")
        try:
            items.append(
                {key: _one_line(_as_text(entry[key])) for key in ("case_no", "task_name", "due_on")}
            )
        except KeyError as exc:
            raise PermanentError(f"daily_digest {name!r} entry lacks {exc}") from exc
    return items


def _one_line(text: str) -> str:
    return " ".join(text.split()) if ("\n" in text or "\r" in text) else text


def _fit_short(candidates: list[str]) -> str:
    """Take the first candidate that fits one SMS segment, else cut the last resort."""
    for text in candidates:
        if len(text) <= SHORT_MAX:
            return text
    shortest = min(candidates, key=len)
    return shortest[: SHORT_MAX - 1] + "…"
