"""Compile, then deploy: train a model, save it, compile it with the `kcompile` command, and run
the artifact three ways (from Python, from a C program, through onnxruntime): same answers.

    python examples/deploy.py [--epochs 10] [--workdir DIR]

Needs a C compiler (`cc`) for the C part, and onnxruntime for the ONNX part.
"""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

import kcompile as kc
from kcompile import layers
from kcompile.runtime import load

from _common import example_args, standardized_split

HERE = Path(__file__).resolve().parent


def train(epochs):
    digits = load_digits()
    x_train, y_train, x_test, y_test = standardized_split(digits.data, digits.target)
    model = kc.Sequential([kc.Input(shape=(64,)), layers.Dense(32, activation="relu"),
                           layers.Dense(10, activation="softmax")], name="digits")
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0)
    print(f"trained: test accuracy {model.evaluate(x_test, y_test, verbose=0)[1]:.4f}")
    return model, x_test


def kcompile_command(*args):
    """The kcompile CLI (the installed script, or the module when the script is not on PATH)."""
    exe = shutil.which("kcompile")
    cmd = ([exe] if exe else [sys.executable, "-m", "kcompile.cli"]) + [str(a) for a in args]
    print("$ kcompile", " ".join(str(a) for a in args))
    subprocess.run(cmd, check=True)


def run_from_c(artifact: Path, x: np.ndarray, workdir: Path):
    cc = shutil.which("cc")
    if cc is None:
        print("no C compiler (cc) found: skipping the C program")
        return None
    demo = workdir / "deploy_demo"
    subprocess.run([cc, "-O2", str(HERE / "deploy_c" / "main.c"), f"-I{artifact}", f"-L{artifact}", "-ldigits",
                    f"-Wl,-rpath,{artifact}", f"-DFEATURES={x.shape[1]}", "-DCLASSES=10", "-o", str(demo)],
                   check=True)
    x.astype("<f4").tofile(workdir / "inputs.f32")
    subprocess.run([str(demo), str(artifact), str(workdir / "inputs.f32"), str(len(x)),
                    str(workdir / "outputs.f32")], check=True)
    return np.fromfile(workdir / "outputs.f32", "<f4").reshape(len(x), 10)


def run_onnx(path: Path, x: np.ndarray):
    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime is not installed: skipping the ONNX run")
        return None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def main():
    args = example_args(__doc__.split("\n")[0], epochs=10)
    workdir = Path(os.environ.get("KCOMPILE_DEPLOY_DIR") or tempfile.mkdtemp(prefix="kcompile-deploy-"))
    model, x_test = train(args.epochs)
    want = model.predict(x_test, verbose=0)

    saved = workdir / "digits.kcompile"
    model.save(saved)                                     # architecture + weights; loading runs no code
    artifact = workdir / "digits_artifact"
    kcompile_command(saved, "-o", artifact, "--emit", "so,onnx", "--name", "digits")
    kcompile_command("inspect", artifact)

    answers = {"python (runtime.load)": load(artifact).predict(x_test),
               "C program": run_from_c(artifact, x_test, workdir),
               "onnxruntime": run_onnx(artifact / "digits.onnx", x_test)}
    worst = 0.0
    for how, got in answers.items():
        if got is None:
            continue
        diff = float(np.abs(got - want).max())
        worst = max(worst, diff)
        same = np.array_equal(got.argmax(1), want.argmax(1))
        print(f"{how:26} max abs difference from model.predict: {diff:.2e}, same classes: {same}")
    print(f"artifacts in {workdir}")
    if worst > 1e-5:
        sys.exit(f"deploy: the answers differ by {worst:.2e} (more than 1e-5)")


if __name__ == "__main__":
    main()
