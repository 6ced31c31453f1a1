"""Flags from the config dataclasses (help from each field's metadata), and the CLI's usage error."""

import argparse
import dataclasses


class UsageError(Exception):
    """A flag or path the user gave cannot be used; the message says which and why (exit code 2)."""


def add_dataclass_flags(group, cls, choices: dict | None = None) -> None:
    """One --flag per field of a config dataclass, typed and defaulted from it, its help from the field's metadata."""
    defaults = cls()
    for field in dataclasses.fields(cls):
        flag = "--" + field.name.replace("_", "-")
        help_text = field.metadata["help"]
        if field.type is bool:
            # --time-of-day / --no-time-of-day; BooleanOptionalAction adds the default to the help.
            group.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=getattr(defaults, field.name), help=help_text
            )
            continue
        group.add_argument(
            flag,
            type=field.type,
            default=getattr(defaults, field.name),
            choices=(choices or {}).get(field.name),
            help=f"{help_text} (default: %(default)s)",
        )


def from_flags(cls, args: argparse.Namespace):
    """The config dataclass built from its flags; an invalid value is a usage error."""
    try:
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})
    except ValueError as e:
        raise UsageError(str(e)) from e


def flags_of(changes: dict) -> str:
    """A candidate's changes as the run flags that make them, e.g. --units 64 --layers 2."""
    out = []
    for name, value in changes.items():
        flag = "--" + name.replace("_", "-")
        out.append(flag if value is True else f"{flag} {value}")
    return " ".join(out)
