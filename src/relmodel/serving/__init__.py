"""Serving: the CumPT tier config, the relevance gateway and the CPU engine."""
