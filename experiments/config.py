"""Typed experiment configs: dotted overrides from the command line, JSON round trips.

A config is a frozen dataclass whose fields are annotated with one of the types
below (nested config dataclasses allowed). :func:`apply_overrides` returns a new
config with some fields replaced, checking every key and value against the
annotations, so that a typo fails before any computation starts:

>>> import dataclasses
>>> from typing import Literal
>>> @dataclasses.dataclass(frozen=True)
... class Channel:
...     kind: Literal["awgn", "rayleigh"] = "awgn"
>>> @dataclasses.dataclass(frozen=True)
... class Config:
...     seed: int = 0
...     snr_db: tuple[float, ...] = (0.0, 10.0)
...     channel: Channel = Channel()
>>> apply_overrides(Config(), ["snr_db=[0,5,10]", "channel.kind=rayleigh"])
Config(seed=0, snr_db=(0.0, 5.0, 10.0), channel=Channel(kind='rayleigh'))

Supported field types: ``int``, ``float``, ``bool``, ``str``, ``tuple[T, ...]``
and fixed-length tuples (given as ``a,b,c`` or ``[a,b,c]``), ``Optional[T]`` /
``T | None`` (``none`` or ``null``), other unions (tried in order),
``Literal[...]`` (one of the choices) and nested dataclasses (``a.b=value``).
"""

import dataclasses
import difflib
import functools
import json
import math
import numbers
import types
import typing
from collections.abc import Mapping, Sequence

__all__ = [
    "ConfigError",
    "apply_overrides",
    "check_config",
    "flat_dict",
    "from_dict",
    "leaf_keys",
    "to_dict",
    "to_json_dict",
]

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_NONE = frozenset({"none", "null"})


class ConfigError(ValueError):
    """A config key or value that does not fit the config's declared fields."""


class _Mismatch(Exception):
    """A value that does not fit a type; carries what the type allows."""

    def __init__(self, expected: str):
        super().__init__(expected)
        self.expected = expected


@functools.cache
def _is_bool(value) -> bool:
    """A Python or NumPy bool (the int 1 is none); NumPy is not imported for it, since
    ``airinfer list`` and ``--help`` read configs without loading NumPy."""
    kind = type(value)
    return kind is bool or (kind.__module__ == "numpy" and kind.__name__ in ("bool", "bool_"))


def _field_types(config_type: type) -> dict[str, object]:
    """Field name -> resolved annotation (string annotations evaluated)."""
    hints = typing.get_type_hints(config_type)
    return {field.name: hints[field.name] for field in dataclasses.fields(config_type)}


def _is_config_type(tp) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def leaf_keys(config_type: type, prefix: str = "") -> list[str]:
    """Every settable dotted key of a config type, in field order."""
    keys = []
    for name, tp in _field_types(config_type).items():
        if _is_config_type(tp):
            keys.extend(leaf_keys(tp, f"{prefix}{name}."))
        else:
            keys.append(prefix + name)
    return keys


# ----------------------------------------------------------------------------- types


def _is_union(tp) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _describe(tp) -> str:
    """What a type allows, in words, for error messages."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is bool:
        return "bool (true/false)"
    if tp in (int, float, str):
        return tp.__name__
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(choice) for choice in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"comma-separated {_describe(args[0])} values (a,b,c or [a,b,c])"
        return f"{len(args)} comma-separated values ({', '.join(map(_describe, args))})"
    if _is_union(tp):
        return " or ".join("none" if arg is type(None) else _describe(arg) for arg in args)
    if _is_config_type(tp):
        return "a group of fields: " + ", ".join(leaf_keys(tp))
    return getattr(tp, "__name__", str(tp))


def _unquote(text: str) -> str:
    """Drop one pair of matching quotes, which shells and users sometimes leave in."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _split_sequence(text: str) -> list[str]:
    """``a,b,c``, ``[a,b,c]`` or ``(a,b,c)`` -> the stripped items (``[]`` -> none)."""
    text = text.strip()
    if len(text) >= 2 and (text[0], text[-1]) in (("[", "]"), ("(", ")")):
        text = text[1:-1].strip()
    if not text:
        return []
    return [item.strip() for item in text.split(",")]


