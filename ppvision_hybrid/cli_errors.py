"""One clean error line for every command-line tool.

Every tool's ``main(argv)`` is wrapped in :func:`main_guard`. An *expected* error (a bad config
key or value, a missing or corrupt file, bad data, a bad model argument, a full disk) is printed
as one line, ``error: <message>``, on stderr, and the process exits with

* status 2 for usage and input errors (config keys and values, files that do not exist or are not
  what they should be, model arguments): fix the command and run it again;
* status 1 for failures while working (an image that cannot be decoded half-way through training,
  a full disk, some images of a folder that could not be predicted);
* status 130 when interrupted with Ctrl-C.

Anything else is a bug and keeps Python's traceback. ``--debug`` anywhere on the command line (it
is taken out before the tool parses its arguments) or ``PPVH_DEBUG=1`` shows the traceback of
expected errors too.

An error is expected when it is a :class:`UserError`, carries ``is_user_error = True`` (so
modules that need not import this one can mark their own),
is of an exception class defined in this package (``CheckpointError``, ``PthError``, ...), or
is one of the operating-system errors about a named file or a full disk. This module imports only the
standard library (the deploy predictor, :mod:`ppvision_hybrid.predict`, uses it without the model code).
"""
import errno
import functools
import os
import sys
import warnings

__all__ = ["UserError", "DataError", "ModelArgumentError", "InputFailures", "main_guard", "format_error",
           "exit_status", "debug_requested", "quiet_third_party_noise"]

USAGE_STATUS = 2
FAILURE_STATUS = 1
INTERRUPTED_STATUS = 130
#: operating-system errors that are about the user's files or machine, not a bug
_RUNTIME_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO)


class UserError(Exception):
    """An error the user can fix; its message names the key or file and the fix."""

    is_user_error = True
    exit_code = USAGE_STATUS

    def __init__(self, message="", exit_code=None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class DataError(UserError, ValueError):
    """A data file (an image, a label list line) that cannot be used; the message names it.
    Exit status 1 (found while working) unless given."""

    exit_code = FAILURE_STATUS


class ModelArgumentError(UserError, ValueError):
    """A model constructor argument out of its range; the message names the argument."""


class InputFailures:
    """Inputs of a batch job (images of a folder) that could not be processed: each is reported
    on stderr when it fails and skipped; :meth:`raise_if_any` then ends the run with one
    DataError (exit status 1) after the others were processed."""

    def __init__(self, tag):
        self.tag, self.reasons = tag, {}

    def record(self, path, err):
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        reason = " ".join(reason.split()).removeprefix(f"{path}: ") or type(err).__name__
        self.reasons[path] = reason
        print(f"[{self.tag}] skipped {path}: {reason}", file=sys.stderr, flush=True)

    def __contains__(self, path):
        return path in self.reasons

    def __len__(self):
        return len(self.reasons)

    def raise_if_any(self, total):
        if self.reasons:
            names = sorted(self.reasons)
            raise DataError(f"{len(names)} of {total} images could not be read (each reported above): "
                            f"{', '.join(names[:5])}{' ...' if len(names) > 5 else ''}")


def _is_expected(exc):
    if getattr(exc, "is_user_error", False):
        return True
    if type(exc).__module__.split(".")[0] == "ppvision_hybrid":  # CheckpointError, PthError, ...
        return True
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError,
                        FileExistsError)):
        return True
    return isinstance(exc, OSError) and exc.errno in _RUNTIME_ERRNOS


def exit_status(exc):
    """The process status for an expected error (see the module docstring)."""
    code = getattr(exc, "exit_code", None)
    if isinstance(code, int):
        return code
    if isinstance(exc, RuntimeError) or (isinstance(exc, OSError) and exc.errno in _RUNTIME_ERRNOS):
        return FAILURE_STATUS
    return USAGE_STATUS


def format_error(exc):
    """The one-line message: the exception's text on one line; an OS error as
    ``<reason>: <file>``."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        text = f"{exc.strerror}: {exc.filename}"
        if exc.filename2:
            text += f" -> {exc.filename2}"
    else:
        text = str(exc) or type(exc).__name__
        if isinstance(exc, KeyError) and len(exc.args) == 1:
            text = str(exc.args[0])
    return " ".join(text.split())


def debug_requested(argv):
    return "--debug" in argv or os.environ.get("PPVH_DEBUG", "").strip() not in ("", "0")


def quiet_third_party_noise():
    """Two notices of Paddle that say nothing about the user's run: its import warns that ccache
    is missing (it matters only when compiling C++ extensions), filtered here before paddle is
    imported; and the first ``paddle.add`` traced into a static (PIR) graph logs "PIR not support
    input out tensor for now!!!!!" (``paddle.add`` always passes ``out=None``), which Paddle logs
    once per process, so that one time is spent here on a one-op graph with stderr closed."""
    warnings.filterwarnings("ignore", message="No ccache found", category=UserWarning)
    if "paddle" in sys.modules and not _state.get("pir_notice_spent"):
        _state["pir_notice_spent"] = True
        _spend_pir_out_notice()


_state = {}


def _spend_pir_out_notice():
    import paddle
    try:
        sys.stderr.flush()
        saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        os.dup2(devnull, 2)
        with paddle.pir_utils.IrGuard():
            with paddle.static.program_guard(paddle.static.Program(), paddle.static.Program()):
                x = paddle.static.data("x", [1], "float32")
                paddle.add(x, x)
    except Exception:  # an older or newer Paddle without this path: nothing to quiet
        pass
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def main_guard(main):
    """Wrap a tool's ``main(argv)``: strip ``--debug``, run, turn expected errors into one line
    and an exit status (``SystemExit``). Returns what ``main`` returns otherwise."""

    @functools.wraps(main)
    def guarded(argv=None):
        argv = list(sys.argv[1:] if argv is None else argv)
        debug = debug_requested(argv)
        argv = [a for a in argv if a != "--debug"]
        quiet_third_party_noise()
        try:
            return main(argv)
        except KeyboardInterrupt:
            if debug:
                raise
            print("error: interrupted", file=sys.stderr, flush=True)
            raise SystemExit(INTERRUPTED_STATUS) from None
        except Exception as exc:  # expected errors become one line; others keep the traceback
            if debug or not _is_expected(exc):
                raise
            sys.stdout.flush()
            print(f"error: {format_error(exc)}", file=sys.stderr, flush=True)
            raise SystemExit(exit_status(exc)) from None

    return guarded
