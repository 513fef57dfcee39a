"""The experiments of chapter 6 of *Deep Learning from Scratch*, on either backend.

``fastnet experiment NAME`` runs one (or ``all``); see ``shared`` for what an
experiment module provides.  ``EXPERIMENTS`` lists them in the book's order.
"""
from . import (
               activation_histograms,
               batch_norm,
               hyperparameter_search,
               normalization,
               optimizer_compare,
               optimizer_paths,
               overfitting,
               weight_init,
)

EXPERIMENTS = {module.NAME: module for module in (
    optimizer_paths, optimizer_compare, activation_histograms, weight_init, batch_norm,
    overfitting, hyperparameter_search, normalization)}

__all__ = ["EXPERIMENTS"]
