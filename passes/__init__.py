"""kcompile.passes: Graph -> Graph transformations (autodiff, canonicalization) and the pass manager."""
from .autodiff import GRADIENT_RULES, GradientError, backprop, grad_graph

__all__ = ["GRADIENT_RULES", "GradientError", "backprop", "grad_graph"]
