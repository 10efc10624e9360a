"""Prometheus metrics of the data-run service (one registry per app, so tests can build many)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.runs = Counter("relmodel_data_runs", "Data runs finished, by kind and final state.",
                            ["kind", "state"], registry=self.registry)
        self.active = Gauge("relmodel_data_runs_active", "Data runs this replica is driving.", ["kind"],
                            registry=self.registry)
        self.seconds = Histogram("relmodel_data_run_seconds", "Wall time of a data run (one attempt).", ["kind"],
                                 buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600),
                                 registry=self.registry)
        self.shards = Counter("relmodel_data_run_shards", "Shards committed.", ["kind"], registry=self.registry)
        self.rows = Counter("relmodel_data_run_rows", "Rows written (accepted) or rejected.", ["kind", "outcome"],
                            registry=self.registry)
