"""Every public name in gen.flows and gen.diffusion has one meaning and one spelling.

- a name is never both a submodule and another attribute (``gen.flows.spline`` was a module and a
  function: importing one shadowed the other);
- ``__all__`` lists only what exists;
- no two names in one ``__all__`` are the same object (one spelling; no aliases);
- a name listed by a package and by one of its public modules is the same object there (one
  meaning; there were two ``Transformer`` types).
"""

from __future__ import annotations

import importlib
import pkgutil
import types

import pytest

PACKAGES = ("gen.flows", "gen.diffusion")


def _public_modules(package: str) -> list[types.ModuleType]:
    """The package and every submodule under it whose dotted path has no private part."""
    root = importlib.import_module(package)
    found = [root]
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            found.append(importlib.import_module(info.name))
    return found


def _submodule_names(module: types.ModuleType) -> set[str]:
    path = getattr(module, "__path__", None)
    return {info.name for info in pkgutil.iter_modules(path)} if path else set()


@pytest.mark.parametrize("package", PACKAGES)
def test_all_lists_only_what_exists(package):
    for module in _public_modules(package):
        missing = [n for n in getattr(module, "__all__", ()) if not hasattr(module, n)]
        assert not missing, f"{module.__name__}.__all__ lists names it lacks: {missing}"


@pytest.mark.parametrize("package", PACKAGES)
def test_no_name_is_both_a_submodule_and_another_attribute(package):
    for module in _public_modules(package):
        for sub in _submodule_names(module):
            full = f"{module.__name__}.{sub}"
            importlib.import_module(full)
            attr = getattr(module, sub)
            assert isinstance(attr, types.ModuleType) and attr.__name__ == full, (
                f"{full} is a submodule, but {module.__name__}.{sub} is {attr!r}"
            )
            assert sub not in getattr(module, "__all__", ()) or attr.__name__ == full


@pytest.mark.parametrize("package", PACKAGES)
def test_one_spelling_and_one_meaning(package):
    modules = _public_modules(package)
    for module in modules:
        exported = getattr(module, "__all__", ())
        by_id: dict[int, str] = {}
        for name in exported:
            obj = getattr(module, name)
            if isinstance(obj, (types.FunctionType, type)):
                other = by_id.setdefault(id(obj), name)
                assert other == name, f"{module.__name__}: {other} and {name} are one object"
    for module in modules:
        if not hasattr(module, "__path__"):
            continue
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            for sub in modules:
                if sub.__name__.startswith(module.__name__ + ".") and name in getattr(
                    sub, "__all__", vars(sub)
                ):
                    assert getattr(sub, name) is obj, (
                        f"{module.__name__}.{name} and {sub.__name__}.{name} differ"
                    )
