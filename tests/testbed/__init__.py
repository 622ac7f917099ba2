"""Booted Debian 12 systems with systemd as PID 1, for systemd unit tests and Molecule.

Each instance is a systemd-nspawn container on an overlay of one cached root
file system, with its own cgroups so that MemoryMax= and TasksMax= are
enforced. Needs root, systemd-nspawn (systemd-container) and mmdebstrap.

    from tests.testbed import Instance

    with Instance("unit-test") as instance:
        instance.run(["systemctl", "start", "leadd.service"])
"""

from ._errors import TestbedError
from ._instance import Instance, list_instances
from ._mounts import BindMount
from ._rootfs import BASE_PACKAGES, ensure_rootfs, recipe_hash

__all__ = [
    "BASE_PACKAGES",
    "BindMount",
    "Instance",
    "TestbedError",
    "ensure_rootfs",
    "list_instances",
    "recipe_hash",
]
