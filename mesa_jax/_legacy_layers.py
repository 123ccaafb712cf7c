"""Mesa's legacy ``PropertyLayer`` (``mesa.space.PropertyLayer``): a named numpy array per
grid cell, with Mesa's methods and checks. Eager (host) only."""

from __future__ import annotations

import inspect
from warnings import warn

import numpy as np

__all__ = ["PropertyLayer", "is_single_argument_function", "ufunc_requires_additional_input"]


def is_single_argument_function(function) -> bool:
    """Whether ``function`` is a plain Python function of exactly one parameter."""
    if not inspect.isfunction(function):
        return False
    return len(inspect.signature(function).parameters) == 1


def ufunc_requires_additional_input(ufunc) -> bool:
    """Whether a numpy ufunc takes a second operand."""
    return ufunc.nargs > 1


def _cell_mask(data, condition):
    """A boolean array of ``data``'s shape from a ufunc or an element-wise function."""
    if isinstance(condition, np.ufunc):
        return condition(data)
    return np.vectorize(condition)(data)


class PropertyLayer:
    """A ``width x height`` array of values, one per cell, with a name (Mesa's legacy layer)."""

    def __init__(self, name: str, width: int, height: int, default_value, dtype=np.float64):
        """Create the layer filled with ``default_value``.

        Raises:
            ValueError: width or height not a positive int (Mesa's message).
        """
        self.name = name
        self.width = width
        self.height = height
        ok_w = isinstance(width, int) and width >= 1
        ok_h = isinstance(height, int) and height >= 1
        if not (ok_w and ok_h):
            raise ValueError(
                f"Width and height must be positive integers, got {width} and {height}.")
        if not isinstance(default_value, dtype):
            warn(
                f"Default value {default_value} ({type(default_value).__name__}) might not be "
                f"best suitable with dtype={dtype.__name__}.",
                UserWarning,
                stacklevel=2,
            )
        self.data = np.full((width, height), default_value, dtype=dtype)

    def set_cell(self, position, value):
        """Set one cell."""
        self.data[position] = value

    def set_cells(self, value, condition=None):
        """Set every cell, or those where ``condition`` (ufunc or element function) holds."""
        if condition is None:
            np.copyto(self.data, value)
            return
        where = _cell_mask(self.data, condition)
        if not isinstance(where, np.ndarray) or where.shape != self.data.shape:
            raise ValueError(
                "Result of condition must be a NumPy array with the same shape as the grid.")
        np.copyto(self.data, value, where=where)

    def modify_cell(self, position, operation, value=None):
        """Apply ``operation`` to one cell: a one-argument function, or a ufunc with ``value``."""
        old = self.data[position]
        if is_single_argument_function(operation):
            self.data[position] = operation(old)
        elif value is not None:
            self.data[position] = operation(old, value)
        else:
            raise ValueError("Invalid operation or missing value for NumPy ufunc.")

    def modify_cells(self, operation, value=None, condition_function=None):
        """Apply ``operation`` to every cell (where ``condition_function`` holds, if given)."""
        if condition_function is None:
            where = np.ones_like(self.data, dtype=bool)
        else:
            where = _cell_mask(self.data, condition_function)
        if isinstance(operation, np.ufunc):
            if ufunc_requires_additional_input(operation):
                if value is None:
                    raise ValueError("This ufunc requires an additional input value.")
                new = operation(self.data, value)
            else:
                new = operation(self.data)
        else:
            new = np.vectorize(operation)(self.data)
        self.data = np.where(where, new, self.data)

    def select_cells(self, condition, return_list=True):
        """Cells where ``condition(data)`` holds: a list of ``(x, y)`` or the boolean array."""
        where = condition(self.data)
        if not return_list:
            return where
        return list(zip(*np.where(where)))

    def aggregate_property(self, operation):
        """``operation(data)`` (e.g. ``np.sum``)."""
        return operation(self.data)

    def __repr__(self):
        return f"PropertyLayer({self.name!r}, {self.width}x{self.height})"
