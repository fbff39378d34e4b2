"""Modules: encoders, label embeddings, heads and towers."""
