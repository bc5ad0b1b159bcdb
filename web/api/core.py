"""Foundation endpoints: auth, organisation, users, tasks, cases."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from engine.services import cases as case_service
from engine.services import orgs, tasks, users
from engine.services.tasks import TaskFilter
from web.api import schemas as s
from web.auth import current_actor, services

auth_bp = Blueprint("auth", __name__, url_prefix="/api/v1/auth", description="Authentication")
org_bp = Blueprint("org", __name__, url_prefix="/api/v1", description="Units and users")
task_bp = Blueprint("tasks", __name__, url_prefix="/api/v1/tasks", description="Human tasks")
case_bp = Blueprint("cases", __name__, url_prefix="/api/v1/cases", description="Cases of any type")
BLUEPRINTS = [auth_bp, org_bp, task_bp, case_bp]
SECURE: list[dict[str, list[str]]] = [{"bearer": []}]


@auth_bp.route("/token", methods=["POST"])
@auth_bp.arguments(s.TokenRequest)
@auth_bp.response(200, s.TokenResponse)
def issue_token(body: dict[str, Any]) -> dict[str, Any]:
    """Exchange a username and password for a signed bearer token."""
    svc = services()
    with svc.uow() as uow:
        user = users.authenticate(uow, body["username"], body["password"], svc.clock.now())
        token, expires = users.issue_token(svc, user)
        uow.commit()
    return {"access_token": token, "token_type": "Bearer", "expires_at": expires}


@org_bp.route("/me")
@org_bp.response(200, s.MeOut)
@org_bp.doc(security=SECURE)
def me() -> dict[str, Any]:
    """The caller and their roles."""
    actor = current_actor()
    return {
        "id": actor.user_id,
        "username": actor.username,
        "display_name": actor.display_name,
        "language": actor.language,
        "roles": [{"role": g.role, "unit_id": g.unit_id} for g in actor.grants],
    }


@org_bp.route("/units")
class Units(MethodView):
    @org_bp.arguments(s.UnitArgs, location="query")
    @org_bp.response(200, s.UnitList)
    @org_bp.doc(security=SECURE)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Units in the caller's scope (all for admins), in tree order."""
        svc = services()
        with svc.uow() as uow:
            units = orgs.list_units(
                uow, current_actor(), kind=args.get("kind"), parent_id=args.get("parent_id")
            )
            return {"items": [orgs.unit_view(u) for u in units], "total": len(units)}

    @org_bp.arguments(s.UnitIn)
    @org_bp.response(201, s.UnitOut)
    @org_bp.doc(security=SECURE)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Add a unit (admin)."""
        svc = services()
        with svc.uow() as uow:
            unit = orgs.create_unit(uow, current_actor(), now=svc.clock.now(), **body)
            uow.commit()
            return orgs.unit_view(unit)


@org_bp.route("/units/<int:unit_id>", methods=["PATCH"])
@org_bp.arguments(s.UnitPatch)
@org_bp.response(200, s.UnitOut)
@org_bp.doc(security=SECURE)
def patch_unit(body: dict[str, Any], unit_id: int) -> dict[str, Any]:
    """Rename a unit or change its reporting/active flags (admin)."""
    svc = services()
    with svc.uow() as uow:
        unit = orgs.update_unit(uow, current_actor(), unit_id, body, svc.clock.now())
        uow.commit()
        return orgs.unit_view(unit)


@org_bp.route("/users")
class Users(MethodView):
    @org_bp.arguments(s.UserArgs, location="query")
    @org_bp.response(200, s.UserList)
    @org_bp.doc(security=SECURE)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Users with their roles (admin)."""
        svc = services()
        with svc.uow() as uow:
            return users.list_users(uow, current_actor(), **args)

    @org_bp.arguments(s.UserIn)
    @org_bp.response(201, s.UserOut)
    @org_bp.doc(security=SECURE)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a user with roles on units (admin)."""
        svc = services()
        with svc.uow() as uow:
            user = users.create_user(uow, current_actor(), now=svc.clock.now(), **body)
            uow.commit()
            return users.user_view(user)


@org_bp.route("/users/<int:user_id>", methods=["PATCH"])
@org_bp.arguments(s.UserPatch)
@org_bp.response(200, s.UserOut)
@org_bp.doc(security=SECURE)
def patch_user(body: dict[str, Any], user_id: int) -> dict[str, Any]:
    """Change a user's details, roles or password (admin)."""
    svc = services()
    with svc.uow() as uow:
        user = users.update_user(uow, current_actor(), user_id, body, svc.clock.now())
        uow.commit()
        return users.user_view(user)


@task_bp.route("")
@task_bp.arguments(s.TaskArgs, location="query")
@task_bp.response(200, s.TaskList)
@task_bp.doc(security=SECURE)
def list_tasks(args: dict[str, Any]) -> dict[str, Any]:
    """Open tasks assigned to me or open to my roles in scope, earliest due first."""
    svc = services()
    actor = current_actor()
    with svc.uow() as uow:
        return tasks.list_tasks(uow, actor, TaskFilter(**args), svc.clock.now())


@task_bp.route("/<int:task_id>")
@task_bp.response(200, s.TaskDetail)
@task_bp.doc(security=SECURE)
def get_task(task_id: int) -> dict[str, Any]:
    """A task with its form (fields and JSON Schema)."""
    svc = services()
    actor = current_actor()
    with svc.uow() as uow:
        return tasks.get_task(svc, uow, actor, task_id, svc.clock.now())


@task_bp.route("/<int:task_id>/claim", methods=["POST"])
@task_bp.response(200, s.TaskOut)
@task_bp.doc(security=SECURE)
def claim(task_id: int) -> dict[str, Any]:
    """Claim a task for myself (409 if someone else holds it)."""
    return tasks.claim_task(services(), current_actor(), task_id)


@task_bp.route("/<int:task_id>/release", methods=["POST"])
@task_bp.response(200, s.TaskOut)
@task_bp.doc(security=SECURE)
def release(task_id: int) -> dict[str, Any]:
    """Give a claimed task back to its role."""
    return tasks.release_task(services(), current_actor(), task_id)


@task_bp.route("/<int:task_id>/complete", methods=["POST"])
@task_bp.arguments(s.CompleteIn)
@task_bp.response(200, s.CompleteOut)
@task_bp.doc(security=SECURE)
def complete(body: dict[str, Any], task_id: int) -> dict[str, Any]:
    """Complete a task with its form data (422 with field messages; 409 on conflicts)."""
    return tasks.complete_task(services(), current_actor(), task_id, body["data"])


@case_bp.route("")
class Cases(MethodView):
    @case_bp.arguments(s.CaseArgs, location="query")
    @case_bp.response(200, s.CaseList)
    @case_bp.doc(security=SECURE)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Cases in my scope."""
        return case_service.list_cases(services(), current_actor(), **args)

    @case_bp.arguments(s.CaseIn)
    @case_bp.response(201, s.CaseOut)
    @case_bp.doc(security=SECURE)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Start a case of any deployed case type."""
        return case_service.open_case(services(), current_actor(), **body)


@case_bp.route("/<int:case_id>")
@case_bp.response(200, s.CaseOut)
@case_bp.doc(security=SECURE)
def get_case(case_id: int) -> dict[str, Any]:
    """A case with its open tasks, deadlines and timeline."""
    return case_service.get_case(services(), current_actor(), case_id)
