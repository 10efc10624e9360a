"""Settings of the data-run service, from the environment (pydantic-settings)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """`RELMODEL_SERVICE_*` variables; the broker is the workers' `RELMODEL_BROKER_URL`."""

    model_config = SettingsConfigDict(env_prefix="RELMODEL_SERVICE_", extra="ignore")

    broker_url: str | None = Field(
        default=None, validation_alias=AliasChoices("RELMODEL_BROKER_URL", "RELMODEL_SERVICE_BROKER_URL"),
        description="Celery broker the shards go to; unset runs shards inside the service (dev only).")
    redis_url: str | None = Field(
        default=None, description="Where run state lives; defaults to the broker URL (Redis).")
    key_prefix: str = "relmodel:runs"
    max_active_runs: int = Field(default=4, ge=1, description="Runs driven at once by this replica.")
    lease_seconds: float = Field(default=30.0, gt=1, description="A run whose driver stops renewing "
                                 "its lease this long is adopted by a (restarted) replica.")
    host: str = "0.0.0.0"
    port: int = Field(default=8090, ge=1, le=65535)

    @property
    def state_url(self) -> str:
        url = self.redis_url or self.broker_url
        if not url:
            raise ValueError("set RELMODEL_SERVICE_REDIS_URL or RELMODEL_BROKER_URL: run state lives in Redis")
        return url
