"""Mesa's ``mesa.experimental`` namespace: the parts mesa_jax provides."""

from . import continuous_space

__all__ = ["continuous_space"]
