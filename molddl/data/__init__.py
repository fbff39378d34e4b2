"""Data in: loading, featurizing, splitting and masking."""
