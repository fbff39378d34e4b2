"""Experiments of the paper (§IV): methods × reveal tasks × seeds, tidy outputs."""
