"""Reversible attribute patches: every fix is a list of (owner, attribute, replacement)."""
import types

import paddle

__all__ = ["Patch", "PaddleNamespace"]


class Patch:
    """Set ``owner.attr = replacement`` and remember the original so the patch can be undone.

    Patches are applied in order and undone in reverse order; applying twice is a no-op.
    """

    def __init__(self, owner, attr, replacement):
        self.owner, self.attr, self.replacement = owner, attr, replacement
        self._saved = None
        self.active = False

    def apply(self):
        if self.active:
            return
        self._saved = self.owner.__dict__.get(self.attr, _MISSING) if isinstance(
            self.owner, (type, types.ModuleType)) else getattr(self.owner, self.attr, _MISSING)
        setattr(self.owner, self.attr, self.replacement)
        self.active = True

    def revert(self):
        if not self.active:
            return
        if self._saved is _MISSING:
            delattr(self.owner, self.attr)
        else:
            setattr(self.owner, self.attr, self._saved)
        self.active = False


_MISSING = object()


class PaddleNamespace(types.ModuleType):
    """Stands in for the ``paddle`` module inside one toolkit module.

    Attributes named in ``overrides`` resolve to our replacements; everything else is the real
    ``paddle`` attribute. This scopes a fix to the toolkit modules that need it instead of
    changing ``paddle`` for every other library in the process.
    """

    def __init__(self, overrides):
        super().__init__("paddle")
        self.__dict__.update(overrides)
        self.__dict__["__ppvh_namespace__"] = True

    def __getattr__(self, name):  # only called for names not in overrides
        return getattr(paddle, name)
