"""A light stand-in for ``@dataclass`` on the import path of every one-shot command.

``dataclasses`` imports ``inspect`` (and with it ``ast``, ``dis``, ``tokenize``): about 9 ms
of the 50 ms budget of `auto ps` (docs/benchmarks.md, Core CLI, import costs). A ``Record`` subclass lists
its fields as annotations, as a dataclass does, and gets ``__init__`` (positional or keyword,
class-level defaults, ``Factory`` for per-instance ones), ``__eq__``, ``__repr__``, ``to_dict``
and, with ``frozen=True``, immutability and ``__hash__``.
"""

from __future__ import annotations

_MISSING = object()


class FrozenInstanceError(AttributeError):
    """Assignment to a field of a frozen record."""


TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar, dataclass_transform

    _T = TypeVar("_T")
else:
    def dataclass_transform(**_kwargs):
        return lambda cls: cls


class _Factory:
    """A default built anew for each instance (like ``field(default_factory=...)``)."""

    __slots__ = ("make",)

    def __init__(self, *, factory: Callable[[], object]) -> None:
        self.make = factory


if TYPE_CHECKING:
    # What type checkers see: ``env: dict = Factory(factory=dict)`` has the factory's type,
    # as ``field(default_factory=dict)`` has (attrs' ``Factory`` is typed the same way).
    def Factory(*, factory: Callable[[], _T]) -> _T: ...
else:
    Factory = _Factory
    Factory.__name__ = Factory.__qualname__ = "Factory"


@dataclass_transform(field_specifiers=(Factory,))
class Record:
    _fields: tuple[str, ...] = ()
    _field_set: frozenset[str] = frozenset()
    _defaults: dict = {}
    _frozen = False

    def __init_subclass__(cls, frozen: bool = False, **kwargs):
        super().__init_subclass__(**kwargs)
        fields = list(cls._fields)
        defaults = dict(cls._defaults)
        for name in cls.__dict__.get("__annotations__", {}):
            if name.startswith("_"):
                continue
            if name not in fields:
                fields.append(name)
            if name in cls.__dict__:
                defaults[name] = cls.__dict__[name]
        cls._fields = tuple(fields)
        cls._field_set = frozenset(fields)
        cls._defaults = defaults
        cls._frozen = frozen or cls._frozen
        # setattr: type checkers reject assigning to a method, which is the point here (a frozen
        # record hashes its fields; a mutable one is unhashable, as with @dataclass).
        setattr(cls, "__hash__", Record._hash if cls._frozen else None)  # noqa: B010

    def __init__(self, *args, **kwargs):
        fields = self._fields
        if not args and len(kwargs) == len(fields) and kwargs.keys() == self._field_set:
            self.__dict__.update(kwargs)  # every field by keyword (`ps` makes 200 views): no checks left
            return
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__}() takes {len(fields)} arguments, got {len(args)}")
        values = dict(zip(fields, args, strict=False))  # length checked above
        for key, value in kwargs.items():
            if key not in fields or key in values:
                raise TypeError(f"{type(self).__name__}() got an unexpected or repeated argument {key!r}")
            values[key] = value
        put = object.__setattr__
        for name in fields:
            value = values.get(name, _MISSING)
            if value is _MISSING:
                value = self._defaults.get(name, _MISSING)
                if value is _MISSING:
                    raise TypeError(f"{type(self).__name__}() missing argument {name!r}")
                if isinstance(value, _Factory):
                    value = value.make()
            put(self, name, value)

    def __setattr__(self, name, value):
        if self._frozen:
            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        if self._frozen:
            raise FrozenInstanceError(f"cannot delete field {name!r}")
        object.__delattr__(self, name)

    def _astuple(self) -> tuple:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._astuple() == other._astuple()

    def _hash(self) -> int:
        return hash(self._astuple())

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({inner})"

    def to_dict(self) -> dict:
        """Field name -> value; dict and list values are copied (like ``dataclasses.asdict``)."""
        out = {}
        for name in self._fields:
            value = getattr(self, name)
            if isinstance(value, dict):
                value = dict(value)
            elif isinstance(value, list):
                value = list(value)
            out[name] = value
        return out
