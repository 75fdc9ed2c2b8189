"""Read (and write) PyTorch ``.pth`` checkpoints without PyTorch.

A ``torch.save`` file is either

* a zip archive (PyTorch >= 1.6): ``<root>/data.pkl`` is a pickle whose tensors refer, through
  persistent ids ``('storage', StorageType, key, location, numel)``, to raw little-endian buffers
  stored as ``<root>/data/<key>``; or
* the legacy stream (PyTorch < 1.6): four pickles (magic number, protocol, system info, the
  object with persistent ids ``('storage', StorageType, key, location, numel, view)``), the
  list of storage keys, then each storage as an 8-byte element count and its raw bytes.

Tensors are rebuilt as numpy arrays (``_rebuild_tensor_v2`` semantics: offset, shape and
strides in elements). Unpickling is restricted: only the reconstruction functions listed in
``_ALLOWED`` run; any other class named in the file becomes an inert :class:`OpaqueObject`
(training checkpoints carry ``argparse.Namespace`` and optimizer state next to the weights),
so loading a file never executes code it names.
"""
import io
import pickle
import struct
import zipfile
from collections import OrderedDict

import numpy as np

__all__ = ["load_pth", "save_pth", "OpaqueObject", "PthError"]

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
_DTYPE_TO_STORAGE = {np.dtype(v): k for k, v in _STORAGE_DTYPES.items() if v != "bfloat16"}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class PthError(ValueError):
    """The file is not a PyTorch checkpoint this reader understands."""


class OpaqueObject:
    """Stand-in for a class the restricted unpickler does not construct."""

    qualname = "?"

    def __init__(self, *args, **kwargs):
        self.args = args
        self.state = None

    def __setstate__(self, state):
        self.state = state

    def __repr__(self):
        return f"<OpaqueObject {self.qualname}>"


class _StorageType:
    def __init__(self, name):
        if name not in _STORAGE_DTYPES:
            raise PthError(f"unsupported tensor storage type torch.{name}")
        self.name = name


def _as_array(raw: bytes, storage_name: str, big_endian=False):
    dtype = _STORAGE_DTYPES[storage_name]
    if dtype == "bfloat16":  # upper 16 bits of a float32
        half = np.frombuffer(raw, dtype=">u2" if big_endian else "<u2").astype(np.uint32)
        return (half << 16).view(np.float32)
    dt = np.dtype(dtype).newbyteorder(">" if big_endian else "<")
    return np.frombuffer(raw, dtype=dt).astype(np.dtype(dtype), copy=False)


def _rebuild_tensor(storage, offset, size, stride, *unused):
    flat = storage
    size = tuple(int(s) for s in size)
    if not size:
        return np.array(flat[offset])
    if int(np.prod(size)) == 0:
        return np.zeros(size, dtype=flat.dtype)
    itemsize = flat.itemsize
    view = np.lib.stride_tricks.as_strided(flat[offset:], shape=size,
                                           strides=tuple(int(s) * itemsize for s in stride))
    return np.array(view)  # own the memory, C order


def _rebuild_parameter(data, requires_grad=None, backward_hooks=None, *unused):
    return data


def _rebuild_from_type(func, new_type, args, state):
    # Tensor subclasses (nn.Parameter in some versions): the array is what we want.
    return func(*args)


_ALLOWED = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("builtins", "slice"): slice,
    ("__builtin__", "set"): set,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, load_storage):
        super().__init__(file, encoding="utf-8")
        self._load_storage = load_storage

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name.endswith("Storage"):
            return _StorageType(name)
        if module == "torch" and name in ("Size",):
            return tuple
        # An inert class (NEWOBJ needs a type); nothing of the named class is imported or run.
        return type(name, (OpaqueObject,), {"qualname": f"{module}.{name}"})

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise PthError(f"unsupported persistent id in checkpoint: {pid!r}")
        storage_type, key = pid[1], str(pid[2])
        if not isinstance(storage_type, _StorageType):
            raise PthError(f"unsupported storage type {storage_type!r}")
        array = self._load_storage(storage_type.name, key)
        if len(pid) >= 6 and pid[5] is not None:  # legacy storage view: (view_key, offset, size)
            _, offset, size = pid[5]
            array = array[offset:offset + size]
        return array


def _load_zip(path):
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("data.pkl")]
        if not pkl:
            raise PthError(f"{path}: a zip file without data.pkl is not a PyTorch checkpoint")
        root = pkl[0][: -len("data.pkl")]
        big_endian = False
        if root + "byteorder" in names:
            big_endian = zf.read(root + "byteorder").decode().strip() == "big"
        cache = {}

        def load_storage(storage_name, key):
            if key not in cache:
                member = f"{root}data/{key}"
                if member not in names:
                    raise PthError(f"{path}: storage {key} is missing from the archive (truncated file?)")
                cache[key] = _as_array(zf.read(member), storage_name, big_endian)
            return cache[key]

        return _RestrictedUnpickler(io.BytesIO(zf.read(pkl[0])), load_storage).load()


class _LazyStorage:
    def __init__(self, name, key, view):
        self.name, self.key, self.view = name, key, view


class _LazyTensor:
    def __init__(self, storage, args):
        self.storage, self.args = storage, args


