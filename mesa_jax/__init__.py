"""mesa_jax: Mesa's API, compiled with JAX.

Swap ``import mesa`` for ``import mesa_jax as mesa``; each ``Model.step`` is traced once
and jitted. Contents:

* ``Model``, ``Agent``, ``AgentSet`` — the core (``model.py``, ``agent.py``);
* ``DataCollector`` — reporters evaluated on device, Polars frames (``datacollection.py``);
* ``discrete_space`` — cell spaces (``OrthogonalMooreGrid``, ``CellAgent``);
* ``space`` — legacy grids (``MultiGrid``);
* ``set_jit`` — run eagerly (also ``MESA_JAX_DISABLE_JIT=1``);
* ``UnsupportedError`` — what a step that cannot be compiled raises.
"""

import os as _os

from . import _malloc  # noqa: F401  (allocator settings: before JAX starts its threads)

import jax as _jax

from . import discrete_space, space
from .agent import Agent, AgentSet
from .datacollection import DataCollector
from .errors import MesaJaxError, UnsupportedError
from .model import Model, set_jit
from ._activation import set_activation
from ._claims import set_claim_rounds
from .batchrunner import batch_run



def diagnostics(model) -> dict:
    """Counters the compiled steps of ``model`` kept so far (e.g. ``unresolved_claims``:
    agents whose move into a capacity-limited cell still collided after the last round)."""
    return dict(model.__dict__.get("_mj_diagnostics", {}))


if _os.environ.get("MESA_JAX_CACHE_DIR"):
    _jax.config.update("jax_compilation_cache_dir", _os.environ["MESA_JAX_CACHE_DIR"])
    _jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)

__all__ = [
    "Agent",
    "AgentSet",
    "DataCollector",
    "MesaJaxError",
    "Model",
    "UnsupportedError",
    "batch_run",
    "diagnostics",
    "discrete_space",
    "set_activation",
    "set_claim_rounds",
    "set_jit",
    "space",
]
__version__ = "0.1.0"
