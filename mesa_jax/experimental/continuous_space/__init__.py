"""Continuous space (Mesa's ``mesa.experimental.continuous_space``), compiled.

Positions are a float column ``_mj_xy`` of each agent class living in the space. Inside a
compiled step radius queries are answered from a cell list (cells at least as wide as
the largest radius asked, fixed-capacity buckets grown and replayed on overflow), not by
comparing all pairs.
"""

from ._space import ContinuousSpace, ContinuousSpaceAgent

__all__ = ["ContinuousSpace", "ContinuousSpaceAgent"]
