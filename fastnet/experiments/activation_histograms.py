"""Histograms of the activations of 5 layers of 100 nodes fed 1,000 standard-normal
inputs, for four weight scales and three activations (the book's
``weight_init_activation_histogram.py``, figures 6-10 to 6-14).

With sigmoid, std 1 pushes the activations to 0 and 1 (vanishing gradients), std 0.01
collapses them onto 0.5 (every node says the same), Xavier keeps them spread.  tanh
behaves alike around 0.  With ReLU, std 0.01 and Xavier shrink the activations layer
after layer while He keeps the same spread in every layer.
"""
import numpy as np

from .shared import figure

NAME = "activations"
TITLE = "activation histograms of 5 layers of 100 nodes"
SETTINGS = {"samples": 1000, "nodes": 100, "layers": 5, "bins": 30}
QUICK_SETTINGS = {"samples": 100, "layers": 3}

ACTIVATIONS = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu"}
WEIGHT_STD = {  # std of the weights as a function of the number of nodes n
    "std=1": lambda n: 1.0,
    "std=0.01": lambda n: 0.01,
    "Xavier": lambda n: np.sqrt(1.0 / n),
    "He": lambda n: np.sqrt(2.0 / n),
}
# The book draws (0, 1) throughout, and y up to 7,000 for ReLU, whose zeros would
# dwarf the rest.  tanh is drawn over its whole range and ReLU up to 3, which holds
# nearly all of He's activations; the share beyond the range is written on a panel.
HIST_RANGE = {"sigmoid": (0, 1), "tanh": (-1, 1), "relu": (0, 3)}
RELU_YLIM_PER_SAMPLE = 7.0  # the book's 7,000 counts for 1,000 samples


def forward(layer_class, x, weights):
    """The activations of each layer of a plain stack ``layer(x @ W)``."""
    activations = []
    for w in weights:
        x = layer_class().forward(x @ w)
        activations.append(x)
    return activations


def run(ctx, cfg):
    rng = np.random.default_rng(ctx.seed)
    x = rng.standard_normal((cfg.samples, cfg.nodes))
    unit_weights = rng.standard_normal((cfg.layers, cfg.nodes, cfg.nodes))
    rows, spread = [], {}
    for activation, layer_name in ACTIVATIONS.items():
        low, high = HIST_RANGE[activation]
        fig = figure(figsize=(12, 9), layout="constrained")
        fig.suptitle(f"{activation} activations per layer (rows: weight init)")
        axes = fig.subplots(len(WEIGHT_STD), cfg.layers, sharex=True, sharey="row")
        for row, (init, std) in enumerate(WEIGHT_STD.items()):
            layers = forward(getattr(ctx.backend.layers, layer_name), x,
                             std(cfg.nodes) * unit_weights)
            for i, (ax, a) in enumerate(zip(axes[row], layers)):
                counts, edges = np.histogram(a, cfg.bins, range=(low, high))
                ax.stairs(counts, edges, fill=True)
                outside = np.mean((a < low) | (a > high))
                if outside > 0.01:
                    ax.text(0.95, 0.9, f"{outside:.0%} outside", transform=ax.transAxes,
                            ha="right", fontsize=8)
                ax.set_title(f"{init}, {i + 1}-layer", fontsize=9)
                rows += [(activation, init, i + 1, lo, hi, n)
                         for lo, hi, n in zip(edges[:-1], edges[1:], counts)]
            spread[activation, init] = [float(a.std()) for a in layers]
            if activation == "relu":
                axes[row, 0].set_ylim(0, RELU_YLIM_PER_SAMPLE * cfg.samples)
        ctx.save_figure(fig, f"{NAME}-{activation}.png")
    ctx.write_csv(f"{NAME}.csv", ["activation", "init", "layer", "bin_low", "bin_high",
                                  "count"], rows)

    print("std of each layer's activations:")
    for (activation, init), stds in spread.items():
        print(f"  {activation:>7} {init:>8}: " + "  ".join(f"{s:9.3g}" for s in stds))
    return "last-layer std: " + ", ".join(
        f"{act}/{init} {stds[-1]:.2g}" for (act, init), stds in spread.items()
        if init in ("Xavier", "He"))
