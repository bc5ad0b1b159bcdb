"""The only package that touches SpiffWorkflow: safe parsing, sandboxed expressions, runtime.

Nothing exported here is a SpiffWorkflow object (DESIGN.md §3).
"""

from engine.workflow.errors import (
    DataKeyError,
    DefinitionError,
    Problem,
    ScriptError,
    TaskNotReadyError,
)
from engine.workflow.forms import FormField, form_schema, json_schema
from engine.workflow.lint import check_expression, evaluate_condition, lint_process, lint_xml
from engine.workflow.migrate import MigrationCheck, check_migration, migrate
from engine.workflow.parser import (
    Definition,
    UserTaskSpec,
    lint_definition,
    parse_definition,
    parse_definitions,
)
from engine.workflow.runtime import (
    HumanTask,
    Snapshot,
    WorkflowRuntime,
    compact_state,
    full_state,
)

__all__ = [
    "DataKeyError",
    "Definition",
    "DefinitionError",
    "FormField",
    "HumanTask",
    "MigrationCheck",
    "Problem",
    "ScriptError",
    "Snapshot",
    "TaskNotReadyError",
    "UserTaskSpec",
    "WorkflowRuntime",
    "check_expression",
    "check_migration",
    "compact_state",
    "evaluate_condition",
    "form_schema",
    "full_state",
    "json_schema",
    "lint_definition",
    "lint_process",
    "lint_xml",
    "migrate",
    "parse_definition",
    "parse_definitions",
]
