"""kcompile.ir: the static graph IR. Imports nothing else of kcompile."""
from .dtypes import DType, dtype, f32, f64, i8, u8, i32, i64, bool_, ALL_DTYPES
from .types import TensorType, BATCH
from .errors import IRError, ShapeError, VerificationError, ParseError
from .registry import OPS, OpDef, Attr, defop, get_op, attrs_equal, ops_with
from .graph import Value, Node, Graph
from .builder import GraphBuilder
from .verifier import verify
from .signature import SignatureError, check_batch_size, check_input_dtype, check_signature
from . import ops  # noqa: F401  (registers the op set)
from .text import print_graph, parse_graph

__all__ = [
    "DType", "dtype", "f32", "f64", "i8", "u8", "i32", "i64", "bool_", "ALL_DTYPES", "TensorType", "BATCH",
    "IRError", "ShapeError", "VerificationError", "ParseError", "OPS", "OpDef", "Attr", "defop", "get_op", "ops_with",
    "attrs_equal", "Value", "Node", "Graph", "GraphBuilder", "verify", "print_graph", "parse_graph",
    "SignatureError", "check_signature", "check_batch_size", "check_input_dtype",
]
