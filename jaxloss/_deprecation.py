"""Old spellings of public arguments, kept working for one minor version.

When an argument is renamed, its function is decorated with ``renamed(old="new")``: a call
with the old keyword still works, warns once per call site with a ``DeprecationWarning``
naming both spellings and the version that removes the old one, and a call that gives both
spellings is a ``TypeError``. The renames are listed in CHANGELOG.md and in
``docs/naming.md``.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

REMOVED_IN = "0.3.0"
"""The version that drops the spellings deprecated in 0.2.0."""


def outside_jaxloss() -> int:
    """The ``stacklevel`` that attributes a warning raised by this function's caller to the
    first frame outside the jaxloss package: the user's call, whatever number of jaxloss
    frames (decorators, helpers) lie between."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def warn(function: str, message: str) -> None:
    """A ``DeprecationWarning`` attributed to the user's call of the public ``function``."""
    warnings.warn(
        f"jaxloss.{function}: {message}; the old form stops working in jaxloss {REMOVED_IN}.",
        DeprecationWarning,
        stacklevel=outside_jaxloss(),
    )


def renamed(**old_to_new: str) -> Callable[[F], F]:
    """Accepts each ``old`` keyword of the decorated function as its ``new`` name, warning."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(
                            f"jaxloss.{fn.__name__}() got both `{new}` and its old spelling "
                            f"`{old}`; pass `{new}` only."
                        )
                    warn(fn.__name__, f"the argument `{old}` is now spelled `{new}`")
                    kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
