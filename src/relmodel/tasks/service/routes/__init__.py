"""Routes per resource: runs (`/v1/runs`) and health/metrics."""
