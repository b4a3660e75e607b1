# SPDX-License-Identifier: LGPL-2.1-or-later
"""Group and VM specs (docs/spec.md) as Python values.

vmgrd parses specs strictly and names the JSON path of what it refuses; this
module only turns what a caller passes (a dict, a JSON string, None) into
the JSON text vmgrd takes, and checks names before they become bus calls,
so a typo fails at once with the same exception vmgrd would raise.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Union

from .errors import InvalidName, InvalidSpec

__all__ = ["Spec", "check_name", "check_file_name", "group_spec_json",
           "vm_spec_json", "vm_names"]

#: What the API takes as a spec: a mapping, JSON text, or None (empty).
Spec = Union[Mapping[str, Any], str, None]

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,62}")
_FILE_NAME = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9._+-]{0,127}")


def check_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it is a valid group, VM or snapshot name (1-63 of
    ``[A-Za-z0-9._-]``, not starting with ``.`` or ``-``), else raise
    :class:`InvalidName`."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidName(f"invalid {what} {name!r}: must be 1-63 of [A-Za-z0-9._-], "
                          "not starting with '.' or '-'")
    return name


def check_file_name(name: str) -> str:
    """Return ``name`` if a group may serve a file under it (1-128 of
    ``[A-Za-z0-9._+-]``, not starting with ``.`` or ``-``), else raise
    :class:`InvalidName`."""
    if not isinstance(name, str) or not _FILE_NAME.fullmatch(name):
        raise InvalidName(f"invalid file name {name!r}: must be 1-128 of [A-Za-z0-9._+-], "
                          "not starting with '.' or '-'")
    return name


def _to_object(spec: Spec, path: str) -> dict[str, Any] | None:
    if spec is None:
        return None
    if isinstance(spec, str):
        if spec.strip() == "":
            return None
        try:
            value = json.loads(spec)
        except json.JSONDecodeError as e:
            raise InvalidSpec(f"invalid spec: {path}: not valid JSON: {e.msg} at byte {e.pos}") from None
    else:
        value = spec
    if not isinstance(value, Mapping):
        raise InvalidSpec(f"invalid spec: {path}: must be an object")
    return dict(value)


def _dumps(value: dict[str, Any], path: str) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InvalidSpec(f"invalid spec: {path}: {e}") from None


def group_spec_json(spec: Spec) -> str:
    """The JSON text ``CreateGroup`` takes for ``spec``: ``""`` (a
    network-only group) for None, an empty string or an empty mapping.

    Checks the shape vmgrd's own parser would refuse first: an object whose
    ``vms`` is a list of objects, each with a valid and distinct ``name``.
    """
    value = _to_object(spec, ".")
    if not value:
        return ""
    vm_names(value)
    return _dumps(value, ".")


def vm_names(spec: Spec) -> list[str]:
    """The names of the VMs of group spec ``spec``, in order."""
    value = _to_object(spec, ".") or {}
    vms = value.get("vms", [])
    if not isinstance(vms, list):
        raise InvalidSpec("invalid spec: vms: must be an array")
    names: list[str] = []
    for i, vm in enumerate(vms):
        if not isinstance(vm, Mapping):
            raise InvalidSpec(f"invalid spec: vms[{i}]: must be an object")
        if "name" not in vm:
            raise InvalidSpec(f"invalid spec: vms[{i}].name: missing")
        name = vm["name"]
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise InvalidSpec(f"invalid spec: vms[{i}].name: not a valid VM name")
        if name in names:
            raise InvalidSpec(f"invalid spec: vms[{i}].name: '{name}' is used twice")
        names.append(name)
    return names


def vm_spec_json(name: str, spec: Spec) -> str:
    """The JSON text ``AddVM`` takes: ``""`` (the default VM) for None or
    an empty spec. A ``name`` in ``spec`` must be the VM's name."""
    check_name(name, "VM name")
    value = _to_object(spec, ".")
    if not value:
        return ""
    if "name" in value and value["name"] != name:
        raise InvalidSpec(f"invalid spec: name: '{value['name']}' is not the VM's name '{name}'")
    return _dumps(value, ".")
