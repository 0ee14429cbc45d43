"""The op set. Importing this package registers every op in kcompile.ir.registry.OPS."""
from . import elementwise, reduce, linalg, shape, index, nn, random, control  # noqa: F401
