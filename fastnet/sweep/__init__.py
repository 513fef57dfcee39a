"""Hyperparameter sweeps: search spaces, samplers, a trial store, pruners and executors.

One module per role (see the sweep design); none of ``space``, ``samplers`` or
``store`` imports the kernels or the nets, so a sweep's coordinator starts fast.
"""
