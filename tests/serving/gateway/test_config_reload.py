"""A new CumPT config takes effect without a restart, including Kubernetes' symlink swap."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from relmodel.serving.gateway.config_store import ConfigStore
from tests.serving.conftest import write_config

BODY = {"query": "red shoe", "items": [{"id": "a", "title": "red shoe"}, {"id": "b", "title": "blue kettle"}]}


def betas(url: str) -> float:
    response = httpx.post(f"{url}/v1/relevance/score", json=BODY)
    assert response.status_code == 200, response.text
    return float(response.json()["beta"])


def test_rewritten_file_is_picked_up(gateway: Callable[..., Any], config_file: Path, grade_ids: list[int]) -> None:
    with gateway() as url:
        assert betas(url) == 0.5
        write_config(config_file, grade_ids, beta=0.7)
        assert betas(url) == 0.7
        config_file.write_text("{not json")  # a broken update keeps the last good config
        assert betas(url) == 0.7
        assert "invalid CumPT config" in httpx.get(f"{url}/readyz").json()["checks"]["config"]["error"]
        write_config(config_file, grade_ids, beta=0.2, max_items_per_request=1)
        assert httpx.post(f"{url}/v1/relevance/score", json=BODY).status_code == 422


def test_configmap_symlink_swap(tmp_path: Path, grade_ids: list[int], gateway: Callable[..., Any]) -> None:
    """Kubernetes: cumpt.json -> ..data/cumpt.json, ..data -> ..<timestamp>; an update swaps ..data."""
    mount = tmp_path / "mount"
    mount.mkdir()

    def publish(version: str, beta: float) -> None:
        target = mount / f"..{version}"
        target.mkdir()
        write_config(target / "cumpt.json", grade_ids, beta=beta)
        os.symlink(target.name, mount / "..data_tmp")
        os.replace(mount / "..data_tmp", mount / "..data")

    publish("v1", 0.4)
    os.symlink("..data/cumpt.json", mount / "cumpt.json")
    with gateway(config_path=str(mount / "cumpt.json")) as url:
        assert betas(url) == 0.4
        publish("v2", 0.9)
        assert betas(url) == 0.9


def test_check_interval_bounds_stat_calls(tmp_path: Path, grade_ids: list[int]) -> None:
    path = write_config(tmp_path / "cumpt.json", grade_ids)
    store = ConfigStore(str(path), check_interval_s=60)
    assert store.current() is not None and store.reloads == 1
    path.write_text(json.dumps({"model": "m", "beta": 0.9, "grade_token_ids": grade_ids}))
    assert store.current().beta == 0.5  # type: ignore[union-attr]  # not re-checked yet
    assert store.refresh() and store.current().beta == 0.9  # type: ignore[union-attr]


def test_missing_config_is_not_ready(gateway: Callable[..., Any], tmp_path: Path) -> None:
    with gateway(config_path=str(tmp_path / "absent.json")) as url:
        assert httpx.get(f"{url}/readyz").status_code == 503
        response = httpx.post(f"{url}/v1/relevance/score", json=BODY)
        assert response.status_code == 503 and response.json()["error"]["code"] == "not_ready"
        write_config(tmp_path / "absent.json", [1, 2, 3, 4])  # appears later: no restart needed
        time.sleep(0.01)
        assert httpx.get(f"{url}/readyz").json()["checks"]["config"]["ok"]