def _lazy_rebuild_tensor(storage, offset, size, stride, *unused):
    return _LazyTensor(storage, (offset, size, stride))


class _LegacyUnpickler(_RestrictedUnpickler):
    """Legacy files store tensors after the object pickle: build placeholders first."""

    def find_class(self, module, name):
        if (module, name) in (("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor")):
            return _lazy_rebuild_tensor
        return super().find_class(module, name)

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage" or not isinstance(pid[1], _StorageType):
            raise PthError(f"unsupported persistent id in checkpoint: {pid!r}")
        return _LazyStorage(pid[1].name, str(pid[2]), pid[5] if len(pid) >= 6 else None)


def _resolve(obj, arrays):
    if isinstance(obj, _LazyTensor):
        flat = arrays[obj.storage.key]
        if obj.storage.view is not None:
            _, start, size = obj.storage.view
            flat = flat[start:start + size]
        return _rebuild_tensor(flat, *obj.args)
    if isinstance(obj, dict):
        for k in list(obj):
            obj[k] = _resolve(obj[k], arrays)
        return obj
    if isinstance(obj, list):
        return [_resolve(v, arrays) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_resolve(v, arrays) for v in obj)
    if isinstance(obj, OpaqueObject):
        obj.state = _resolve(obj.state, arrays)
    return obj


def _load_legacy(path):
    with open(path, "rb") as f:
        stream = io.BytesIO(f.read())

    def plain():
        return _LegacyUnpickler(stream, None).load()

    try:
        magic = plain()
    except Exception as e:
        raise PthError(f"{path} is neither a zip nor a legacy PyTorch checkpoint ({type(e).__name__}: {e})") from e
    if magic != _LEGACY_MAGIC:
        raise PthError(f"{path} is not a PyTorch checkpoint (bad magic number)")
    plain()  # protocol version
    plain()  # system info
    storages = {}

    class _Collect(_LegacyUnpickler):
        def persistent_load(self, pid):
            lazy = super().persistent_load(pid)
            storages.setdefault(lazy.key, lazy.name)
            return lazy

    obj = _Collect(stream, None).load()
    keys = plain()
    arrays = {}
    for key in keys:
        key = str(key)
        name = storages[key]
        (count,) = struct.unpack("<q", stream.read(8))
        itemsize = 2 if name == "BFloat16Storage" else np.dtype(_STORAGE_DTYPES[name]).itemsize
        raw = stream.read(count * itemsize)
        if len(raw) != count * itemsize:
            raise PthError(f"{path}: storage {key} is truncated")
        arrays[key] = _as_array(raw, name)
    return _resolve(obj, arrays)


def load_pth(path):
    """Load a ``torch.save`` file into Python objects with numpy arrays for tensors."""
    try:
        is_zip = zipfile.is_zipfile(path)
    except OSError as e:
        raise PthError(f"cannot read {path}: {e}") from e
    try:
        return _load_zip(path) if is_zip else _load_legacy(path)
    except PthError:
        raise
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, KeyError, ValueError, struct.error) as e:
        raise PthError(f"{path} is not a readable PyTorch checkpoint ({type(e).__name__}: {e}); "
                       f"it may be truncated or corrupt") from e


# ---- writer (tests and round trips; the zip layout torch.load reads) -----------------------
class _Global:
    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle insists that a reduce function be callable
        raise RuntimeError("placeholder for a PyTorch global; only pickled, never called")


class _TensorRef:
    def __init__(self, array, key):
        self.array, self.key = array, key


class _Pickler(pickle._Pickler):  # the pure-Python pickler lets us emit torch's globals
    def __init__(self, file, storages):
        super().__init__(file, protocol=2)
        self._storages = storages

    def persistent_id(self, obj):
        if isinstance(obj, _TensorRef):
            storage = _DTYPE_TO_STORAGE[obj.array.dtype]
            return ("storage", _Global("torch", storage), obj.key, "cpu", int(obj.array.size))
        return None

    def save_global(self, obj, name=None):
        if isinstance(obj, _Global):
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
            self.memoize(obj)
            return
        super().save_global(obj, name)

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[_Global] = save_global

    def reducer_override(self, obj):
        if isinstance(obj, np.ndarray):
            key = str(len(self._storages))
            arr = np.array(obj, order="C", copy=True)  # (ascontiguousarray turns 0-d into 1-d)
            if arr.dtype not in _DTYPE_TO_STORAGE:
                raise TypeError(f"cannot store dtype {arr.dtype} in a .pth file")
            self._storages.append((key, arr))
            stride = tuple(int(s) // arr.itemsize for s in arr.strides) if arr.ndim else ()
            return (_Global("torch._utils", "_rebuild_tensor_v2"),
                    (_TensorRef(arr, key), 0, tuple(arr.shape), stride, False, OrderedDict()))
        return NotImplemented


def save_pth(obj, path, root="archive"):
    """Write ``obj`` (dicts/lists of numpy arrays and plain values) in PyTorch's zip format."""
    storages = []
    buf = io.BytesIO()
    _Pickler(buf, storages).dump(obj)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{root}/data.pkl", buf.getvalue())
        zf.writestr(f"{root}/byteorder", "little")
        for key, arr in storages:
            zf.writestr(f"{root}/data/{key}", arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes())
        zf.writestr(f"{root}/version", "3\n")
