"""Ansible inventories for running instances, using the community.docker.nsenter connection."""

from __future__ import annotations

import json
from collections.abc import Iterable

from ._instance import Instance

# community.docker.nsenter ships in the PyPI "ansible" package (not in
# ansible-core). It runs nsenter on the controller, so no SSH is needed inside.
CONNECTION = "community.docker.nsenter"
PYTHON_INTERPRETER = "/usr/bin/python3"

FORMATS = ("yaml", "ini", "json")


def host_variables(instance: Instance) -> dict[str, object]:
    """Return the connection variables for one running instance."""
    instance.require_running()
    return {
        "ansible_connection": CONNECTION,
        "ansible_nsenter_pid": instance.init_pid,
        "ansible_python_interpreter": PYTHON_INTERPRETER,
    }


def render_inventory(
    names: Iterable[str], *, group: str = "testbed", output_format: str = "yaml"
) -> str:
    """Return an inventory with every instance in ``names`` as a host of ``group``."""
    hosts = {name: host_variables(Instance.attach(name)) for name in names}
    if output_format == "json":
        # The layout that an inventory script prints for --list, so a two-line
        # wrapper script can serve as a dynamic inventory.
        return (
            json.dumps(
                {
                    "_meta": {"hostvars": hosts},
                    group: {"hosts": list(hosts)},
                    "all": {"children": [group]},
                },
                indent=2,
            )
            + "\n"
        )
    if output_format == "ini":
        lines = [f"[{group}]"]
        for name, variables in hosts.items():
            lines.append(" ".join([name, *(f"{key}={value}" for key, value in variables.items())]))
        return "\n".join(lines) + "\n"
    if output_format == "yaml":
        lines = ["all:", "  children:", f"    {group}:", "      hosts:"]
        for name, variables in hosts.items():
            lines.append(f"        {name}:")
            lines.extend(f"          {key}: {value}" for key, value in variables.items())
        return "\n".join(lines) + "\n"
    raise ValueError(f"unknown inventory format {output_format!r}; use one of {', '.join(FORMATS)}")
