"""RestrictedPython sandbox for every BPMN expression and script.

SpiffWorkflow evaluates conditions, scripts and timer expressions with plain
`eval`/`exec` (SPIFFWORKFLOW.md trap 1), so an uploaded BPMN could run anything. Here
every source string is compiled with RestrictedPython (names and attributes starting
with `_` refused at compile time, guarded attribute/item/iteration access at run time),
runs against a short allow-list of builtins and date helpers, and is bounded in CPU
time by a per-thread `sys.settrace` guard (works in any thread, unlike SIGALRM).
"""

from __future__ import annotations

import ast
import operator
import sys
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from types import CodeType, FrameType, MappingProxyType, ModuleType
from typing import Any

from RestrictedPython.compile import compile_restricted_eval, compile_restricted_exec
from RestrictedPython.Guards import (
    full_write_guard,
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    safer_getattr,
)
from RestrictedPython.PrintCollector import PrintCollector
from RestrictedPython.transformer import RestrictingNodeTransformer

from engine.clock import LOCAL_TZ
from engine.workflow.errors import DataKeyError, ScriptError
from engine.workflow.timeclock import current_now

SANDBOX_FILENAME = "<bpmn-sandbox>"
DEFAULT_TIME_LIMIT = 0.5
MAX_RANGE = 10_000
MAX_SEQUENCE = 100_000
MAX_EXPONENT = 1_000


class ScriptTimeout(Exception):
    """Raised inside sandboxed code when its CPU-time budget is spent."""


# -- compile-time policy -------------------------------------------------------------------


class _Policy(RestrictingNodeTransformer):
    """RestrictedPython's policy plus: no try/except, guarded `**`, `*` and `<<`.

    `try` is refused because the time guard interrupts code by raising inside it; a
    sandboxed `except:` could swallow that and keep looping. Power, repetition and shift
    run in C where no line-trace can stop them, so they go through size-checking helpers.
    """

    _GUARDED_OPS: Mapping[type[ast.operator], str] = MappingProxyType(
        {ast.Pow: "_pow_", ast.Mult: "_mul_", ast.LShift: "_lshift_"}
    )

    def visit_Try(self, node: ast.Try) -> Any:
        """Refuse try/except/finally."""
        self.not_allowed(node)
        return node

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        """Rewrite size-exploding operators into guarded helper calls."""
        node = self.node_contents_visit(node)
        helper = self._GUARDED_OPS.get(type(node.op))
        if helper is None:
            return node
        call = ast.Call(
            func=ast.Name(id=helper, ctx=ast.Load()), args=[node.left, node.right], keywords=[]
        )
        return ast.copy_location(call, node)


@lru_cache(maxsize=8192)
def _compile(source: str, mode: str) -> tuple[CodeType | None, str | None, frozenset[str]]:
    """Compile once per (source, mode); the same conditions run on every task completion."""
    compiler = compile_restricted_eval if mode == "eval" else compile_restricted_exec
    try:
        result = compiler(source, filename=SANDBOX_FILENAME, policy=_Policy)
    except (SyntaxError, ValueError, TypeError) as exc:  # RestrictedPython re-raises some
        return None, str(exc), frozenset()
    if result.errors or result.code is None:
        return None, "; ".join(result.errors) or "cannot compile", frozenset()
    return result.code, None, frozenset(result.used_names)


def check_source(source: str, *, mode: str = "eval") -> str | None:
    """Return why `source` would be refused by the sandbox, or None if it compiles."""
    _code, error, _names = _compile(_normalise(source, mode), mode)
    return error


def used_names(source: str) -> frozenset[str]:
    """Names an expression reads (empty if it does not compile)."""
    return _compile(_normalise(source, "eval"), "eval")[2]


def _normalise(source: str, mode: str) -> str:
    # Expressions are often written on their own line inside XML; leading whitespace is
    # a syntax error for `eval`. Scripts keep their indentation (dedent is safe for exec).
    if mode == "eval":
        return source.strip()
    import textwrap

    return textwrap.dedent(source).strip("\n")


# -- run-time guards --------------------------------------------------------------------------


def _guarded_getattr(obj: Any, name: str, default: Any = None) -> Any:
    if name.startswith("_"):
        raise AttributeError(f'"{name}" is not allowed (names starting with "_" are private)')
    if isinstance(obj, ModuleType):
        raise AttributeError("module attributes are not available in BPMN expressions")
    return safer_getattr(obj, name, default)  # type: ignore[no-untyped-call]


def _guarded_getitem(obj: Any, key: Any) -> Any:
    if isinstance(key, str) and key.startswith("_") and not isinstance(obj, Mapping):
        raise KeyError(key)
    return obj[key]


def _guarded_getiter(obj: Any) -> Any:
    return iter(obj)


def _sized(value: Any) -> int:
    try:
        return len(value)
    except TypeError:
        return 1


