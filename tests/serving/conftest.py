"""Serving fixtures: the tiny model (tests/conftest.py) loaded once and served over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from relmodel.serving.engine import EngineModel, create_engine_app
from relmodel.serving.gateway import Settings, create_app
from tests.serving.servers import serve

MODEL_NAME = "tiny-relmodel"


@pytest.fixture(scope="session")
def engine_model(tiny_model_dir: Path) -> EngineModel:
    return EngineModel(tiny_model_dir)


@pytest.fixture(scope="session")
def grade_ids(tiny_model_dir: Path) -> list[int]:
    from relmodel.modeling import grade_token_ids, load_tokenizer

    return grade_token_ids(load_tokenizer(str(tiny_model_dir)))


@pytest.fixture(scope="session")
def engine_url(engine_model: EngineModel) -> Iterator[str]:
    """The real CPU engine over HTTP, shared by the session."""
    with serve(create_engine_app(engine_model, served_model_name=MODEL_NAME)) as url:
        yield url


def write_config(path: Path, grade_ids: list[int], **overrides: Any) -> Path:
    body = {"model": MODEL_NAME, "beta": 0.5, "grade_token_ids": grade_ids, **overrides}
    path.write_text(json.dumps(body))
    return path


@pytest.fixture
def config_file(tmp_path: Path, grade_ids: list[int]) -> Path:
    return write_config(tmp_path / "cumpt.json", grade_ids)


GatewayFactory = Callable[..., Any]


@pytest.fixture
def gateway(config_file: Path, engine_url: str) -> Iterator[Callable[..., Any]]:
    """Start gateways over real HTTP: `with gateway(**settings) as url:`; defaults to the real engine."""

    def start(**overrides: Any) -> Any:
        values: dict[str, Any] = {"config_path": str(config_file), "engine_url": engine_url,
                                  "config_check_interval_s": 0.0, **overrides}
        return serve(create_app(Settings(**values)))

    yield start
