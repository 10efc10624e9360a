"""Gateway settings from the environment (RELMODEL_GATEWAY_*), the full-stack-template way."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Process settings; the CumPT config itself (beta, grade token ids) lives in the mounted file."""

    model_config = SettingsConfigDict(env_prefix="RELMODEL_GATEWAY_", extra="ignore")

    config_path: str = Field(default="/etc/relmodel/cumpt.json", description="Mounted CumPT ConfigMap file.")
    engine_url: str = Field(default="http://127.0.0.1:8000", description="vLLM or CPU engine base URL.")
    config_check_interval_s: float = Field(default=1.0, ge=0, description="How often the file is re-stat'ed.")
    engine_connect_timeout_s: float = Field(default=2.0, gt=0)
    engine_timeout_s: float = Field(default=30.0, gt=0, description="Whole-request timeout for scoring.")
    explain_timeout_s: float = Field(default=120.0, gt=0, description="Whole-request timeout for /explain.")
    explain_max_tokens: int = Field(default=384, ge=2)
    top_logprobs: int = Field(default=20, ge=4, le=20, description="`logprobs` N; <= the engine's --max-logprobs.")
    max_connections: int = Field(default=64, ge=1)
