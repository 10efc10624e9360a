"""Schemathesis over the gateway's OpenAPI with the real engine up: no input makes a 5xx.

Drives schemathesis' strategies with plain hypothesis (its pytest plugin does not load under
this pytest); examples are bounded so the run takes seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

MAX_EXAMPLES = 25


def test_no_server_errors(gateway: Callable[..., Any]) -> None:
    with gateway(explain_max_tokens=4) as url:
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
        assert {op.path for op in operations} >= {"/v1/relevance/score", "/v1/relevance/explain", "/readyz"}
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                      database=None)
            def check(case: Any) -> None:
                case.call_and_validate(base_url=url, checks=[not_a_server_error], timeout=60)

            check()
