"""The JSON API under /api/v1 (flask-smorest); OpenAPI at /api/v1/openapi.json."""

from __future__ import annotations

import importlib

from flask import Flask
from flask_smorest import Api

# One module per capability, each exposing BLUEPRINTS.
MODULES = [
    "web.api.core",
    "web.api.admin",
    "web.api.definitions",
    "web.api.notifications",
    "web.api.screening",
    "web.api.petitions",
    "web.api.stabilization",
    "web.api.reports_annual",
]


def init_api(app: Flask) -> Api:
    """Register every API blueprint."""
    api = Api(app, spec_kwargs={"info": {"description": "Fengqiao petitions and disputes API"}})
    api.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    for name in MODULES:
        for bp in importlib.import_module(name).BLUEPRINTS:
            api.register_blueprint(bp)
    return api
