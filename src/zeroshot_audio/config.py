"""The one strict builder behind every ``*Config.from_dict``.

Parameters arrive from YAML as plain mappings; a typo there (``tua: 0.5``) must be an error naming
the key, never a silent fall-back to the default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def unknown_keys(config_class: type, params: Mapping[str, Any]) -> list[str]:
    """Keys of ``params`` that are not fields of the dataclass ``config_class``."""
    known = {f.name for f in fields(config_class)}
    return sorted(set(params) - known)


def build_strict(config_class: type[T], params: Mapping[str, Any] | None, what: str) -> T:
    """``config_class(**params)``; an unknown key is a ``ValueError`` naming it and ``what``."""
    params = dict(params or {})
    unknown = unknown_keys(config_class, params)
    if unknown:
        known = sorted(f.name for f in fields(config_class))
        raise ValueError(f"unknown {what} parameter(s) {unknown}; known: {known}")
    return config_class(**params)
