"""Measure the commits asv has no results for, then publish a dashboard that renders
offline.

asv's page loads jQuery, flot, stupidtable, blueimp-md5 and bootstrap from CDNs, so
with no internet it shows only "One or more external (JavaScript) dependencies of
airspeed velocity failed to load".  After ``asv publish`` this script copies those
files, from their npm packages at the versions the page names, into the html
folder's ``vendor/`` and points the page there.  ``npm pack`` fetches each package
once into the user's cache folder, so later publishes need no network.

    python tools/asv_dashboard.py                        # last 20 commits of main
    python tools/asv_dashboard.py main~50..main          # any asv range
    python tools/asv_dashboard.py --working-tree --bench Softmax
    python tools/asv_dashboard.py --publish-only
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import platformdirs
from asv.config import Config
from asv.machine import MachineCollection

# The CDN files asv's page loads: URL pattern, npm package, file in the package.  The
# groups of the URL fill in the package's version and the file's name.  The npm flot
# has no minified files; stupidtable's 1.0.1 is not on npm, 1.1.3 is the same plugin.
SOURCES = [
    (r"https://code\.jquery\.com/jquery-(?P<version>[\d.]+)\.min\.js",
     "jquery@{version}", "dist/jquery.min.js"),
    (r"https://cdnjs\.cloudflare\.com/ajax/libs/flot/(?P<version>[\d.]+)/(?P<name>\S+)\.min\.js",
     "flot@{version}", "{name}.js"),
    (r"https://cdnjs\.cloudflare\.com/ajax/libs/stupidtable/[\d.]+/stupidtable\.min\.js",
     "stupid-table-plugin@1.1.3", "stupidtable.min.js"),
    (r"https://cdnjs\.cloudflare\.com/ajax/libs/blueimp-md5/(?P<version>[\d.]+)/(?P<name>\S+)",
     "blueimp-md5@{version}", "{name}"),
    (r"https://cdn\.jsdelivr\.net/npm/(?P<package>[\w.-]+)@(?P<version>[\d.]+)/(?P<name>\S+)",
     "{package}@{version}", "{name}"),
]
# A script or stylesheet tag whose address is not on this host.
EXTERNAL_TAG = re.compile(
    r'<(?:script|link rel="stylesheet")[^>]*?(?:src|href)="(https?://[^"]+)"[^>]*>')
# Attributes that only make sense for a CDN: the npm tarball's checksum is npm's check.
CDN_ATTRIBUTES = re.compile(r'\s(?:integrity|crossorigin|referrerpolicy)="[^"]*"')
CSS_URL = re.compile(r"url\(['\"]?([^'\")?#]+)")
ASV = [sys.executable, "-m", "asv"]


def npm_file(url, page):
    """``(name@version, file in the package)`` of a CDN ``url`` that ``page`` loads."""
    for pattern, spec, name in SOURCES:
        if match := re.fullmatch(pattern, url):
            return spec.format(**match.groupdict()), name.format(**match.groupdict())
    sys.exit(f"error: {page.name} loads {url}; expected one of the CDN files in SOURCES "
             f"of {__file__} (add its npm package there)")


def npm_package(spec, cache):
    """The path of the npm tarball ``name@version`` in ``cache``, fetched if missing."""
    name, version = spec.rsplit("@", 1)
    tarball = cache / f"{name}-{version}.tgz"
    if tarball.exists():
        return tarball
    if shutil.which("npm") is None:
        sys.exit(f"error: {spec} is not in {cache} and npm is not on PATH to fetch it "
                 f"(install npm, or copy {tarball.name} there)")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:  # no half-written tarball in cache
        done = subprocess.run(["npm", "pack", "--loglevel=error", "--pack-destination", tmp, spec],
                              capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"error: `npm pack {spec}` failed:\n{done.stderr}")
        os.replace(Path(tmp, done.stdout.split()[-1]), tarball)
    return tarball


def extract(tarball, name, dest):
    """Copy ``name`` (a path inside the npm package), the files a stylesheet points to,
    and the package's licence files to ``dest``."""
    with tarfile.open(tarball) as tar:
        members = {m.name.removeprefix("package/"): m for m in tar.getmembers() if m.isfile()}
        todo = [name] + [n for n in members if re.fullmatch(r"LICEN[CS]E[\w.]*", n)]
        while todo:
            path = todo.pop()
            if path not in members:
                sys.exit(f"error: {tarball.name} has no file {path}")
            data = tar.extractfile(members[path]).read()
            if path.endswith(".css"):  # its fonts and images
                todo += [os.path.normpath(os.path.join(os.path.dirname(path), ref))
                         for ref in set(CSS_URL.findall(data.decode()))
                         if not ref.startswith("data:")]
            (dest / path).parent.mkdir(parents=True, exist_ok=True)
            (dest / path).write_bytes(data)


