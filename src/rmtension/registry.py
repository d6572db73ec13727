"""A tiny name → object registry.

Data sources, benchmarks, backbones, neuron-score methods and architecture adapters are all
looked up by name, so that adding one is a decorator away and never an edit to an if/elif chain.
"""

from __future__ import annotations

from typing import Generic, Iterator, TypeVar

from rmtension.errors import RmtensionError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects; unknown names produce an error that lists the known ones."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None, *, overwrite: bool = False):
        """Register ``obj`` under ``name``; without ``obj`` this returns a decorator."""

        def add(value: T) -> T:
            if name in self._items and not overwrite:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = value
            return value

        if obj is not None:
            return add(obj)
        return add

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise RmtensionError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._items.items())


