"""The JSON API under /api/v1 (flask-smorest); OpenAPI at /api/v1/openapi.json."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api


def init_api(app: Flask) -> Api:
    """Register every API blueprint."""
    from web.api import core

    api = Api(app, spec_kwargs={"info": {"description": "Fengqiao petitions and disputes API"}})
    api.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    for bp in core.BLUEPRINTS:
        api.register_blueprint(bp)
    return api
