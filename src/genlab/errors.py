"""User-facing errors.

`GenlabError` is raised for bad input anywhere in genlab: its message is one line naming the field and the
accepted values. The CLI prints it without a traceback and exits with status 2. This module imports nothing.
"""

from __future__ import annotations

from collections.abc import Iterable


class GenlabError(ValueError):
    """Bad input: a one-line message that names the field and what is accepted."""


def choice_error(field: str, value: object, accepted: Iterable[str]) -> GenlabError:
    """`field` got `value`, which is not one of `accepted`."""
    return GenlabError(f"{field}: unknown value {value!r}; accepted: {', '.join(sorted(accepted))}")


def check_choice(field: str, value: object, accepted: Iterable[str]) -> None:
    """Raise a one-line `GenlabError` unless `value` is one of `accepted`."""
    accepted = list(accepted)
    if value not in accepted:
        raise choice_error(field, value, accepted)


def check_positive(field: str, value: object, *, integer: bool = False, allow_zero: bool = False) -> None:
    """Raise a one-line `GenlabError` unless `value` is a (non-negative if allow_zero) number (int if integer)."""
    kind = "an integer" if integer else "a number"
    ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok_type:
        raise GenlabError(f"{field}: expected {kind}, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero) or value != value:
        bound = ">= 0" if allow_zero else "> 0"
        raise GenlabError(f"{field}: expected {kind} {bound}, got {value!r}")
    if value in (float("inf"), float("-inf")):
        raise GenlabError(f"{field}: expected a finite number, got {value!r}")


def unknown_key_error(field: str, owner: str, accepted: Iterable[str]) -> GenlabError:
    """`field` is not an option of `owner`."""
    return GenlabError(f"{field}: not an option of {owner}; accepted: {', '.join(sorted(accepted))}")
