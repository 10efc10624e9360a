"""Executors carry out the planner's decisions: `local` (subprocesses, eager Celery) here;
the Kubernetes executor is the operator (relmodel.operator)."""
