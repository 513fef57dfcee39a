"""The asv dashboard renders offline: ``tools/asv_dashboard.py`` records a real result of
the working tree and publishes it, and headless Chromium, with no host name resolving
but the loopback, draws the benchmark's graph from the html folder alone."""
import functools
import http.server
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
asv_util = pytest.importorskip("asv.util", reason="asv is not installed (pip install -e .[test])")

ROOT = Path(__file__).resolve().parents[1]
BENCHMARK = "bench_kernels.SoftmaxCrossEntropy.time_softmax_cross_entropy"
# The text of asv's error.html, where its page goes when a script does not load.
LOAD_ERROR = "external (JavaScript) dependencies of airspeed velocity failed to load"
CHROMIUM = next(filter(None, map(shutil.which, ["chromium", "chromium-browser",
                                                "google-chrome"])), None)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def dashboard(tmp_path):
    """The html folder of a published result of one small benchmark of the checkout."""
    if shutil.which("npm") is None:
        pytest.skip("needs npm to fetch the dashboard's scripts (apt-get install npm)")
    conf = asv_util.load_json(ROOT / "asv.conf.json", js_comments=True)
    conf.update(repo=str(ROOT), benchmark_dir=str(ROOT / "benchmarks"), branches=["HEAD"],
                env_dir="env", results_dir="results", html_dir="html")
    config = tmp_path / "asv.conf.json"
    config.write_text(json.dumps(conf))
    subprocess.run([sys.executable, ROOT / "tools" / "asv_dashboard.py", "--config", config,
                    "--working-tree", "--bench", "^" + re.escape(BENCHMARK)], cwd=ROOT, check=True)
    return tmp_path / "html"


@pytest.fixture
def serve(dashboard):
    """The loopback address of an HTTP server of the html folder (asv's page reads its
    JSON with XHR, which file:// pages may not)."""
    handler = functools.partial(QuietHandler, directory=dashboard)
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield f"http://127.0.0.1:{server.server_address[1]}"
        server.shutdown()


def chromium(url, tmp_path, *args):
    """Headless Chromium's stdout for ``url``, offline: no host resolves but the loopback."""
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}",
               "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
               "--window-size=1280,900",
               "--virtual-time-budget=20000", *args, url]
    return subprocess.run(command, capture_output=True, text=True, timeout=180,
                          check=True).stdout


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium)")
def test_dashboard_draws_offline(dashboard, serve, tmp_path):
    # Control: asv's own page, loading from the CDNs, fails here, so the checks see it.
    shutil.copy(Path(asv_util.__file__).parent / "www" / "index.html", dashboard / "cdn.html")
    assert LOAD_ERROR in chromium(f"{serve}/cdn.html", tmp_path, "--dump-dom")

    assert LOAD_ERROR not in chromium(f"{serve}/index.html", tmp_path, "--dump-dom")
    graph = f"{serve}/index.html#{BENCHMARK}"
    dom = chromium(graph, tmp_path, "--dump-dom")
    assert LOAD_ERROR not in dom
    assert 'class="flot-base"' in dom, "no flot canvas: the graph was not drawn"
    screenshot = tmp_path / "dashboard.png"
    chromium(graph, tmp_path, f"--screenshot={screenshot}")
    assert screenshot.stat().st_size > 0
    print(f"screenshot of the offline dashboard: {screenshot}")
