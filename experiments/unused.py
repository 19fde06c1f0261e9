"""Refusing experiment config fields that the other settings leave without effect.

A field set away from its default where it changes nothing (the orthogonal
link's bits when no orthogonal scheme runs, antennas on AWGN alone) is a
mistake the user should hear about before a run, not a silent no-op.
"""

import dataclasses

from airinfer.experiments.config import ConfigError

__all__ = ["refuse_unused", "refuse_invalid"]


def refuse_unused(config, names, reason: str) -> None:
    """Refuse the fields ``names`` of ``config`` set away from their defaults.

    Raises:
        ConfigError: ``"bits: 4 would have no effect: <reason> (leave it at 8)"``,
            naming the first such field.
    """
    defaults = {field.name: field.default for field in dataclasses.fields(config)}
    for name in names:
        value = getattr(config, name)
        if value != defaults[name]:
            raise ConfigError(
                f"{name}: {value!r} would have no effect: {reason} (leave it at {defaults[name]!r})"
            )


def refuse_invalid(field: str, build, *args, **kwargs):
    """``build(*args, **kwargs)``, a ValueError turned into a ConfigError naming ``field``.

    For the objects a run builds from its config after training (links,
    over-the-air configs): built once at config time, they fail before any work.
    """
    try:
        return build(*args, **kwargs)
    except ConfigError:
        raise
    except ValueError as error:
        raise ConfigError(f"{field}: {error}") from None
