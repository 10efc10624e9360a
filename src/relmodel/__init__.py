"""relmodel: train and serve reasoning relevance models (TaoSR1) for e-commerce search."""

__version__ = "0.1.0"
