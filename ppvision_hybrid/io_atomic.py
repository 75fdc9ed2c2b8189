"""Atomic writes: a file or a whole folder is either the complete old version or the complete
new one, whatever happens during the write (an exception, a full disk, ``kill -9``, power loss
after the call returned).

* :func:`atomic_file` — write to a hidden temporary beside the target, fsync it, ``os.replace``
  it over the target, fsync the folder.
* :func:`atomic_directory` — write a set of files (an inference export) into a hidden temporary
  folder beside the target, fsync everything, then swap the folders in one step
  (``renameat2(RENAME_EXCHANGE)`` on Linux; elsewhere two renames, and a swap interrupted between
  them is undone by the next call for the same target). Files of the old folder that are not
  part of the new set are carried over (hard links), so exporting into a folder that holds other
  things keeps them.

On every failure the temporary is removed and the target is left as it was. Temporaries of a
process that was killed are removed by the next write to the same target.

:func:`fault_point` marks the steps of a write for the fault tests: with the environment variable
``PPVH_FAULT_KILL_AT=N`` (or ``N:MS``) the process SIGKILLs itself at the N-th step (or MS
milliseconds after it, landing inside whatever write follows). Without the variable it only counts.
"""
import contextlib
import ctypes
import os
import re
import shutil
import signal
import tempfile
import threading

__all__ = ["atomic_file", "atomic_directory", "fsync_file", "fsync_dir", "remove_quietly",
           "remove_stale_temporaries", "fault_point", "fault_points_seen"]

_points_seen = 0


def fault_point(label=""):
    """One step of a write (see the module doc). Returns the running count."""
    global _points_seen
    _points_seen += 1
    spec = os.environ.get("PPVH_FAULT_KILL_AT")
    if spec:
        at, _, delay_ms = spec.partition(":")
        if _points_seen == int(at):
            if delay_ms:
                timer = threading.Timer(float(delay_ms) / 1000.0, os.kill, (os.getpid(), signal.SIGKILL))
                timer.daemon = True
                timer.start()
            else:
                os.kill(os.getpid(), signal.SIGKILL)
    return _points_seen


def fault_points_seen():
    return _points_seen


def fsync_file(path):
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def fsync_dir(path):
    """Make renames and new entries in ``path`` durable (not possible on every platform)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_quietly(path):
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.remove(path)
    except OSError:
        pass


def _pid_alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _temp_prefix(path, kind):
    return os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{kind}")


def remove_stale_temporaries(path):
    """Remove temporaries for ``path`` left by processes that no longer run."""
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        return
    pattern = re.compile(re.escape(f".{os.path.basename(path)}.") + r"(tmp|old)(\d+)(-|$)")
    for entry in os.listdir(folder):
        m = pattern.match(entry)
        if m and not _pid_alive(int(m.group(2))):
            remove_quietly(os.path.join(folder, entry))


@contextlib.contextmanager
def atomic_file(path):
    """Yield a temporary path beside ``path``; write it completely inside the block. On normal
    exit it is fsynced and renamed over ``path``; on any failure it is removed and ``path`` is
    untouched."""
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = f"{_temp_prefix(path, 'tmp')}{os.getpid()}"
    try:
        yield tmp
        fault_point("file written")
        fsync_file(tmp)
        fault_point("file synced")
        os.replace(tmp, path)
        fsync_dir(folder)
    finally:
        remove_quietly(tmp)


def _exchange(a, b):
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    return False


_use_exchange = True  # the fault tests switch it off to exercise the two-rename swap


def _inside(path, folder):
    try:
        return os.path.commonpath([os.path.realpath(path), os.path.realpath(folder)]) == os.path.realpath(folder)
    except ValueError:
        return False


def recover_directory(target):
    """Undo a two-rename swap that was killed between its renames, then remove stale temporaries."""
    parent, name = os.path.dirname(target), os.path.basename(target)
    if not os.path.lexists(target) and os.path.isdir(parent):
        olds = sorted(e for e in os.listdir(parent) if e.startswith(f".{name}.old"))
        if olds:
            os.rename(os.path.join(parent, olds[-1]), target)
            print(f"[ppvision_hybrid] restored {target} from an interrupted replacement")
    remove_stale_temporaries(target)


def _link_or_copy(src, dst):
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _fsync_tree(folder):
    for root, _, files in os.walk(folder):
        for f in files:
            fsync_file(os.path.join(root, f))
        fsync_dir(root)


@contextlib.contextmanager
def atomic_directory(target, replaces=lambda entry: False):
    """Yield a temporary folder beside ``target``; write the new set into it inside the block.
    On normal exit the set replaces ``target`` in one step; entries of the old ``target`` that
    the new set does not contain are kept unless ``replaces(entry)`` says they belong to the set
    being replaced (e.g. an old ``inference.pdmodel`` when ``inference.json`` is written).
    On any failure the temporary is removed and ``target`` is untouched.

    When ``target`` is the working directory (or holds it) the folder cannot be swapped; the
    files are then renamed into it one by one (each file atomic, the set not)."""
    target = os.path.abspath(target)
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    recover_directory(target)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.tmp{os.getpid()}-", dir=parent)
    try:
        yield tmp
        fault_point("directory written")
        written = set(os.listdir(tmp))
        if os.path.isdir(target) and _inside(os.getcwd(), target):
            _replace_entries(tmp, target, written)
            return
        if os.path.isdir(target):
            for entry in os.listdir(target):
                if entry in written or replaces(entry):
                    continue
                src, dst = os.path.join(target, entry), os.path.join(tmp, entry)
                if os.path.isdir(src) and not os.path.islink(src):
                    shutil.copytree(src, dst, symlinks=True, copy_function=_link_or_copy)
                elif os.path.islink(src):
                    os.symlink(os.readlink(src), dst)
                else:
                    _link_or_copy(src, dst)
        _fsync_tree(tmp)
        fault_point("directory synced")
        _swap_in(tmp, target)
        fsync_dir(parent)
    finally:
        remove_quietly(tmp)


def _replace_entries(tmp, target, written):
    _fsync_tree(tmp)
    for entry in sorted(written):
        os.replace(os.path.join(tmp, entry), os.path.join(target, entry))
        fault_point("entry replaced")
    fsync_dir(target)


def _swap_in(tmp, target):
    """Put ``tmp`` at ``target``; the old ``target`` ends up at ``tmp`` (removed by the caller)."""
    if not os.path.lexists(target):
        os.rename(tmp, target)
        return
    if _use_exchange and _exchange(tmp, target):
        fault_point("directories exchanged")
        return
    old = f"{_temp_prefix(target, 'old')}{os.getpid()}"
    os.rename(target, old)
    fault_point("old directory moved aside")
    os.rename(tmp, target)
    fault_point("new directory in place")
    remove_quietly(old)
