"""Strict conversion between plain data (YAML, ROS parameters) and typed dataclasses.

Every section of the configuration is a dataclass with defaults; this module turns nested dicts
into those dataclasses and back, rejecting unknown keys and wrongly typed values with an error
that names the dotted key, what was found and what was expected. It knows nothing about robots,
so any module may declare its own config dataclass and reuse it.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type or range."""


class FieldError(ConfigError):
    """A ``validate()`` failure about one field; ``from_dict`` prefixes the section's dotted
    path, so the message names the full key (``learner.capacity: must be >= 1, got -5``)."""

    def __init__(self, name: str, detail: str):
        super().__init__(f"{name}: {detail}")
        self.name, self.detail = name, detail


def from_dict(cls: type, data: Any, path: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``; missing keys keep their defaults."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path or '<root>'}: expected a mapping for {cls.__name__}, "
                          f"found {type(data).__name__} ({data!r})")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{path}." if path else ""
        raise ConfigError(f"unknown keys {', '.join(where + k for k in unknown)}; "
                          f"expected one of: {', '.join(sorted(fields))}")
    kwargs = {}
    for name, value in data.items():
        key = f"{path}.{name}" if path else name
        # A value that was renamed: say its new name (a generic "not allowed" would leave an
        # old config file's user guessing).
        renamed = fields[name].metadata.get("renamed_values", {})
        if isinstance(value, str) and value in renamed:
            raise ConfigError(f"{key}: {value!r} was renamed {renamed[value]!r}; "
                              f"write {key}: {renamed[value]}")
        kwargs[name] = _convert(hints[name], value, key)
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:  # missing field, or the class's own checks
        raise ConfigError(f"{path or '<root>'}: {exc}") from None
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except FieldError as exc:
            raise ConfigError(f"{path}.{exc.name}: {exc.detail}" if path else str(exc)) from None
        except ValueError as exc:
            raise ConfigError(f"{path}: {exc}" if path else str(exc)) from None
    return obj


def to_dict(obj: Any) -> Any:
    """Plain-data form of a config (tuples become lists, so it round-trips through YAML)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else
                          f"{path}: {value!r} matches none of {_type_name(tp)}")
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{path}: {value!r} is not allowed; expected one of {list(allowed)}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, found {type(value).__name__} ({value!r})")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{path}: expected {len(args)} values, found {len(value)}")
            return tuple(_convert(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        items = [_convert(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, found {type(value).__name__}")
        _, val_tp = get_args(tp) or (str, Any)
        return {k: _convert(val_tp, v, f"{path}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true/false, found {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, found {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, found {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{path}: expected a finite number, found {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, found {value!r}")
        return value
    raise ConfigError(f"{path}: unsupported field type {_type_name(tp)}")


def flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists of mappings are kept whole (as YAML text
    is the only way ROS parameters can carry them)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


def unflatten(flat: dict[str, Any]) -> dict:
    nested: dict = {}
    for key, value in flat.items():
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def deep_merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def check(condition: bool, message: str) -> None:
    """Validation helper for ``validate()`` methods of config dataclasses."""
    if not condition:
        raise ConfigError(message)


def require(obj: Any, minimum: float, *names: str, strict: bool = False) -> None:
    """Every field in ``names`` must be ``>= minimum`` (``> minimum`` when ``strict``): counts,
    periods, sizes and timeouts where zero or a negative value would stall or break a node."""
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not (value > minimum if strict else value >= minimum):
            raise FieldError(name, f"must be {'>' if strict else '>='} {minimum:g}, got {value!r}")


def require_positive(obj: Any, *names: str) -> None:
    """Counts (``>= 1``) and periods/sizes (``> 0``) that must be positive."""
    for name in names:
        value = getattr(obj, name)
        require(obj, 1 if isinstance(value, int) and not isinstance(value, bool) else 0, name,
                strict=not isinstance(value, int))


_ = typing  # typing is imported for forward references in annotated dataclasses
