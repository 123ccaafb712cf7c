import os
import sys

os.environ.setdefault("MESA_JAX_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", ".jax_cache"))
sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import pytest  # noqa: E402

import mesa_jax  # noqa: E402


@pytest.fixture
def eager():
    """Run models created inside the test eagerly (Mesa's sequential semantics)."""
    mesa_jax.set_jit(False)
    yield
    mesa_jax.set_jit(True)