def vendor(html_dir, cache):
    """Serve the CDN files of every page in ``html_dir`` from ``html_dir/vendor``."""
    for page in html_dir.glob("*.html"):
        text = page.read_text()
        for tag in EXTERNAL_TAG.finditer(text):
            url = tag.group(1)
            spec, name = npm_file(url, page)
            extract(npm_package(spec, cache), name, html_dir / "vendor" / spec)
            local = CDN_ATTRIBUTES.sub("", tag.group(0)).replace(url, f"vendor/{spec}/{name}")
            text = text.replace(tag.group(0), local)
        page.write_text(text)


def _positive(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of commits >= 1, got {text!r}")
    return int(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("range", nargs="?",
                        help="asv range of commits to measure (default: the last --last "
                             "commits of the config's first branch); measured ones are skipped")
    parser.add_argument("--last", type=_positive, default=20, metavar="N",
                        help="without a range, measure the last N commits (default 20)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--working-tree", action="store_true",
                      help="measure the checkout in this interpreter instead "
                           "(asv run --python=same), recorded under HEAD's hash; graphed "
                           "when HEAD is on the config's branches")
    mode.add_argument("--publish-only", action="store_true", help="measure nothing")
    parser.add_argument("--bench", action="append", default=[], metavar="REGEX",
                        help="only the benchmarks matching REGEX (repeatable)")
    parser.add_argument("--config", type=Path,
                        default=Path(__file__).resolve().parents[1] / "asv.conf.json",
                        help="asv config file (default: the repository's)")
    parser.add_argument("--asset-cache", type=Path,
                        default=Path(platformdirs.user_cache_dir("fastnet"), "asv-vendor"),
                        help="where npm tarballs are kept (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.range and (args.working_tree or args.publish_only):
        parser.error("a range measures commits; drop it with --working-tree or --publish-only")
    if not args.config.is_file():
        parser.error(f"expected an asv config file at {args.config}")
    conf = Config.load(args.config)
    config = ["--config", str(args.config)]

    status = 0
    if not args.publish_only:
        if not Path(MachineCollection.get_machine_file_path()).exists():
            subprocess.run(ASV + ["machine", "--yes"] + config, check=True)
        benches = [arg for regex in args.bench for arg in ("--bench", regex)]
        env = None
        if args.working_tree:
            commits = ["--python=same", "--set-commit-hash", "HEAD"]
            # The checkout's fastnet, not whichever is installed: asv passes
            # ASV_PYTHONPATH, not PYTHONPATH, to the benchmarks.
            checkout = (args.config.resolve().parent / conf.repo).resolve()
            env = dict(os.environ, ASV_PYTHONPATH=os.pathsep.join(
                filter(None, [str(checkout), os.environ.get("ASV_PYTHONPATH")])))
        else:
            branch = conf.branches[0] or "HEAD"
            commits = [args.range or f"{branch}~{args.last}..{branch}", "--skip-existing-commits"]
        # asv exits with 2 when a benchmark fails: publish what was measured anyway.
        run = subprocess.run(ASV + ["run", "--show-stderr"] + commits + benches + config,
                             env=env)
        status = run.returncode
    subprocess.run(ASV + ["publish"] + config, check=True)
    html_dir = args.config.resolve().parent / conf.html_dir
    vendor(html_dir, args.asset_cache)
    print(f"dashboard: {html_dir / 'index.html'} (offline; `asv preview` serves it)")
    return status


if __name__ == "__main__":
    sys.exit(main())