def _parse_text(text: str, tp):
    """Parse command-line text to a value of type ``tp``; raises :class:`_Mismatch`."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    stripped = text.strip()
    try:
        if tp is bool:
            if stripped.lower() in _TRUE:
                return True
            if stripped.lower() in _FALSE:
                return False
            raise ValueError(text)
        if tp is int:
            return int(stripped)
        if tp is float:
            return float(stripped)
    except ValueError:
        raise _Mismatch(_describe(tp)) from None
    if tp is str:
        return _unquote(text)
    if origin is typing.Literal:
        for choice in args:
            candidate = _unquote(stripped) if isinstance(choice, str) else stripped
            try:
                if _parse_text(candidate, type(choice)) == choice:
                    return choice
            except _Mismatch:
                continue
        raise _Mismatch(_describe(tp))
    if origin is tuple:
        items = _split_sequence(text)
        try:
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_parse_text(item, args[0]) for item in items)
            if len(items) != len(args):
                raise _Mismatch(_describe(tp))
            return tuple(_parse_text(item, arg) for item, arg in zip(items, args, strict=True))
        except _Mismatch:
            raise _Mismatch(_describe(tp)) from None
    if _is_union(tp):
        if type(None) in args and stripped.lower() in _NONE:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _parse_text(text, arg)
            except _Mismatch:
                continue
        raise _Mismatch(_describe(tp))
    raise _Mismatch(f"{_describe(tp)}, which cannot be set from text")


def _holds_text(tp) -> bool:
    """Whether some value of ``tp`` is a string (then strings are taken as they are)."""
    if tp is str:
        return True
    if typing.get_origin(tp) is typing.Literal:
        return any(isinstance(choice, str) for choice in typing.get_args(tp))
    return _is_union(tp) and any(_holds_text(arg) for arg in typing.get_args(tp))


def _check_value(value, tp):
    """Check (and gently convert) a Python or JSON value to type ``tp``.

    Ints are accepted for floats and lists for tuples (JSON has neither floats
    that look like ints nor tuples); strings are parsed as command-line text.
    """
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if isinstance(value, str) and not _holds_text(tp):
        return _parse_text(value, tp)
    if tp is bool:
        if _is_bool(value):  # the int 1 is no bool
            return bool(value)
    elif tp is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
    elif tp is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin is typing.Literal:
        for choice in args:
            if type(value) is type(choice) and value == choice:
                return choice
    elif origin is tuple:
        if isinstance(value, (list, tuple)):
            try:
                if len(args) == 2 and args[1] is Ellipsis:
                    return tuple(_check_value(item, args[0]) for item in value)
                if len(value) == len(args):
                    return tuple(_check_value(v, a) for v, a in zip(value, args, strict=True))
            except _Mismatch:
                pass
    elif _is_union(tp):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_value(value, arg)
            except _Mismatch:
                continue
    elif _is_config_type(tp):
        if isinstance(value, tp):
            return value
        if isinstance(value, Mapping):
            return from_dict(tp, value)
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    raise _Mismatch(_describe(tp))


# ------------------------------------------------------------------------- overrides


def _unknown_key(source: str, key: str, valid: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"{source}: unknown key {key!r}{hint}; valid keys: {', '.join(valid)}")


class _Changes(dict):
    """Field name -> new value, or -> the :class:`_Changes` of a nested config."""


def _record(config, changes: _Changes, key, raw, from_text: bool, source: str, root_type: type):
    """Check the dotted ``key`` and its value against ``config``'s types; note it in ``changes``.

    Only the field's type is checked here; the configs' own checks
    (``__post_init__``) run once, on the final config (:func:`_build`).
    """
    parts = key.split(".")
    for depth, name in enumerate(parts):
        here = ".".join(parts[: depth + 1])
        field_types = _field_types(type(config))
        if name not in field_types:
            raise _unknown_key(source, key, leaf_keys(root_type))
        tp = field_types[name]
        if depth + 1 < len(parts):
            if not _is_config_type(tp):
                raise ConfigError(
                    f"{source}: {here!r} has no sub-fields; valid keys: "
                    f"{', '.join(leaf_keys(root_type))}"
                )
            config = getattr(config, name)
            changes = changes.setdefault(name, _Changes())
            continue
        if _is_config_type(tp):
            raise ConfigError(
                f"{source}: {key!r} is a group; set one of {', '.join(leaf_keys(tp, key + '.'))}"
            )
        try:
            changes[name] = _parse_text(raw, tp) if from_text else _check_value(raw, tp)
        except _Mismatch as mismatch:
            raise ConfigError(f"{source}: expected {mismatch.expected}, got {raw!r}") from None


def _build(config, changes: _Changes):
    """``config`` with ``changes`` made, each (nested) config constructed once."""
    values = {
        name: _build(getattr(config, name), change) if isinstance(change, _Changes) else change
        for name, change in changes.items()
    }
    return dataclasses.replace(config, **values)


def _items(overrides) -> list[tuple[str, str, object, bool]]:
    """``(source, key, value, from_text)`` of each override item."""
    if isinstance(overrides, Mapping):
        return [
            (f"override {key}={value!r}", key, value, False) for key, value in overrides.items()
        ]
    if isinstance(overrides, str):
        raise TypeError("overrides must be a sequence of 'key=value' strings, not one string")
    items = []
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item}: expected key=value, e.g. seed=1")
        items.append((f"--set {item}", key.strip(), text, True))
    return items


def apply_overrides(config, overrides: Sequence[str] | Mapping[str, object], *more):
    """Return a copy of ``config`` with dotted fields replaced.

    Every key and value is checked against the field's type as it is read; the
    config's own checks (its ``__post_init__``, cross-field ones included) then
    run once on the final config, after every item is applied, so that the
    order of the items does not matter.

    Args:
        config: a frozen config dataclass instance.
        overrides: either command-line items ``"dotted.key=value"`` (values are
            parsed from text according to each field's annotation) or a mapping
            ``{"dotted.key": value}`` whose values are Python values (checked,
            ints accepted for floats, lists for tuples) or text (parsed).
            Later items win.
        *more: further groups of items of either kind, applied after ``overrides``
            (e.g. ``--quick``'s mapping, then the ``--set`` items).

    Returns:
        The new config; ``config`` itself is unchanged.

    Raises:
        ConfigError: one line naming the item, the key, the value and what is
            allowed, e.g. ``--set snr_db=abc: expected float, got 'abc'``.
    """
    items = [item for group in (overrides, *more) for item in _items(group)]
    changes = _Changes()
    for source, key, value, from_text in items:
        _record(config, changes, key, value, from_text, source, type(config))
    try:
        return _build(config, changes)
    except ValueError as error:  # the config's own checks (__post_init__) refused it
        # blamed on the command-line items, which the user can change
        blamed = [source for source, *_, from_text in items if from_text] or [
            source for source, *_ in items
        ]
        prefix = f"{' '.join(blamed)}: " if blamed and len(blamed) <= 4 else ""
        raise ConfigError(f"{prefix}{error}") from None


# ------------------------------------------------------------------------------ JSON


def to_dict(config) -> dict:
    """The config as nested dicts of plain values, fields in declaration order.

    Tuples stay tuples; use :func:`to_json_dict` for what JSON gives back.
    """
    return {
        field.name: to_dict(value) if dataclasses.is_dataclass(value) else value
        for field in dataclasses.fields(config)
        for value in [getattr(config, field.name)]
    }


def to_json_dict(config) -> dict:
    """The config exactly as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(to_dict(config)))


def flat_dict(data: dict, prefix: str = "") -> dict:
    """Nested dicts (a config's JSON) -> ``{"dotted.key": value}``, the ``--set`` keys."""
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(flat_dict(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def from_dict(config_type: type, data: Mapping, prefix: str = ""):
    """Build a config of ``config_type`` from (JSON) data, checking every field.

    Missing fields take their defaults; unknown fields are an error, so that a
    results folder written by an older config is noticed rather than misread.
    """
    field_types = _field_types(config_type)
    values = {}
    for name, value in data.items():
        key = prefix + name
        if name not in field_types:
            raise _unknown_key(f"field {key}", key, leaf_keys(config_type, prefix))
        tp = field_types[name]
        try:
            if _is_config_type(tp) and isinstance(value, Mapping):
                values[name] = from_dict(tp, value, key + ".")
            else:
                values[name] = _check_value(value, tp)
        except _Mismatch as mismatch:
            raise ConfigError(f"field {key}: expected {mismatch.expected}, got {value!r}") from None
    try:
        return config_type(**values)
    except ValueError as error:  # the config's own checks (__post_init__) refused it
        raise ConfigError(f"{prefix.rstrip('.') or config_type.__name__}: {error}") from None


# ---------------------------------------------------------------------- common checks

#: Seeds lie in [0, SEED_LIMIT): what both NumPy's and JAX's generators take.
SEED_LIMIT = 2**63
#: Every integer field fits a signed 64-bit integer (what the arrays hold).
INT_LIMIT = 2**63


def _is_seed(name: str) -> bool:
    return name == "seed" or name.endswith("_seed")


def check_config(config, prefix: str = "") -> None:
    """Checks every config passes, beside its own: seeds, 64-bit integers, finite floats.

    A seed (a field named ``seed`` or ``*_seed``) lies in ``[0, 2**63)``; the
    ``devices`` setting (:mod:`airinfer.experiments.sharding`) is none or
    ``>= 1`` (whether this machine has that many is checked when a run
    starts); a ``bool`` field holds a bool (a NumPy one too; not 1 or
    ``"yes"``); every integer fits 64 bits; no float is NaN, and none is infinite unless the
    config lists the field in its ``INFINITE_FIELDS`` (e.g. a privacy level
    ε = ∞). Nested configs are checked with their dotted keys.

    Raises:
        ConfigError: one line naming the field, the value and what is allowed.
    """
    infinite_ok = getattr(type(config), "INFINITE_FIELDS", ())
    field_types = _field_types(type(config))
    for field in dataclasses.fields(config):
        key, value = prefix + field.name, getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            check_config(value, key + ".")
            continue
        if field_types[field.name] is bool and not _is_bool(value):
            raise ConfigError(f"{key}: {value!r} is not a bool (True or False)")
        if field.name == "devices" and isinstance(value, int) and value < 1:
            raise ConfigError(f"{key}: {value} is not >= 1 (or none: all devices)")
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, bool):
                continue
            if isinstance(item, int):
                if _is_seed(field.name) and not 0 <= item < SEED_LIMIT:
                    raise ConfigError(f"{key}: {item} is not a seed in [0, 2**63)")
                if not -INT_LIMIT <= item < INT_LIMIT:
                    raise ConfigError(f"{key}: {item} does not fit a 64-bit integer")
            elif isinstance(item, float):
                if math.isnan(item):
                    raise ConfigError(f"{key}: nan is not allowed (a finite number is)")
                if math.isinf(item) and field.name not in infinite_ok:
                    raise ConfigError(f"{key}: {item} is not allowed (a finite number is)")
