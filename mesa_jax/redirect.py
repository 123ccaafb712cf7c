"""Make ``import mesa`` resolve to mesa_jax, so unmodified Mesa files run compiled.

``redirect()`` is a context manager (or, with ``permanent=True``, a switch) that installs
an import hook for ``mesa`` and ``mesa.<submodule>``:

* ``mesa``, ``mesa.agent``, ``mesa.model``, ``mesa.datacollection``, ``mesa.space``,
  ``mesa.discrete_space[.*]``, ``mesa.batchrunner`` -> the mesa_jax modules;
* ``mesa.examples.*`` -> Mesa's own example files from the installed ``mesa`` package,
  executed with their ``mesa`` imports resolved to mesa_jax (the umbrella packages
  ``mesa.examples``, ``.basic`` and ``.advanced`` are created empty, so that importing one
  example does not import them all);
* anything else under ``mesa`` -> ImportError naming the module.

Inside the ``with`` block Mesa's modules are swapped out of ``sys.modules``; on exit the
real ones come back, and modules imported inside keep using mesa_jax.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types

__all__ = ["redirect", "real_mesa_dir"]

_ALIASES = {
    "mesa": "mesa_jax",
    "mesa.agent": "mesa_jax.agent",
    "mesa.model": "mesa_jax.model",
    "mesa.datacollection": "mesa_jax.datacollection",
    "mesa.space": "mesa_jax.space",
    "mesa.discrete_space": "mesa_jax.discrete_space",
    "mesa.batchrunner": "mesa_jax.batchrunner",
    "mesa.experimental": "mesa_jax.experimental",
    "mesa.experimental.continuous_space": "mesa_jax.experimental.continuous_space",
    "mesa.experimental.continuous_space.continuous_space": "mesa_jax.experimental.continuous_space",
    "mesa.experimental.continuous_space.continuous_space_agents": "mesa_jax.experimental.continuous_space",
}
_REAL_FILES = {"mesa.mesa_logging"}
_UMBRELLAS = {"mesa.examples", "mesa.examples.basic", "mesa.examples.advanced"}
_stash: dict = {}


def real_mesa_dir() -> str:
    """The directory of the installed (real) Mesa package."""
    spec = importlib.machinery.PathFinder.find_spec("mesa")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the real Mesa package is not installed (pip install mesa)")
    return list(spec.submodule_search_locations)[0]


class _Alias(importlib.abc.Loader):
    def __init__(self, target):
        self.target = target

    def create_module(self, spec):
        return importlib.import_module(self.target)

    def exec_module(self, module):
        pass


class _Umbrella(importlib.abc.Loader):
    def create_module(self, spec):
        return None

    def exec_module(self, module):
        module.__doc__ = "mesa examples (loaded one by one under mesa_jax)"


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self):
        self.root = real_mesa_dir()

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "mesa" and not fullname.startswith("mesa."):
            return None
        if fullname in _ALIASES:
            return importlib.util.spec_from_loader(fullname, _Alias(_ALIASES[fullname]))
        if fullname.startswith("mesa.discrete_space."):
            return importlib.util.spec_from_loader(fullname, _Alias("mesa_jax.discrete_space"))
        rel = fullname.split(".")[1:]
        base = os.path.join(self.root, *rel)
        if fullname in _UMBRELLAS:
            spec = importlib.util.spec_from_loader(fullname, _Umbrella(), is_package=True)
            spec.submodule_search_locations = [base]
            return spec
        if fullname.startswith("mesa.examples.") or fullname in _REAL_FILES:
            if os.path.isdir(base):
                init = os.path.join(base, "__init__.py")
                return importlib.util.spec_from_file_location(
                    fullname, init, submodule_search_locations=[base])
            if os.path.exists(base + ".py"):
                return importlib.util.spec_from_file_location(fullname, base + ".py")
            return None
        raise ImportError(
            f"mesa_jax does not provide `{fullname}` yet; run this model with Mesa itself, "
            f"or see docs/porting.md for what is supported")


def _is_mesa(name):
    return name == "mesa" or name.startswith("mesa.")


def _install():
    finder = _Finder()
    sys.meta_path.insert(0, finder)
    saved = {k: sys.modules.pop(k) for k in [k for k in sys.modules if _is_mesa(k)]}
    sys.modules.update(_stash)
    importlib.invalidate_caches()
    return finder, saved


def _uninstall(finder, saved):
    with contextlib.suppress(ValueError):
        sys.meta_path.remove(finder)
    for k in [k for k in sys.modules if _is_mesa(k)]:
        _stash[k] = sys.modules.pop(k)
    sys.modules.update(saved)


@contextlib.contextmanager
def redirect():
    """Within the block, ``import mesa`` (and its submodules) gives mesa_jax."""
    finder, saved = _install()
    try:
        yield
    finally:
        _uninstall(finder, saved)


def install_permanently() -> None:
    """Redirect ``import mesa`` to mesa_jax for the rest of the process."""
    _install()


def mesa_example(dotted: str) -> types.ModuleType:
    """Import one of Mesa's example modules with ``mesa`` resolved to mesa_jax.

    Arguments:
        dotted: e.g. ``"mesa.examples.basic.boltzmann_wealth_model.model"``.
    """
    with redirect():
        return importlib.import_module(dotted)
