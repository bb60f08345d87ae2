"""Secret: a holder for subject tokens, client secrets, assertions and keys that never shows its value."""

from __future__ import annotations

from typing import NoReturn


class Secret:
    """A string that ``repr``/``str``/logging/pickling never reveal; read it with :meth:`reveal` at the point of use."""

    __slots__ = ("_value", "label")

    def __init__(self, value: str, label: str = "secret") -> None:
        if not value:
            raise ValueError(f"{label} must not be empty")
        self._value = value
        self.label = label

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.label}=***)"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError(f"{self.label} cannot be pickled: it is a secret")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return self._value == other._value

    def __hash__(self) -> int:
        return hash(self._value)
