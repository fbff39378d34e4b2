"""Inference (Algorithm 2): direct, alternate, and the prediction table."""
