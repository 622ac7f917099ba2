"""One booted Debian 12 instance: overlay, cgroups, systemd-nspawn, and commands via nsenter."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Self

from . import _proc
from ._cgroups import (
    CGROUP_PREFIX,
    create_cgroups,
    instance_cgroup_paths,
    join_script,
    member_pids,
    remove_cgroups,
)
from ._config import (
    require_root,
    require_tool,
    state_dir,
    validate_name,
)
from ._errors import TestbedError
from ._exec import nsenter_argv, output_tail, run_captured
from ._lock import exclusive_lock, remove_lock_file
from ._mounts import BindMount, is_mount_point, mount_overlay, mounts_under, safe_rmtree, unmount
from ._rootfs import INIT_WRAPPER_PATH, ensure_rootfs

log = logging.getLogger(__name__)

NSPAWN_COMM = "systemd-nspawn"
STATE_FILE = "instance.json"
PID_FILE = "nspawn.pid"
CONSOLE_LOG = "console.log"

# Boot to "running" took 0.3-0.45 s and a clean halt 0.16-0.22 s on a 2-core
# machine (python -m tests.testbed.measure). The defaults leave room for a
# loaded CI machine.
DEFAULT_BOOT_TIMEOUT = 90.0
# After this, systemd-nspawn gets SIGKILL.
DEFAULT_STOP_TIMEOUT = 30.0
DEFAULT_RUN_TIMEOUT = 120.0
# Maximum wait for the instance lock. It is held during up, which may include
# a cold root file system build.
_LOCK_TIMEOUT = 1800.0
_POLL_SECONDS = 0.05
_CONSOLE_TAIL_LINES = 20

# systemd-nspawn (checked with version 252) keeps an image lock file named after
# the device and inode of the root directory, and a per-machine propagation
# folder. It removes both on a normal exit but not when it is killed.
_NSPAWN_LOCK_FOLDER = Path("/run/systemd/nspawn/locks")
_NSPAWN_PROPAGATE_FOLDER = Path("/run/systemd/nspawn/propagate")


class Instance:
    """A Debian 12 system with systemd as PID 1, booted by systemd-nspawn on an overlay.

    Use it as a context manager, or call up() and down(). All state lives in
    ``$LEADD_TESTBED_STATE/NAME/`` (default /run/leadd-testbed/NAME/), so
    another process can attach to a running instance by name.
    """

    # Keep pytest from collecting this class as a test case.
    __test__ = False

    def __init__(
        self,
        name: str,
        *,
        packages: Iterable[str] = (),
        bind_ro: Iterable[str | BindMount] = (),
        rootfs: Path | None = None,
        boot_timeout: float = DEFAULT_BOOT_TIMEOUT,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
    ):
        self.name = validate_name(name)
        self.packages = tuple(packages)
        self.bind_ro = [b if isinstance(b, BindMount) else BindMount.parse(b) for b in bind_ro]
        self.boot_timeout = boot_timeout
        self.stop_timeout = stop_timeout
        self._requested_rootfs = Path(rootfs) if rootfs else None
        self.rootfs: Path | None = self._requested_rootfs
        self.state_path = state_dir() / self.name
        self.cgroups: list[Path] = []
        self.nspawn_pid: int | None = None
        self.init_pid: int | None = None
        self.system_state: str | None = None
        self.failed_units: list[str] = []
        self.boot_seconds: float | None = None
        self._process: subprocess.Popen | None = None
        self._load_state()

    @classmethod
    def attach(cls, name: str) -> Instance:
        """Return the instance ``name`` that an earlier ``up`` (in any process) started."""
        instance = cls(name)
        if not (instance.state_path / STATE_FILE).is_file():
            raise TestbedError(
                f"no instance named {name} in {instance.state_path.parent}: "
                f"start it with 'python -m tests.testbed up {name}'"
            )
        return instance

    @property
    def root(self) -> Path:
        """Host path of the instance's root file system (the merged overlay)."""
        return self.state_path / "root"

    @property
    def console_log(self) -> Path:
        return self.state_path / CONSOLE_LOG

    def __enter__(self) -> Self:
        return self.up()

    def __exit__(self, *exc_info) -> None:
        self.down()

    def __repr__(self) -> str:
        return f"Instance({self.name!r}, nspawn_pid={self.nspawn_pid}, init_pid={self.init_pid})"

    def is_alive(self) -> bool:
        """Return whether systemd-nspawn and the instance's PID 1 both still run."""
        return (
            _proc.is_running(self.nspawn_pid, NSPAWN_COMM)
            and _proc.is_running(self.init_pid)
            and _proc.parent_pid(self.init_pid) == self.nspawn_pid
        )

    # Booting

    def up(self) -> Instance:
        """Boot the instance and wait until systemd reports running or degraded.

        Stale state left by a crashed run of the same name is cleaned up first.
        On failure everything is torn down again and TestbedError is raised with
        the end of the console log.
        """
        require_root()
        nspawn = require_tool("systemd-nspawn")
        require_tool("nsenter")
        with self._lock():
            if self.state_path.exists():
                if self.is_alive():
                    raise TestbedError(
                        f"instance {self.name} is already running (systemd-nspawn PID "
                        f"{self.nspawn_pid}): reuse it, or run "
                        f"'python -m tests.testbed down {self.name}'"
                    )
                log.info("removing stale state of instance %s", self.name)
                self._teardown()

            rootfs = self._requested_rootfs or ensure_rootfs(self.packages)
            started = time.monotonic()
            try:
                self._prepare(rootfs)
                self._start(nspawn)
                self._wait_until_booted(started + self.boot_timeout)
            except BaseException:
                # A half-booted systemd may ignore the halt signal, so skip the clean poweroff.
                self._teardown(graceful=False)
                remove_lock_file(self._lock_path)
                raise
            self.boot_seconds = round(time.monotonic() - started, 3)
            self._save_state()
        log.info(
            "instance %s is %s after %.2f s (init PID %s)",
            self.name,
            self.system_state,
            self.boot_seconds,
            self.init_pid,
        )
        return self

    def _prepare(self, rootfs: Path) -> None:
        self.rootfs = rootfs
        for folder in ("upper", "work", "root"):
            (self.state_path / folder).mkdir(parents=True, exist_ok=True)
        # Record the cgroups before creating them, so a crash in between leaves
        # enough state for down to remove them.
        self.cgroups = instance_cgroup_paths(self.name)
        self._save_state()

        mount_overlay(rootfs, self.state_path / "upper", self.state_path / "work", self.root)
        self._write_identity()
        create_cgroups(self.cgroups)

    def _write_identity(self) -> None:
        """Write /etc/hostname and /etc/hosts so that sudo and others resolve the hostname."""
        etc = self.root / "etc"
        (etc / "hostname").write_text(f"{self.name}\n")
        (etc / "hosts").write_text(
            "127.0.0.1\tlocalhost\n"
            f"127.0.1.1\t{self.name}\n"
            "::1\tlocalhost ip6-localhost ip6-loopback\n"
        )

    def _start(self, nspawn: str) -> None:
        command = [
            nspawn,
            "--directory",
            str(self.root),
            "--machine",
            self.name,
            "--register=no",
            "--keep-unit",
            "--console=passive",
            "--kill-signal=SIGRTMIN+3",
            "--private-network",
            "--link-journal=no",
            "--resolv-conf=off",
            "--timezone=off",
            *(bind.nspawn_option() for bind in self.bind_ro),
            INIT_WRAPPER_PATH,
        ]
        # The shell joins the instance cgroups and then execs systemd-nspawn, so
        # nspawn starts inside them and keeps the shell's PID.
        script = join_script(self.cgroups) + ' && exec "$@"'
        with open(self.console_log, "ab") as console:
            self._process = subprocess.Popen(
                ["/bin/sh", "-c", script, "sh", *command],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.nspawn_pid = self._process.pid
        (self.state_path / PID_FILE).write_text(f"{self.nspawn_pid}\n")
        self._save_state()

    def _wait_until_booted(self, deadline: float) -> None:
        self.init_pid = self._wait_for_init(deadline)
        self._save_state()

        private_socket = Path(f"/proc/{self.init_pid}/root/run/systemd/private")
        while not private_socket.exists():
            self._check_nspawn_running()
            if time.monotonic() > deadline:
                raise self._boot_error(f"{private_socket} did not appear")
            time.sleep(_POLL_SECONDS)

        remaining = max(deadline - time.monotonic(), 1.0)
        try:
            result = self.run(
                ["systemctl", "is-system-running", "--wait"], check=False, timeout=remaining
            )
        except TestbedError as error:
            raise self._boot_error(f"systemctl is-system-running --wait failed: {error}") from error
        self.system_state = result.stdout.strip()
        if self.system_state == "degraded":
            self.failed_units = self._failed_units()
            log.warning(
                "instance %s is degraded; failed units: %s", self.name, ", ".join(self.failed_units)
            )
        elif self.system_state != "running":
            jobs = self.run(["systemctl", "list-jobs", "--no-pager"], check=False).stdout
            raise self._boot_error(f"systemd reports {self.system_state!r}; pending jobs:\n{jobs}")

    def _wait_for_init(self, deadline: float) -> int:
        """Return the PID (in the host's namespace) of the instance's PID 1."""
        while time.monotonic() < deadline:
            self._check_nspawn_running()
            if _proc.read_comm(self.nspawn_pid) == NSPAWN_COMM:
                for child in _proc.children(self.nspawn_pid):
                    if _proc.namespace_pid(child) == 1:
                        return child
            time.sleep(_POLL_SECONDS)
        raise self._boot_error("systemd-nspawn started no PID 1")

    def _check_nspawn_running(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            raise self._boot_error(f"systemd-nspawn exited with status {self._process.returncode}")

    def _boot_error(self, failure: str) -> TestbedError:
        return TestbedError(
            f"booting instance {self.name} failed: {failure} within {self.boot_timeout:g} s. "
            "Last lines of its console log:\n" + self._console_tail()
        )

    def _console_tail(self) -> str:
        try:
            lines = self.console_log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no console log)"
        return "\n".join(lines[-_CONSOLE_TAIL_LINES:])

    def _failed_units(self) -> list[str]:
        result = self.run(
            ["systemctl", "list-units", "--failed", "--plain", "--no-legend", "--no-pager"],
            check=False,
        )
        return [line.split()[0] for line in result.stdout.splitlines() if line.strip()]

    # Commands

    def exec_argv(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> list[str]:
        """Return the host command line that runs ``argv`` inside the instance via nsenter.

        The command gets a clean environment: PATH, HOME=/root and ``env``.

        NOTE: nsenter enters the instance's namespaces but not its cgroups, so
        the command counts against the caller's cgroups, not the instance's
        limits. Start work that must run under a limit as a unit (systemd-run).
        """
        self.require_running()
        return nsenter_argv(self.init_pid, argv, env)

    def run(
        self,
        command: str | Sequence[str],
        *,
        check: bool = True,
        input: str | bytes | None = None,
        timeout: float = DEFAULT_RUN_TIMEOUT,
        env: Mapping[str, str] | None = None,
        text: bool = True,
    ) -> subprocess.CompletedProcess:
        """Run ``command`` inside the instance as root and return its output.

        A string runs through /bin/sh -c. With ``check``, a non-zero exit status
        raises TestbedError whose ``result`` is the CompletedProcess. On
        timeout the nsenter process group is killed and TestbedError is raised.
        """
        argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
        result = run_captured(self.exec_argv(argv, env), input=input, timeout=timeout, text=text)
        if result is None:
            raise TestbedError(
                f"command {argv} in instance {self.name} timed out after {timeout:g} s"
            )
        result.args = argv
        if check and result.returncode != 0:
            raise TestbedError(
                f"command {argv} in instance {self.name} exited with status {result.returncode}: "
                f"{output_tail(result.stderr)}",
                result=result,
            )
        return result

    def require_running(self) -> None:
        """Raise TestbedError unless the instance is booted and its processes still run."""
        if not self.is_alive():
            raise TestbedError(
                f"instance {self.name} is not running (systemd-nspawn PID {self.nspawn_pid}, "
                f"init PID {self.init_pid}): run 'python -m tests.testbed down {self.name}' "
                f"and then 'up {self.name}'"
            )

    # Stopping

    def down(self) -> None:
        """Power the instance off and remove its overlay, cgroups and state folder.

        Safe to call twice, and after a crash that left stale state.
        """
        require_root()
        with self._lock():
            self._teardown()
            remove_lock_file(self._lock_path)

    def _teardown(self, *, graceful: bool = True) -> None:
        self._stop_nspawn(graceful=graceful)
        self._kill_leftovers()
        if self.root.is_dir() and is_mount_point(self.root):
            # The lock file name uses the overlay's device number, which stays
            # unique only while it is mounted.
            self._remove_nspawn_files()
            unmount(self.root)
        remove_cgroups(self.cgroups)
        safe_rmtree(self.state_path)
        self.nspawn_pid = None
        self.init_pid = None
        self.system_state = None
        self._process = None

    def _stop_nspawn(self, *, graceful: bool) -> None:
        pid = self.nspawn_pid
        if not pid:
            return
        # SIGTERM makes systemd-nspawn send --kill-signal (SIGRTMIN+3) to the
        # instance's systemd, which halts cleanly.
        sent = graceful and _proc.signal_if_comm(pid, NSPAWN_COMM, signal.SIGTERM)
        if not graceful:
            _proc.signal_if_comm(pid, NSPAWN_COMM, signal.SIGKILL)
            _proc.wait_for_exit(pid, 5.0)
        elif sent and not _proc.wait_for_exit(pid, self.stop_timeout):
            log.warning(
                "instance %s did not power off within %.0f s; sending SIGKILL to systemd-nspawn %d",
                self.name,
                self.stop_timeout,
                pid,
            )
            _proc.signal_if_comm(pid, NSPAWN_COMM, signal.SIGKILL)
            _proc.wait_for_exit(pid, 5.0)
        if self._process is not None:
            # Reap the child so that it does not stay a zombie of this process.
            try:
                self._process.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                log.warning("systemd-nspawn %d of instance %s has not exited", pid, self.name)

    def _remove_nspawn_files(self) -> None:
        """Remove the files that a killed systemd-nspawn of this instance left in /run."""
        if _proc.is_running(self.nspawn_pid, NSPAWN_COMM):
            return
        root = os.stat(self.root)
        lock_file = _NSPAWN_LOCK_FOLDER / f"inode-{root.st_dev}:{root.st_ino}"
        if lock_file.is_file():
            lock_file.unlink()
        propagate = _NSPAWN_PROPAGATE_FOLDER / self.name
        if propagate.is_dir() and not mounts_under(propagate):
            try:
                propagate.rmdir()
            except OSError as error:
                log.warning("removing %s failed: %s", propagate, error)

    def _kill_leftovers(self) -> None:
        """SIGKILL processes still in the instance cgroups, e.g. after systemd-nspawn was killed.

        Killing the instance's PID 1 first ends its whole PID namespace at once.
        """
        cgroups = [c for c in self.cgroups if c.is_dir()]
        for _ in range(3):
            pids = member_pids(cgroups)
            if not pids:
                return
            targets = [self.init_pid] if self.init_pid in pids else sorted(pids)
            for pid in targets:
                comm = _proc.read_comm(pid)
                if comm is None:
                    continue
                log.warning("killing leftover process %d (%s) of instance %s", pid, comm, self.name)
                _proc.signal_if_comm(pid, comm, signal.SIGKILL)
            for pid in targets:
                _proc.wait_for_exit(pid, 5.0)
        remaining = member_pids(cgroups)
        if remaining:
            log.warning(
                "processes %s of instance %s survived SIGKILL", sorted(remaining), self.name
            )

    # State

    @property
    def _lock_path(self) -> Path:
        return self.state_path.parent / f".{self.name}.lock"

    def _lock(self):
        return exclusive_lock(
            self._lock_path, timeout=_LOCK_TIMEOUT, purpose=f"instance {self.name}"
        )

    def _save_state(self) -> None:
        state = {
            "name": self.name,
            "rootfs": str(self.rootfs) if self.rootfs else None,
            "root": str(self.root),
            "cgroups": [str(c) for c in self.cgroups],
            "bind_ro": [f"{b.host}:{b.container}" for b in self.bind_ro],
            "nspawn_pid": self.nspawn_pid,
            "init_pid": self.init_pid,
            "system_state": self.system_state,
            "failed_units": self.failed_units,
            "boot_seconds": self.boot_seconds,
        }
        path = self.state_path / STATE_FILE
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state, indent=2) + "\n")
        os.rename(temporary, path)

    def _load_state(self) -> None:
        try:
            state = json.loads((self.state_path / STATE_FILE).read_text())
        except FileNotFoundError:
            state = {}
        except json.JSONDecodeError as error:
            log.warning("ignoring the unreadable state file of instance %s: %s", self.name, error)
            state = {}
        if not state.get("nspawn_pid"):
            state["nspawn_pid"] = _proc.read_pid_file(self.state_path / PID_FILE)
        self.rootfs = Path(state["rootfs"]) if state.get("rootfs") else self.rootfs
        # Touch only cgroups with the name that this module gives, whatever the state file contains.
        self.cgroups = [
            Path(c)
            for c in state.get("cgroups", [])
            if Path(c).name == f"{CGROUP_PREFIX}{self.name}"
        ]
        self.nspawn_pid = state.get("nspawn_pid")
        self.init_pid = state.get("init_pid")
        self.system_state = state.get("system_state")
        self.failed_units = state.get("failed_units", [])
        self.boot_seconds = state.get("boot_seconds")


def list_instances() -> list[Instance]:
    """Return every instance that has a state folder, running or stale."""
    folder = state_dir()
    if not folder.is_dir():
        return []
    instances = []
    for entry in sorted(folder.iterdir()):
        if not entry.is_dir() or entry.name.startswith("."):
            continue
        try:
            instances.append(Instance(entry.name))
        except TestbedError as error:
            log.warning("ignoring the folder %s in the state folder: %s", entry, error)
    return instances
