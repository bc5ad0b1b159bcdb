"""The RestrictedPython sandbox every BPMN expression and script runs in."""

from __future__ import annotations

import threading
import time

import pytest

from engine.workflow import DataKeyError, ScriptError, sandbox


def test_helpers_and_data_are_available() -> None:
    data = {"decided_on": "2026-01-30", "items": [3, 1, 2], "threshold": 1}
    assert sandbox.evaluate("add_days(decided_on, 5)", data, element="e") == "2026-02-04"
    assert sandbox.evaluate("days_between('2026-01-01', decided_on)", data, element="e") == 29
    assert sandbox.evaluate("sorted(items)[0] + len(items)", data, element="e") == 4
    # Comprehensions see task data (they run in their own scope).
    assert sandbox.evaluate("[x for x in items if x > threshold]", data, element="e") == [3, 2]
    assert sandbox.evaluate("date('2026-03-01').month", data, element="e") == 3


@pytest.mark.parametrize(
    "source",
    [
        "__import__('os').system('echo pwned')",
        "().__class__.__base__.__subclasses__()",
        "open('/etc/passwd')",
        "eval('1')",
        "getattr(items, '__class__')",
        "'{0.__class__}'.format(items)",
        "(x for x in items).gi_frame",
        "type(items)",
    ],
)
def test_escapes_are_refused(source: str) -> None:
    with pytest.raises(ScriptError, match="element-x"):
        sandbox.evaluate(source, {"items": [1]}, element="element-x")


def test_scripts_write_back_json_data_and_cannot_rebind_helpers() -> None:
    data: dict[str, object] = {"a": 1, "gone": True}
    sandbox.execute("b = a + 1\ndel gone\nwhen = date('2026-01-02')", data, element="s")
    assert data == {"a": 1, "b": 2, "when": "2026-01-02"}
    with pytest.raises(ScriptError, match="reserved name 'len'"):
        sandbox.execute("len = 3", {}, element="s")


def test_try_except_is_refused_so_the_time_guard_cannot_be_swallowed() -> None:
    with pytest.raises(ScriptError, match="Try statements are not allowed"):
        sandbox.execute("try:\n    x = 1\nexcept:\n    pass", {}, element="s")


def test_endless_loop_hits_the_time_limit() -> None:
    started = time.perf_counter()
    with pytest.raises(ScriptError, match="time limit"):
        sandbox.execute("while True:\n    pass", {}, element="s", time_limit=0.1)
    assert time.perf_counter() - started < 2


def test_time_limit_works_in_any_thread() -> None:
    errors: list[str] = []

    def run() -> None:
        try:
            sandbox.evaluate(
                "[1 for x in range(10000) for y in range(10000)]", {}, element="t", time_limit=0.1
            )
        except ScriptError as exc:
            errors.append(str(exc))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(5)
    assert errors
    assert "time limit" in errors[0]


@pytest.mark.parametrize(
    "source", ["2 ** 10 ** 8", "'x' * 10 ** 9", "range(10 ** 9)", "1 << 10 ** 9"]
)
def test_c_level_size_bombs_are_refused(source: str) -> None:
    with pytest.raises(ScriptError):
        sandbox.evaluate(source, {}, element="e")


def test_compiled_code_is_cached_per_source() -> None:
    sandbox.evaluate("1 + 1", {}, element="e")
    hits = sandbox._compile.cache_info().hits
    sandbox.evaluate("1 + 1", {}, element="e")
    assert sandbox._compile.cache_info().hits == hits + 1


@pytest.mark.parametrize("key", ["_secret", "len", "add_days"])
def test_reserved_data_keys_are_refused(key: str) -> None:
    with pytest.raises(DataKeyError, match=key):
        sandbox.check_data_keys({key: 1})
    assert issubclass(DataKeyError, ValueError)
