"""Engine metrics under vLLM's metric names, so dashboards work for both engines."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class EngineMetrics:
    """One registry per app: several engines (tests, bench) can live in one process."""

    def __init__(self, model_name: str) -> None:
        self.registry = CollectorRegistry()
        labels = ["model_name"]
        self.prompt_tokens = Counter(
            "vllm:prompt_tokens", "Prefill tokens processed.", labels, registry=self.registry
        ).labels(model_name)
        self.generation_tokens = Counter(
            "vllm:generation_tokens", "Generated tokens.", labels, registry=self.registry
        ).labels(model_name)
        self.requests = Counter(
            "vllm:request_success", "Finished requests by finish reason.", [*labels, "finished_reason"],
            registry=self.registry,
        )
        self.running = Gauge(
            "vllm:num_requests_running", "Requests being computed now.", labels, registry=self.registry
        ).labels(model_name)
        self.latency = Histogram(
            "vllm:e2e_request_latency_seconds", "End-to-end request latency.", labels, registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
        ).labels(model_name)
        self.model_name = model_name
