"""For every test: fastnet's user cache (parsed datasets, downloads) in a folder of this
test session, never the user's own.  A test that parses a made-up MNIST would otherwise
leave it in ``~/.cache/fastnet`` for every later ``load_mnist()`` to find."""
import pytest


@pytest.fixture(autouse=True, scope="session")
def private_user_cache(tmp_path_factory):
    patch = pytest.MonkeyPatch()
    patch.setenv("FASTNET_CACHE_DIR", str(tmp_path_factory.mktemp("fastnet-user-cache")))
    yield
    patch.undo()
