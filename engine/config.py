"""Settings: every FENGQIAO_* environment variable, read in one place."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INSTANCE = PROJECT_ROOT / "instance"


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """Application settings; `from_env` documents each variable."""

    # FENGQIAO_DATABASE_URL: SQLAlchemy URL; default a SQLite file in the instance folder.
    database_url: str = ""
    # FENGQIAO_INSTANCE_DIR: folder for the SQLite file, the generated secret key and uploads.
    instance_dir: str = str(DEFAULT_INSTANCE)
    # FENGQIAO_SECRET_KEY: signs sessions, CSRF tokens and API tokens; generated once if unset.
    secret_key: str = ""
    # FENGQIAO_TOKEN_TTL_MINUTES: lifetime of a bearer token from POST /api/v1/auth/token.
    token_ttl_minutes: int = 720
    # FENGQIAO_WORKFLOWS_DIR: folder of BPMN files deployed at start-up.
    workflows_dir: str = str(PROJECT_ROOT / "workflows")
    # FENGQIAO_BASE_URL: public address used in links inside notifications.
    base_url: str = "http://127.0.0.1:5000"
    # FENGQIAO_DEFAULT_LANGUAGE: zh-CN (default) or en.
    default_language: str = "zh-CN"
    # FENGQIAO_SCHEDULER_INTERVAL_SECONDS: how often the embedded scheduler runs its jobs.
    scheduler_interval_seconds: int = 60
    # FENGQIAO_SCRIPT_TIME_LIMIT: CPU seconds one BPMN expression or script may take.
    script_time_limit: float = 0.5
    # FENGQIAO_SQLITE_SYNCHRONOUS: PRAGMA synchronous for SQLite (FULL is durable on power loss).
    sqlite_synchronous: str = "FULL"
    # FENGQIAO_MAX_CONTENT_LENGTH: largest accepted request body in bytes.
    max_content_length: int = 10 * 1024 * 1024
    # FENGQIAO_SECURE_COOKIES: mark session cookies Secure (set behind TLS).
    secure_cookies: bool = False
    # FENGQIAO_LOG_LEVEL: logging level name.
    log_level: str = "INFO"
    # FENGQIAO_PII_KEY: base64 of a 32-byte key encrypting petitioners' ID and phone numbers
    # (AES-GCM) and keying their lookup hashes; unset derives one from the secret key (HKDF).
    pii_key: str = ""
    # FENGQIAO_SMTP_HOST: mail server for e-mail notifications; unset means no e-mail channel.
    smtp_host: str = ""
    # FENGQIAO_SMTP_PORT: mail server port; 0 picks the usual one (25 / 587 STARTTLS / 465 SSL).
    smtp_port: int = 0
    # FENGQIAO_SMTP_SECURITY: none, starttls (default) or ssl.
    smtp_security: str = "starttls"
    # FENGQIAO_SMTP_USERNAME: SMTP login; unset sends without authenticating.
    smtp_username: str = ""
    # FENGQIAO_SMTP_PASSWORD: SMTP password.
    smtp_password: str = ""
    # FENGQIAO_MAIL_FROM: sender address of notification mails, e.g. "枫桥 <noreply@example.cn>".
    mail_from: str = ""
    # FENGQIAO_WEBHOOK_URL: generic webhook receiving signed JSON events; unset means none.
    webhook_url: str = ""
    # FENGQIAO_WEBHOOK_SECRET: HMAC-SHA256 key signing webhook bodies (X-Fengqiao-Signature).
    webhook_secret: str = ""
    # FENGQIAO_WECOM_WEBHOOK_URL: WeCom (企业微信) group robot URL including its key.
    wecom_webhook_url: str = ""
    # FENGQIAO_DINGTALK_WEBHOOK_URL: DingTalk (钉钉) group robot URL including its access token.
    dingtalk_webhook_url: str = ""
    # FENGQIAO_DINGTALK_SECRET: DingTalk robot signing secret (加签), if the robot uses one.
    dingtalk_secret: str = ""
    # FENGQIAO_SMS_GATEWAY_URL: HTTP SMS gateway endpoint; unset means no SMS channel.
    sms_gateway_url: str = ""
    # FENGQIAO_SMS_API_KEY: bearer key for the SMS gateway.
    sms_api_key: str = ""
    # FENGQIAO_SMS_SENDER_ID: sender id / signature the gateway shows (e.g. 枫桥).
    sms_sender_id: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read FENGQIAO_* variables; keyword overrides win (used by tests)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        known = {f.name for f in fields(cls)} - {"extra"}
        for f in fields(cls):
            if f.name == "extra":
                continue
            raw = env.get("FENGQIAO_" + f.name.upper())
            if raw is None:
                continue
            if f.type in ("int", int):
                values[f.name] = int(raw)
            elif f.type in ("float", float):
                values[f.name] = float(raw)
            elif f.type in ("bool", bool):
                values[f.name] = _bool(raw)
            else:
                values[f.name] = raw
        extra = {
            k[len("FENGQIAO_") :].lower(): v
            for k, v in env.items()
            if k.startswith("FENGQIAO_") and k[len("FENGQIAO_") :].lower() not in known
        }
        values["extra"] = extra
        values.update(overrides)
        settings = cls(**values)
        return settings.resolved()

    def resolved(self) -> Settings:
        """Fill in the defaults that depend on the instance folder."""
        instance = Path(self.instance_dir)
        url = self.database_url or f"sqlite:///{instance / 'fengqiao.db'}"
        key = self.secret_key or _instance_secret(instance)
        return replace(self, database_url=url, secret_key=key)

    @property
    def is_sqlite(self) -> bool:
        """Whether the database is the embedded SQLite default."""
        return self.database_url.startswith("sqlite")


def _instance_secret(instance: Path) -> str:
    """A secret generated once per instance folder, so sessions survive restarts."""
    instance.mkdir(parents=True, exist_ok=True)
    path = instance / "secret_key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_hex(32)
    path.write_text(key)
    path.chmod(0o600)
    return key