def _pow(base: Any, exponent: Any) -> Any:
    if isinstance(exponent, int | float) and abs(exponent) > MAX_EXPONENT:
        raise ValueError(f"exponent {exponent} is too large (limit {MAX_EXPONENT})")
    return base**exponent


def _mul(left: Any, right: Any) -> Any:
    for seq, times in ((left, right), (right, left)):
        if (
            isinstance(seq, str | bytes | list | tuple)
            and isinstance(times, int)
            and _sized(seq) * times > MAX_SEQUENCE
        ):
            raise ValueError(f"sequence repetition is too large (limit {MAX_SEQUENCE})")
    return left * right


def _lshift(left: Any, right: Any) -> Any:
    if isinstance(right, int) and right > MAX_EXPONENT:
        raise ValueError(f"shift {right} is too large (limit {MAX_EXPONENT})")
    return left << right


_INPLACE: Mapping[str, Callable[[Any, Any], Any]] = MappingProxyType(
    {
        "+=": operator.add,
        "-=": operator.sub,
        "*=": _mul,
        "/=": operator.truediv,
        "//=": operator.floordiv,
        "%=": operator.mod,
        "**=": _pow,
        "<<=": _lshift,
        ">>=": operator.rshift,
        "&=": operator.and_,
        "|=": operator.or_,
        "^=": operator.xor,
    }
)


def _inplacevar(op: str, left: Any, right: Any) -> Any:
    func = _INPLACE.get(op)
    if func is None:
        raise ValueError(f"operator {op} is not allowed")
    return func(left, right)


def _apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return func(*args, **kwargs)


# -- helpers offered to BPMN authors ---------------------------------------------------------


def _limited_range(*args: int) -> range:
    result = range(*args)
    if len(result) > MAX_RANGE:
        raise ValueError(f"range() is limited to {MAX_RANGE} items")
    return result


def to_date(value: Any, month: int | None = None, day: int | None = None) -> date:
    """`date('2026-01-31')`, `date(datetime)` (its local day) or `date(y, m, d)`."""
    if month is not None and day is not None:
        return date(int(value), month, day)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return value.astimezone(LOCAL_TZ).date()
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 10:
            return to_datetime(text).astimezone(LOCAL_TZ).date()
        return date.fromisoformat(text)
    raise ValueError(f"cannot read a date from {value!r}")


def to_datetime(value: Any) -> datetime:
    """An aware datetime from an ISO string, date (local midnight) or datetime (naive = local)."""
    if isinstance(value, datetime):
        result = value
    elif isinstance(value, date):
        result = datetime(value.year, value.month, value.day, tzinfo=LOCAL_TZ)
    elif isinstance(value, str):
        result = datetime.fromisoformat(value.strip())
    else:
        raise ValueError(f"cannot read a datetime from {value!r}")
    if result.tzinfo is None:
        result = result.replace(tzinfo=LOCAL_TZ)
    return result


def add_days(value: Any, days: int | float) -> Any:
    """Add calendar days; an ISO date string stays an ISO date string (JSON-able task data)."""
    if isinstance(value, str):
        text = value.strip()
        if len(text) <= 10:
            return (date.fromisoformat(text) + timedelta(days=days)).isoformat()
        return (to_datetime(text) + timedelta(days=days)).isoformat()
    if isinstance(value, date | datetime):
        return value + timedelta(days=days)
    raise ValueError(f"add_days() needs a date, got {value!r}")


def days_between(start: Any, end: Any) -> int:
    """Whole calendar days from `start` to `end` (negative if end is earlier)."""
    return (to_date(end) - to_date(start)).days


def today() -> str:
    """Today's date at the office (Asia/Shanghai) per the injected clock, as 'YYYY-MM-DD'."""
    return current_now().astimezone(LOCAL_TZ).date().isoformat()


def now() -> datetime:
    """The injected clock's current time (aware UTC)."""
    return current_now()


def iso(value: Any) -> Any:
    """ISO 8601 text of a date/datetime (other values unchanged)."""
    return value.isoformat() if isinstance(value, date | datetime) else value


HELPERS: Mapping[str, Any] = MappingProxyType(
    {
        "len": len,
        "min": min,
        "max": max,
        "sum": sum,
        "abs": abs,
        "round": round,
        "int": int,
        "float": float,
        "str": str,
        "bool": bool,
        "list": list,
        "dict": dict,
        "set": set,
        "tuple": tuple,
        "sorted": sorted,
        "reversed": reversed,
        "enumerate": enumerate,
        "zip": zip,
        "any": any,
        "all": all,
        "isinstance": isinstance,
        "range": _limited_range,
        "None": None,
        "True": True,
        "False": False,
        "date": to_date,
        "datetime": to_datetime,
        "timedelta": timedelta,
        "add_days": add_days,
        "days_between": days_between,
        "today": today,
        "now": now,
        "iso": iso,
    }
)
RESERVED_NAMES: frozenset[str] = frozenset(HELPERS)

