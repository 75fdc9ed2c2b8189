"""One module per family; importing this package registers every variant.

Each module in this folder (except ``base``) is imported here, so adding a family is adding
one file.
"""
import importlib
import pkgutil

_SKIP = {"base"}
for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name not in _SKIP and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
