"""The op set. Importing this package registers every op in kcompile.ir.registry.OPS."""
from . import elementwise, reduce, linalg, shape, index, nn, random, fused, quant, control, sparse  # noqa: F401
from . import qat  # noqa: E402,F401  (fake_quantize: quantization-aware training)
from . import along_axis  # noqa: E402,F401  (cumsum, top_k)
from . import image  # noqa: E402,F401  (resize, affine_transform: image augmentation)
from . import collective  # noqa: E402,F401  (cross_process_sum: data-parallel training)
