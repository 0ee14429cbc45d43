"""The op set. Importing this package registers every op in kcompile.ir.registry.OPS."""
from . import elementwise, reduce, linalg, shape, index, nn, random, fused, quant, control, sparse  # noqa: F401
from . import qat  # noqa: E402,F401  (fake_quantize: quantization-aware training)
from . import along_axis  # noqa: E402,F401  (cumsum, top_k)
from . import image  # noqa: E402,F401  (resize, affine_transform: image augmentation)
from . import collective  # noqa: E402,F401  (cross_process_sum: data-parallel training)
from . import conv_transpose  # noqa: E402,F401  (Keras transposed convolution)
from . import sparse_int8  # noqa: E402,F401  (sparse_qmatmul: pruned int8 kernels)
from . import patches  # noqa: E402,F401  (im2col: pruned convolutions as sparse matmuls)
