"""The op set. Importing this package registers every op in kcompile.ir.registry.OPS."""
from . import elementwise, reduce, linalg, shape, index, nn, random, fused, quant, control, sparse  # noqa: F401
from . import qat  # noqa: E402,F401  (fake_quantize: quantization-aware training)
from . import conv_transpose  # noqa: E402,F401  (Keras transposed convolution)
