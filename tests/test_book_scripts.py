"""The book's own scripts, run unchanged but for their import lines (the drop-in
contract): ``book_scripts/optimizer_compare_naive.py`` moves Python floats
``params = {'x': -7.0, 'y': 2.0}`` with each optimizer, and must draw the reference's
paths."""
import runpy
from pathlib import Path

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt

SCRIPTS = Path(__file__).parent / "book_scripts"
FASTNET_IMPORT = "from fastnet.optimizers import *"


def run_book_script(name, png, optimizers_module="fastnet.optimizers"):
    """Run the script (a copy beside ``png``) with ``plt.show()`` saving to ``png``;
    return each subplot's title and path as drawn (the first line of each axes)."""
    source = (SCRIPTS / name).read_text()
    assert FASTNET_IMPORT in source and source.count("plt.show()") == 1
    source = source.replace(FASTNET_IMPORT, f"from {optimizers_module} import *")
    script = png.with_suffix(".py")
    script.write_text(source.replace("plt.show()", f"plt.savefig({str(png)!r})"))
    plt.close("all")
    try:
        runpy.run_path(str(script), run_name="__main__")
        return {ax.get_title(): ax.lines[0].get_xydata() for ax in plt.gcf().axes}
    finally:
        plt.close("all")


def test_optimizer_compare_naive_draws_the_books_paths(tmp_path):
    paths = run_book_script("optimizer_compare_naive.py", tmp_path / "paths-fastnet.png")
    reference = run_book_script("optimizer_compare_naive.py", tmp_path / "paths-reference.png",
                                "fastnet.reference.optimizers")
    assert list(paths) == ["SGD", "Momentum", "AdaGrad", "Adam"] == list(reference)
    for title, path in paths.items():
        assert path.shape == (30, 2), title
        np.testing.assert_allclose(path, reference[title], rtol=1e-12, atol=1e-12,
                                   err_msg=title)
        np.testing.assert_array_equal(path[0], [-7.0, 2.0])
        # every optimizer heads for the minimum of x**2 / 20 + y**2 at the origin
        assert np.hypot(*path[-1]) < 0.5 * np.hypot(-7.0, 2.0), title
    png = (tmp_path / "paths-fastnet.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


@pytest.mark.parametrize("name", sorted(p.name for p in SCRIPTS.glob("*.py")))
def test_book_scripts_import_fastnet(name):
    assert FASTNET_IMPORT in (SCRIPTS / name).read_text()