_BASE_GLOBALS: Mapping[str, Any] = MappingProxyType(
    {
        "__builtins__": dict(HELPERS),
        "__name__": "bpmn",
        "__metaclass__": type,
        "_getattr_": _guarded_getattr,
        "_getitem_": _guarded_getitem,
        "_getiter_": _guarded_getiter,
        "_write_": full_write_guard,
        "_inplacevar_": _inplacevar,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_apply_": _apply,
        "_print_": PrintCollector,
        "_pow_": _pow,
        "_mul_": _mul,
        "_lshift_": _lshift,
        **HELPERS,
    }
)


def check_data_keys(data: Mapping[str, Any]) -> None:
    """Refuse task data keys that are private (`_x`) or would shadow a sandbox helper."""
    bad = sorted(
        str(key)
        for key in data
        if not isinstance(key, str) or key.startswith("_") or key in RESERVED_NAMES
    )
    if bad:
        raise DataKeyError(
            "task data keys may not start with '_' or use a helper name "
            f"({', '.join(sorted(RESERVED_NAMES))}): {', '.join(bad)}"
        )


def jsonable(value: Any) -> Any:
    """Make values storable in SpiffWorkflow's JSON state (dates -> ISO, sets -> lists)."""
    if value is None or isinstance(value, str | int | float | bool | datetime | timedelta):
        return value
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    raise ValueError(f"value of type {type(value).__name__} cannot be stored in task data")


# -- the CPU-time guard ----------------------------------------------------------------------


def _run_limited(func: Callable[[], Any], limit: float) -> Any:
    """Run `func` with a CPU-time budget enforced on every line of sandboxed code."""
    deadline = time.thread_time() + limit
    clock = time.thread_time

    def local_trace(frame: FrameType, event: str, arg: Any) -> Any:
        if clock() > deadline:
            raise ScriptTimeout(f"time limit of {limit:g} s exceeded")
        return local_trace

    def global_trace(frame: FrameType, event: str, arg: Any) -> Any:
        # Only sandboxed frames (incl. their comprehensions) pay for line tracing.
        if frame.f_code.co_filename == SANDBOX_FILENAME:
            return local_trace(frame, event, arg)
        return None

    previous = sys.gettrace()
    sys.settrace(global_trace)
    try:
        return func()
    finally:
        sys.settrace(previous)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ScriptTimeout):
        return str(exc)
    if isinstance(exc, NameError):
        return f"unknown name: {exc}"
    return f"{type(exc).__name__}: {exc}"


def evaluate(
    source: str,
    data: Mapping[str, Any],
    *,
    element: str,
    time_limit: float = DEFAULT_TIME_LIMIT,
    extra: Mapping[str, Any] | None = None,
) -> Any:
    """Evaluate one BPMN expression against task data; ScriptError names `element`."""
    code, error, _names = _compile(_normalise(source, "eval"), "eval")
    if code is None:
        raise ScriptError(f"{element}: expression refused: {error}")
    scope = dict(_BASE_GLOBALS)
    if extra:
        scope.update(extra)
    scope.update(data)
    try:
        return _run_limited(lambda: eval(code, scope), time_limit)  # noqa: S307 - restricted code
    except ScriptTimeout as exc:
        raise ScriptError(f"{element}: expression stopped: {exc}") from None
    except Exception as exc:
        raise ScriptError(f"{element}: expression failed: {_describe(exc)}") from None


def execute(
    source: str,
    data: MutableMapping[str, Any],
    *,
    element: str,
    time_limit: float = DEFAULT_TIME_LIMIT,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Run one BPMN script; variables it leaves behind become task data."""
    code, error, _names = _compile(_normalise(source, "exec"), "exec")
    if code is None:
        raise ScriptError(f"{element}: script refused: {error}")
    scope = dict(_BASE_GLOBALS)
    if extra:
        scope.update(extra)
    scope.update(data)
    try:
        _run_limited(lambda: exec(code, scope), time_limit)  # noqa: S102 - restricted code
    except ScriptTimeout as exc:
        raise ScriptError(f"{element}: script stopped: {exc}") from None
    except Exception as exc:
        raise ScriptError(f"{element}: script failed: {_describe(exc)}") from None
    _copy_back(scope, data, element, extra or {})


def _copy_back(
    scope: Mapping[str, Any], data: MutableMapping[str, Any], element: str, extra: Iterable[str]
) -> None:
    skip = set(extra)
    updates: dict[str, Any] = {}
    for key, value in scope.items():
        if key in _BASE_GLOBALS:
            if value is not _BASE_GLOBALS[key]:
                raise ScriptError(f"{element}: script assigns to reserved name '{key}'")
            continue
        if key.startswith("_") or key in skip or callable(value):
            continue
        try:
            updates[key] = jsonable(value)
        except ValueError as exc:
            raise ScriptError(f"{element}: script variable '{key}': {exc}") from None
    for key in [k for k in data if k not in updates and not k.startswith("_")]:
        del data[key]  # the script deleted it
    data.update(updates)
