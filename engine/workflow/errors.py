"""Exceptions raised by engine.workflow; none of them carries a SpiffWorkflow object."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an uploaded BPMN definition, in English and Simplified Chinese."""

    element_id: str | None
    message: str
    message_zh: str


class DefinitionError(Exception):
    """A BPMN file that cannot be deployed; `.problems` says which elements and why."""

    def __init__(self, problems: Iterable[Problem], *, source: str = "<upload>") -> None:
        self.problems: list[Problem] = list(problems)
        self.source = source
        super().__init__(self._summary())

    def _summary(self) -> str:
        parts = []
        for problem in self.problems:
            where = f"[{problem.element_id}] " if problem.element_id else ""
            parts.append(f"{where}{problem.message}")
        return f"{self.source}: " + "; ".join(parts) if parts else f"{self.source}: invalid"


class ScriptError(Exception):
    """A BPMN expression or script was refused by the sandbox or failed while running."""

    def __init__(self, message: str, *, element_id: str | None = None) -> None:
        self.element_id = element_id
        super().__init__(message)


class TaskNotReadyError(Exception):
    """complete() was asked for a task that does not exist or is not READY."""


class DataKeyError(ValueError):
    """Task data used a reserved key (leading underscore, or the name of a sandbox helper)."""


def problem(element_id: str | None, message: str, message_zh: str) -> Problem:
    """Build a Problem (a short alias that keeps call sites on one line)."""
    return Problem(element_id=element_id, message=message, message_zh=message_zh)
