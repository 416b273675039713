"""A small typed registry: one instance per kind of component (datasets, masks, codecs, tasks).

Components register under a lowercase name. Built-ins that need optional libraries register
lazily as ``"module:attr"`` strings so that listing them imports nothing heavy. Other packages
add components without editing vcm: through entry points in the group ``vcm.<kind>s`` (e.g.
``[project.entry-points."vcm.codecs"] mycodec = "mypkg.codec:factory"``, read on first use), or
by being imported (``plugins: [mypkg]`` in an experiment config) and calling ``register``.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class RegistryError(KeyError):
    """Unknown or duplicate component name, or bad parameters for a component."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class _Entry:
    target: Any  # the callable, or a "module:attr" string for lazy entries
    extra: str | None = None


class Registry(Generic[T]):
    """Maps names to component factories (classes or functions returning ``T``)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, _Entry] = {}
        self._plugins_read = False

    @property
    def group(self) -> str:
        """The entry-point group plugins use for this kind, e.g. ``vcm.codecs``."""
        return "vcm." + self.kind.replace(" ", "_") + "s"

    def _read_plugins(self) -> None:
        """Register the installed packages' entry points of :attr:`group` (once, lazily)."""
        if self._plugins_read:
            return
        self._plugins_read = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.group):
            if ep.name in self._entries:
                raise RegistryError(f"plugin {ep.value!r} ({ep.dist.name if ep.dist else '?'}) registers {self.kind} "
                                    f"{ep.name!r}, which is already registered")
            self._entries[ep.name] = _Entry(ep.value)

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator registering a factory under ``name``; duplicates raise."""

        def deco(obj: Callable[..., T]) -> Callable[..., T]:
            self._add(name, _Entry(obj))
            return obj

        return deco

    def register_lazy(self, name: str, target: str, extra: str | None = None) -> None:
        """Register ``"package.module:attr"`` without importing it; ``extra`` names the pip extra."""
        self._add(name, _Entry(target, extra))

    def _add(self, name: str, entry: _Entry) -> None:
        if name in self._entries:
            raise RegistryError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry

    def names(self) -> list[str]:
        self._read_plugins()
        return sorted(self._entries)

    def extra(self, name: str) -> str | None:
        """The pip extra a lazily registered component needs, if any."""
        entry = self._entries.get(name)
        return entry.extra if entry is not None else None

    def __contains__(self, name: object) -> bool:
        self._read_plugins()
        return name in self._entries

    def get(self, name: str) -> Callable[..., T]:
        """Return the factory for ``name``, importing lazy entries on first use."""
        self._read_plugins()
        entry = self._entries.get(name)
        if entry is None:
            close = difflib.get_close_matches(name, self.names(), n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise RegistryError(
                f"unknown {self.kind} {name!r}{hint} (registered: {', '.join(self.names())})"
            )
        if isinstance(entry.target, str):
            module, _, attr = entry.target.partition(":")
            try:
                obj = getattr(importlib.import_module(module), attr)
            except ImportError as e:
                extra = f" (pip install 'vcm[{entry.extra}]')" if entry.extra else ""
                raise ImportError(f"{self.kind} {name!r} needs {e.name}{extra}") from e
            self._entries[name] = entry = _Entry(obj, entry.extra)
        return entry.target  # type: ignore[no-any-return]

    def build(self, name: str, params: Mapping[str, Any], **context: Any) -> T:
        """Build ``name`` with ``params`` checked against its signature.

        ``context`` holds runtime arguments (e.g. ``device``) passed only if the factory accepts them.
        """
        factory = self.get(name)
        check_params(f"{self.kind} {name!r}", factory, params)
        accepted = inspect.signature(factory).parameters
        extra = {k: v for k, v in context.items() if k in accepted}
        return factory(**params, **extra)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


def import_plugins(modules: list[str] | tuple[str, ...]) -> None:
    """Import modules that register components when imported (an experiment's ``plugins``)."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ImportError(f"plugin module {module!r} cannot be imported: {e}") from e


def check_params(what: str, factory: Callable[..., Any], params: Mapping[str, Any]) -> None:
    """Raise a clear error for unknown or missing keyword arguments of ``factory``."""
    sig = inspect.signature(factory)
    allowed = [p for p in sig.parameters if p not in ("self", "device")]
    unknown = [k for k in params if k not in sig.parameters or k == "device"]
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        raise RegistryError(
            f"{what}: unknown parameter(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(allowed) or '(none)'}"
        )
    missing = [
        n for n, p in sig.parameters.items()
        if p.default is p.empty and p.kind is p.KEYWORD_ONLY and n not in params and n != "device"
    ]
    if missing:
        raise RegistryError(f"{what}: missing required parameter(s) {', '.join(missing)}")
    check_types(what, factory, params)


_SIMPLE = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
           list: "a list", tuple: "a list", dict: "a mapping"}


def check_types(what: str, factory: Callable[..., Any], params: Mapping[str, Any]) -> None:
    """Values of parameters annotated with plain types (int, float, str, bool, lists, mappings,
    unions with None) must be of that type: ``limit: "ten"`` fails here, naming the parameter."""
    try:
        hints = typing.get_type_hints(factory.__init__ if isinstance(factory, type) else factory)
    except Exception:  # unresolvable annotations: nothing to check against
        return
    for name, value in params.items():
        allowed = _plain(hints.get(name))
        if allowed and not any(_fits(value, t) for t in allowed):
            want = " or ".join(dict.fromkeys("null" if t is type(None) else _SIMPLE[t] for t in allowed))
            raise RegistryError(f"{what}: parameter {name!r} must be {want}, got {value!r}")


def _plain(hint: Any) -> tuple[type, ...]:
    """The plain types a hint allows, or () when it holds anything else (then unchecked)."""
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    out = tuple(typing.get_origin(a) or a for a in args)
    return out if out and all(t in _SIMPLE or t is type(None) for t in out) else ()


def _fits(value: Any, t: type) -> bool:
    if t is type(None):
        return value is None
    if t is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if t in (list, tuple):
        return isinstance(value, (list, tuple))
    return isinstance(value, t)
