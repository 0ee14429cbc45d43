"""Every Python package folder in the source tree is listed in pyproject, so a plain (non-editable)
install ships it: a missing entry would only show up for users, never in an editable checkout."""
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _declared():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return set(cfg["packages"]), cfg["package-dir"]


def _folder_of(package: str, package_dir: dict) -> Path:
    parts = package.split(".")
    for i in range(len(parts), 0, -1):
        head = ".".join(parts[:i])
        if head in package_dir:
            return ROOT / package_dir[head] / Path(*parts[i:])
    raise AssertionError(f"{package} has no package-dir mapping")


def test_every_package_folder_is_declared():
    packages, package_dir = _declared()
    declared_folders = {_folder_of(p, package_dir).resolve() for p in packages}
    for top in set(package_dir.values()):
        for init in (ROOT / top).rglob("__init__.py"):
            assert init.parent.resolve() in declared_folders, f"{init.parent} is missing from pyproject packages"


def test_every_declared_package_exists():
    packages, package_dir = _declared()
    for p in packages:
        assert (_folder_of(p, package_dir) / "__init__.py").is_file(), p
