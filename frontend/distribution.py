"""kc.distribution: Keras 3's distribution API, on MPI processes (one process = one device).

`initialize()` joins the MPI world that mpiexec / mpirun / srun started (rank, size and local rank
come from MPI; the launcher's environment only tells us that there is a world to join), and falls
back to one process when nothing launched us. mpi4py is imported only then, so the rest of
kcompile never needs it. `set_distribution(DataParallel())` makes `fit` shard every global batch
across the processes (frontend/training/data_parallel.py explains the step).
"""
from __future__ import annotations

import contextlib
import os

# Launchers and the variables that say "you are one of several processes": (rank, size, local rank)
_LAUNCHERS = {
    "MPICH/Hydra or Intel MPI": ("PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"),
    "Open MPI": ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"),
    "PMIx": ("PMIX_RANK", "PMIX_SIZE", "PMIX_LOCAL_RANK"),
    "Slurm srun": ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_LOCALID"),
}
INSTALL_HINT = 'pip install "kcompile[distributed]" (mpi4py and the MPICH wheel)'


class World:
    """The processes training together: this one's rank and local rank, the size, the communicator."""

    def __init__(self, rank=0, size=1, local_rank=0, comm=None, launcher=None):
        self.rank, self.size, self.local_rank, self.comm, self.launcher = rank, size, local_rank, comm, launcher

    def __repr__(self):
        return f"World(rank={self.rank}, size={self.size}, local_rank={self.local_rank}, launcher={self.launcher!r})"


_WORLD: World | None = None
_DISTRIBUTION = None


def detect_launcher(environ=None):
    """(launcher name, size) when an MPI launcher or srun started this process, else (None, 1)."""
    env = os.environ if environ is None else environ
    for name, (rank_var, size_var, _) in _LAUNCHERS.items():
        if rank_var in env and size_var in env:
            return name, int(env[size_var])
    return None, 1


def initialize(job_addresses=None, num_processes=None, process_id=None):
    """Join the MPI world (Keras 3's signature; the arguments, when given, are checked against MPI's).

    Not launched by mpiexec/mpirun/srun: one process, no MPI needed. Launched but mpi4py or the MPI
    library cannot be loaded: a RuntimeError that says what to install (never a silent single process,
    which would train N unrelated copies)."""
    global _WORLD
    launcher, size = detect_launcher()
    if launcher is None or size <= 1:
        _WORLD = World(launcher=launcher)
    else:
        _WORLD = _join_mpi(launcher, size)
    for name, given, actual in (("num_processes", num_processes, _WORLD.size), ("process_id", process_id, _WORLD.rank)):
        if given is not None and int(given) != actual:
            raise ValueError(f"kc.distribution.initialize: {name}={given} but the {launcher or 'local'} launch "
                             f"gives {actual}")
    return _WORLD


def _join_mpi(launcher, size) -> World:
    try:
        from mpi4py import MPI
    except ImportError as e:   # mpi4py missing, or present but its MPI library is not
        raise RuntimeError(f"this process was started by {launcher} as one of {size} processes, but MPI cannot "
                           f"be used from Python ({e}); install it: {INSTALL_HINT}") from None
    comm = MPI.COMM_WORLD
    if comm.Get_size() != size:
        raise RuntimeError(f"{launcher} announced {size} processes but MPI's world has {comm.Get_size()}: mpi4py "
                           "is linked against a different MPI than the launcher's (use the mpiexec of the MPI "
                           "mpi4py was built with)")
    local = comm.Split_type(MPI.COMM_TYPE_SHARED)
    return World(comm.Get_rank(), comm.Get_size(), local.Get_rank(), comm, launcher)


def world() -> World:
    """The world, initializing on first use."""
    return _WORLD if _WORLD is not None else initialize()


def process_id() -> int:
    return world().rank


def num_processes() -> int:
    return world().size


def local_rank() -> int:
    """This process's rank among the processes on its host (pin threads or a GPU by it)."""
    return world().local_rank


def list_devices(device_type=None) -> list:
    """One device per process: ["cpu:0", "cpu:1", ...] (each process computes on its own CPU cores)."""
    if device_type not in (None, "cpu", "CPU"):
        raise ValueError(f"kc.distribution.list_devices: only 'cpu' devices exist here, got {device_type!r}")
    return [f"cpu:{i}" for i in range(num_processes())]


class DataParallel:
    """Replicate the model on every process; each process trains on its shard of every global batch.

    devices: the processes' devices (list_devices()); other device lists are refused, as no other
    placement exists here. Gradients are averaged over all samples of the global batch, so training
    matches one process given the same global batch (see the README's "Distributed training").
    """

    def __init__(self, device_mesh=None, devices=None, auto_shard_dataset=True):
        if device_mesh is not None:
            raise NotImplementedError("kc.distribution.DataParallel: device_mesh is not supported; one process "
                                      "is one device, pass devices= or nothing")
        expected = list_devices()
        if devices is not None and list(devices) != expected:
            raise ValueError(f"kc.distribution.DataParallel: devices must be this job's processes {expected}, "
                             f"got {list(devices)}")
        self.devices = expected
        self.world = world()
        self.auto_shard_dataset = auto_shard_dataset

    @property
    def batch_dim_name(self) -> str:
        return "batch"

    @contextlib.contextmanager
    def scope(self):
        """Within the block this distribution is the active one (Keras 3's `with distribution.scope()`)."""
        global _DISTRIBUTION
        previous, _DISTRIBUTION = _DISTRIBUTION, self
        try:
            yield self
        finally:
            _DISTRIBUTION = previous

    def __repr__(self):
        return f"DataParallel(devices={self.devices})"


def set_distribution(value):
    """Make `value` (a DataParallel, or None for plain single-process training) the global distribution."""
    global _DISTRIBUTION
    if value is not None and not isinstance(value, DataParallel):
        raise TypeError(f"kc.distribution.set_distribution: expected a DataParallel or None, got {type(value).__name__}"
                        " (model parallelism is not supported)")
    _DISTRIBUTION = value


def distribution():
    """The active distribution, or None."""
    return _DISTRIBUTION
