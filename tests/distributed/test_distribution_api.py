"""kc.distribution in one process: the Keras 3 names, launcher detection, errors, and the split train
step (gradient entry, packed buffer, update entry) equal to the fused step for every optimizer."""
import subprocess
import sys

import numpy as np
import pytest

import kcompile as kc
from kcompile.frontend import distribution
from kcompile.frontend.training import collectives
from kcompile.ir.ops.collective import set_sum_hook


@pytest.fixture(autouse=True)
def _no_distribution(monkeypatch):
    monkeypatch.setattr(distribution, "_WORLD", None)
    monkeypatch.setattr(distribution, "_DISTRIBUTION", None)
    for name in ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)


def test_launchers_are_recognised_from_their_environment():
    assert distribution.detect_launcher({}) == (None, 1)
    assert distribution.detect_launcher({"PMI_RANK": "1", "PMI_SIZE": "4"}) == ("MPICH/Hydra or Intel MPI", 4)
    assert distribution.detect_launcher({"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "2"})[0] == "Open MPI"
    srun = {"SLURM_PROCID": "3", "SLURM_STEP_NUM_TASKS": "8"}
    assert distribution.detect_launcher(srun) == ("Slurm srun", 8)
    assert distribution.detect_launcher({"SLURM_PROCID": "0"}) == (None, 1)   # a batch script, not srun


def test_not_launched_by_mpi_is_one_process_without_importing_mpi4py():
    code = ("import sys, kcompile as kc; w = kc.distribution.initialize(); "
            "print(w.rank, w.size, kc.distribution.num_processes(), kc.distribution.process_id(), "
            "kc.distribution.local_rank(), kc.distribution.list_devices(), 'mpi4py' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["0", "1", "1", "0", "0", "['cpu:0']", "False"]


def test_launched_by_mpi_without_mpi4py_says_what_to_install(monkeypatch):
    monkeypatch.setenv("PMI_RANK", "0")
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)   # import mpi4py now raises ImportError
    with pytest.raises(RuntimeError, match=r"one of 2 processes.*kcompile\[distributed\]"):
        distribution.initialize()


def test_keras_api_checks_its_arguments():
    assert kc.distribution is distribution
    with pytest.raises(ValueError, match="num_processes=3"):
        distribution.initialize(num_processes=3)
    with pytest.raises(ValueError, match="devices must be"):
        distribution.DataParallel(devices=["cpu:0", "cpu:1"])
    with pytest.raises(NotImplementedError, match="device_mesh"):
        distribution.DataParallel(device_mesh="mesh")
    with pytest.raises(TypeError, match="DataParallel"):
        distribution.set_distribution("data_parallel")
    dp = distribution.DataParallel(devices=["cpu:0"])
    with dp.scope():
        assert distribution.distribution() is dp
    assert distribution.distribution() is None
    distribution.set_distribution(dp)
    assert distribution.distribution() is dp


def _model(optimizer, backend, with_bn=False):
    layers = [kc.Input((5,)), kc.layers.Dense(6, activation="tanh", kernel_regularizer=kc.regularizers.L2(0.01))]
    layers += [kc.layers.BatchNormalization(), kc.layers.Dropout(0.3, seed=7)] if with_bn else []
    model = kc.Sequential(layers + [kc.layers.Dense(2)])
    model.compile(optimizer=optimizer, loss="mse", metrics=["mae"], backend=backend)
    return model


def _fit_both(make, x, y, sw):
    plain = make()
    initial = [w.copy() for w in plain.get_weights()]
    h_plain = plain.fit(x, y, sample_weight=sw, batch_size=4, epochs=2, shuffle=False, verbose=0).history
    split = make()
    split.set_weights(initial)
    distribution.set_distribution(distribution.DataParallel())
    h_split = split.fit(x, y, sample_weight=sw, batch_size=4, epochs=2, shuffle=False, verbose=0).history
    distribution.set_distribution(None)
    return plain, split, h_plain, h_split


OPTIMIZERS = ["sgd", "rmsprop", "adam", "adamw", "adagrad", "adadelta", "adamax", "ftrl", "lion", "nadam",
              lambda: kc.optimizers.SGD(0.1, momentum=0.9, nesterov=True, clipnorm=0.5)]


@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=lambda o: o if isinstance(o, str) else "sgd_clipnorm")
def test_split_step_equals_the_fused_step_for_every_optimizer(optimizer):
    rs = np.random.RandomState(1)
    x, y, sw = rs.randn(11, 5).astype("f4"), rs.randn(11, 2).astype("f4"), rs.uniform(0.5, 2, 11).astype("f4")
    make = lambda: _model(optimizer() if callable(optimizer) else optimizer, "reference")  # noqa: E731
    plain, split, h_plain, h_split = _fit_both(make, x, y, sw)
    for a, b in zip(plain.get_weights(), split.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert h_plain.keys() == h_split.keys()
    for key in h_plain:
        np.testing.assert_allclose(h_plain[key], h_split[key], rtol=1e-5, err_msg=key)


def test_split_step_native_with_batch_norm_and_dropout_equals_the_fused_step():
    rs = np.random.RandomState(2)
    x, y, sw = rs.randn(10, 5).astype("f4"), rs.randn(10, 2).astype("f4"), rs.uniform(0.5, 2, 10).astype("f4")
    plain, split, h_plain, h_split = _fit_both(lambda: _model(kc.optimizers.Adam(0.05), "native", True), x, y, sw)
    for a, b in zip(plain.get_weights(), split.get_weights()):   # moving statistics included
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h_plain["loss"], h_split["loss"], rtol=1e-5)


def test_synchronized_batch_norm_uses_the_statistics_summed_over_processes(monkeypatch):
    """Two processes holding the same shard (the hook doubles every sum): the global statistics equal
    the local ones, so synchronized and local BatchNormalization agree, moving statistics included."""
    x = np.random.RandomState(3).randn(6, 4).astype("f4") * 3 + 1
    local, synced = (kc.layers.BatchNormalization(synchronized=s) for s in (False, True))
    want = local(x, training=True).numpy()
    sums = []
    monkeypatch.setattr(distribution, "_DISTRIBUTION", type("Fake", (), {"world": distribution.World(size=2)})())
    previous = set_sum_hook(lambda buf: (sums.append(buf.shape), buf.__imul__(2)))
    try:
        got = synced(x, training=True).numpy()
    finally:
        set_sum_hook(previous)
    assert sums == [(1, 12)]   # one message per layer: sum of x, of x*x and the count, per channel
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    for a, b in zip(local.get_weights(), synced.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


class _NeverDone:
    def Test(self):
        return False


def test_a_collective_that_never_completes_raises_after_the_deadline(monkeypatch):
    monkeypatch.setenv("KCOMPILE_DIST_TIMEOUT", "0.2")
    coll = collectives.Collectives(distribution.World(rank=1, size=2))
    monkeypatch.setattr(coll, "_abort_at_exit", lambda: None)   # (in a real job: MPI_Abort at exit)
    with pytest.raises(collectives.DistributedError, match=r"process 1 of 2: allreduce of x did not complete within 0.2 s"):
        coll._wait(_NeverDone(), "allreduce of x")


def test_a_train_step_override_is_refused_under_data_parallel():
    class Custom(kc.Model):
        def train_step(self, data):
            return super().train_step(data)
    inputs = kc.Input((3,))
    model = Custom(inputs, kc.layers.Dense(1)(inputs))
    model.compile("sgd", "mse", backend="reference")
    distribution.set_distribution(distribution.DataParallel())
    with pytest.raises(NotImplementedError, match="overrides train_step"):
        model.fit(np.ones((4, 3), np.float32), np.ones((4, 1), np.float32), verbose=0)


def test_train_on_batch_under_data_parallel_checks_the_model_first_and_matches_plain():
    rs = np.random.RandomState(4)
    x, y = rs.randn(6, 5).astype("f4"), rs.randn(6, 2).astype("f4")
    plain = _model("adam", "reference")
    split = _model("adam", "reference")
    split.set_weights(plain.get_weights())
    want = plain.train_on_batch(x, y, return_dict=True)
    distribution.set_distribution(distribution.DataParallel())
    got = split.train_on_batch(x, y, return_dict=True)
    assert split._data_parallel.started
    np.testing.assert_allclose(got["loss"], want["loss"], rtol=1e-6)
    for a, b in zip(plain.get_weights(), split.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
