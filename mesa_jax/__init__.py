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

import jax as _jax

from . import discrete_space, space
from .agent import Agent, AgentSet
from .datacollection import DataCollector
from .errors import MesaJaxError, UnsupportedError
from .model import Model, set_jit
from ._activation import set_activation
from .batchrunner import batch_run

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
    "discrete_space",
    "set_activation",
    "set_jit",
    "space",
]
__version__ = "0.1.0"
