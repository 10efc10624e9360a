"""Relevance data: JSONL schemas, readers/writers and the synthetic data generator."""
