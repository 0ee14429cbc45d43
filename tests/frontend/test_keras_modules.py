"""Keras's module names import as modules (`from kcompile.layers import Dense`), are the same objects
as the `kc.<name>` attributes, and hold the names Keras's book programs use."""
import importlib
import subprocess
import sys

import numpy as np
import pytest

import kcompile as kc

# module -> names the book programs (Deep Learning with Python, Keras 3 guides) import from it
BOOK_NAMES = {
    "layers": "Dense Conv2D MaxPooling2D Flatten Dropout Embedding LSTM GRU SimpleRNN Input BatchNormalization "
              "GlobalAveragePooling2D SeparableConv2D Rescaling Concatenate Add Layer Activation Conv1D "
              "MaxPooling1D GlobalMaxPooling1D LayerNormalization Reshape",
    "models": "Sequential Model load_model clone_model",
    "callbacks": "Callback EarlyStopping ModelCheckpoint ReduceLROnPlateau CSVLogger LambdaCallback History "
                 "ProgbarLogger TerminateOnNaN LearningRateScheduler BackupAndRestore",
    "datasets": "mnist imdb reuters boston_housing cifar10 cifar100",
    "utils": "to_categorical normalize plot_model model_to_dot set_random_seed PyDataset Sequence pad_sequences "
             "timeseries_dataset_from_array split_dataset get_file",
    "optimizers": "SGD RMSprop Adam AdamW Adagrad Nadam Adamax Adadelta Ftrl Lion Optimizer get schedules",
    "optimizers.schedules": "ExponentialDecay PiecewiseConstantDecay InverseTimeDecay CosineDecay PolynomialDecay "
                            "LearningRateSchedule",
    "losses": "MeanSquaredError BinaryCrossentropy CategoricalCrossentropy SparseCategoricalCrossentropy Loss Huber "
              "LogCosh KLDivergence Poisson Hinge SquaredHinge CategoricalHinge CosineSimilarity",
    "metrics": "Metric Mean Accuracy BinaryAccuracy CategoricalAccuracy SparseCategoricalAccuracy AUC Precision "
               "Recall MeanAbsoluteError F1Score MeanIoU TruePositives FalsePositives TrueNegatives FalseNegatives "
               "R2Score",
    "activations": "relu sigmoid softmax tanh",
    "initializers": "GlorotUniform HeNormal Zeros Ones RandomNormal",
    "regularizers": "L1 L2 L1L2",
    "constraints": "Constraint MaxNorm NonNeg UnitNorm MinMaxNorm get",
    "ops": "matmul relu sum mean",
    "random": "normal uniform randint truncated_normal dropout shuffle SeedGenerator",
    "saving": "load_model save_model register_keras_serializable",
    "config": "floatx epsilon",
}


@pytest.mark.parametrize("module", sorted(BOOK_NAMES))
def test_module_imports_and_holds_the_book_names(module):
    mod = importlib.import_module(f"kcompile.{module}")
    attr = kc
    for part in module.split("."):
        attr = getattr(attr, part)
    assert mod is attr, f"kcompile.{module} and kc.{module} must be one module"
    missing = [n for n in BOOK_NAMES[module].split() if not hasattr(mod, n)]
    assert not missing, f"kcompile.{module} lacks {missing}"


def test_from_imports_in_a_fresh_interpreter():
    """The import form works before anything touched the attribute form (no warm sys.modules)."""
    code = ("from kcompile.optimizers.schedules import ExponentialDecay\n"
            "from kcompile.layers import Dense\nfrom kcompile.utils import to_categorical\n"
            "from kcompile.losses import MeanSquaredError\nfrom kcompile.constraints import MaxNorm\n"
            "import kcompile.random as r\nprint(to_categorical([1], 3).tolist(), Dense(2).units)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[[0.0, 1.0, 0.0]] 2"


def test_unknown_submodule_still_fails():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("kcompile.no_such_module")


def test_random_is_reproducible_per_seed_and_a_seed_generator_advances():
    a = kc.random.normal((3, 4), seed=5).numpy()
    np.testing.assert_array_equal(a, kc.random.normal((3, 4), seed=5).numpy())
    assert a.shape == (3, 4) and a.dtype == np.float32
    gen = kc.random.SeedGenerator(1)
    assert not np.array_equal(kc.random.uniform((5,), seed=gen).numpy(), kc.random.uniform((5,), seed=gen).numpy())
    ints = kc.random.randint((100,), 2, 5, seed=0).numpy()
    assert ints.dtype == np.int32 and ints.min() >= 2 and ints.max() < 5
    t = kc.random.truncated_normal((1000,), stddev=1.0, seed=0).numpy()
    assert np.abs(t).max() <= 2.0
    x = np.arange(10.0, dtype="float32")
    np.testing.assert_array_equal(np.sort(kc.random.shuffle(x, seed=0).numpy()), x)
    d = kc.random.dropout(np.ones(1000, "float32"), 0.5, seed=0).numpy()
    assert set(np.unique(d)) == {0.0, 2.0}
