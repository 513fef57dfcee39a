"""Hyperparameter sweeps: search spaces, samplers, the results store and the coordinator."""
