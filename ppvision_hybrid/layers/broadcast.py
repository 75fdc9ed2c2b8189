"""An add whose operands broadcast, in the form each mode runs fastest."""
from .fast_ops import eager_execution

__all__ = ["broadcast_add"]


def broadcast_add(a, b, shape):
    """``a + b``, both broadcast to ``shape``. Paddle's eager CPU add is several times slower when
    an operand broadcasts than an ``expand`` (a copy) and an add of equal shapes, so in eager mode
    both are expanded first; graphs keep the broadcasting add, which measured faster there
    (docs/benchmarks.md, "Session 13")."""
    if eager_execution():
        return a.expand(shape) + b.expand(shape)
    return a + b
