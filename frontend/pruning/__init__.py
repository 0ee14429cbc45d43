"""kc.pruning: magnitude pruning with TF-MOT's API (tfmot.sparsity.keras) on kcompile models.

prune_low_magnitude wraps Dense, Conv1D, Conv2D and Embedding layers; schedules ConstantSparsity and
PolynomialDecay; callbacks UpdatePruningStep and PruningSummaries; strip_pruning removes the
wrappers (zeros in place); shrink removes all-zero neurons/filters and rewires the next layer.
Structures: unstructured, block (block_size), m-by-n (sparsity_m_by_n), whole neurons/filters
(block_size=(-1, 1)).
"""
from .api import prune_low_magnitude, strip_pruning  # noqa: F401
from .callbacks import PruningSummaries, UpdatePruningStep, read_summaries  # noqa: F401
from .shrink import shrink  # noqa: F401
from .schedules import ConstantSparsity, PolynomialDecay, PruningSchedule  # noqa: F401
from .wrapper import PrunableLayer, PruneLowMagnitude  # noqa: F401
