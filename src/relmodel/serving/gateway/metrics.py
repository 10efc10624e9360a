"""Gateway Prometheus metrics (one registry per app, so tests and bench can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "relmodel_gateway_requests", "Requests by route and status.", ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "relmodel_gateway_request_seconds", "Request latency by route.", ["route"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0),
        )
        self.items_scored = Counter("relmodel_gateway_items_scored", "Items scored.", registry=self.registry)
        self.tiers = Counter("relmodel_gateway_items_by_tier", "Scored items by tier.", ["tier"],
                             registry=self.registry)
        self.engine_errors = Counter(
            "relmodel_gateway_engine_errors", "Engine calls that failed, by kind.", ["kind"], registry=self.registry
        )
        self.engine_latency = Histogram(
            "relmodel_gateway_engine_seconds", "Engine call latency by operation.", ["op"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0),
        )
        self.config_reloads = Counter("relmodel_gateway_config_reloads", "CumPT config loads.",
                                      registry=self.registry)
