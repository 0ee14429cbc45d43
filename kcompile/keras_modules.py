"""`from kcompile.layers import Dense`: Keras's module names, importable as modules of `kcompile`.

Each name is the front-end module itself (`kcompile.layers is kcompile.frontend.layers`), so the
attribute form (`kc.layers.Dense`) and the import form see one module and one state. A meta-path
finder answers only for the names in KERAS_MODULES and imports the front-end module on first use,
which keeps `import kcompile` as lazy as before.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

KERAS_MODULES = {
    "kcompile.layers": "kcompile.frontend.layers",
    "kcompile.models": "kcompile.frontend.models",
    "kcompile.callbacks": "kcompile.frontend.callbacks",
    "kcompile.datasets": "kcompile.frontend.datasets",
    "kcompile.utils": "kcompile.frontend.utils",
    "kcompile.optimizers": "kcompile.frontend.optimizers",
    "kcompile.optimizers.schedules": "kcompile.frontend.schedules",
    "kcompile.losses": "kcompile.frontend.losses",
    "kcompile.metrics": "kcompile.frontend.metrics",
    "kcompile.activations": "kcompile.frontend.activations",
    "kcompile.initializers": "kcompile.frontend.initializers",
    "kcompile.regularizers": "kcompile.frontend.regularizers",
    "kcompile.constraints": "kcompile.frontend.constraints",
    "kcompile.ops": "kcompile.frontend.ops",
    "kcompile.ops.image": "kcompile.frontend.ops_image",
    "kcompile.random": "kcompile.frontend.random",
    "kcompile.saving": "kcompile.frontend.saving",
    "kcompile.config": "kcompile.frontend.config",
    "kcompile.distribution": "kcompile.frontend.distribution",
}


class KerasModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves `kcompile.<keras name>` to the front-end module that implements it."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in KERAS_MODULES:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        # A front-end module is not a package, so its Keras submodules (`kcompile.optimizers.schedules`)
        # go into sys.modules with it: the import system looks there before asking for a __path__.
        for child, target in KERAS_MODULES.items():
            if child.startswith(spec.name + "."):
                sys.modules.setdefault(child, importlib.import_module(target))
        return importlib.import_module(KERAS_MODULES[spec.name])

    def exec_module(self, module):
        """The front-end module ran when it was imported; nothing more to execute."""


def install():
    if not any(isinstance(f, KerasModuleFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, KerasModuleFinder())
