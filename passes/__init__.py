"""kcompile.passes: Graph -> Graph transformations (autodiff, canonicalization) and the pass manager."""
from .manager import PASSES, Pass, PassError, PassManager, get_pass, parse_pipeline, register_pass
from .autodiff import GRADIENT_RULES, GradientError, backprop, grad_graph
from .canonicalize import canonicalize, cse, dce, fold_constants, simplify
from .rewrite import Rule, rewrite_graph

__all__ = [
    "PASSES", "Pass", "PassError", "PassManager", "get_pass", "parse_pipeline", "register_pass",
    "GRADIENT_RULES", "GradientError", "backprop", "grad_graph",
    "canonicalize", "cse", "dce", "fold_constants", "simplify", "Rule", "rewrite_graph",
]
