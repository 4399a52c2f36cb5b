"""Where a deep-learning model's worker runs: this interpreter, a pinned virtual environment, or a container.

The models' dependency stacks conflict (scGPT pins cell-gears 0.0.2 and torch < 2.2, CPA its own scvi-tools), so
each adapter starts its worker script in a separate process and talks to it through files. A :class:`Launcher` turns
"run this worker on this request" into a command line and translates host paths into the paths the worker sees.

- ``"current"``: ``sys.executable`` (the stack must be importable here);
- ``"venv"``: ``$LINPERT_DATA_DIR/envs/<model>-<hash of the requirements>``, built on first use with pip, under a
  file lock so that two runs never build it at once;
- ``"docker:IMAGE"`` / ``"podman:IMAGE"``: the image's ``python``, with the run folder, the worker scripts and
  every input folder mounted, and no network.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

__all__ = ["Launcher", "container_command", "ensure_venv", "launcher", "venv_path"]

#: The worker scripts shipped with the package.
WORKERS = Path(__file__).resolve().parent / "workers"
ENGINES = ("docker", "podman")
# Inside a container: where the run folder, the worker scripts and the inputs are mounted.
_RUN_MOUNT, _WORKERS_MOUNT, _INPUT_MOUNT = "/linpert/run", "/linpert/workers", "/linpert/inputs"
_COMPLETE = ".linpert-complete"


@dataclass
class Launcher:
    """How to start a worker: the command prefix and how host paths map to the worker's view.

    Attributes
    ----------
    kind
        ``current``, ``venv``, ``docker`` or ``podman``.
    python
        The interpreter that runs the worker (a path on this machine, or ``python`` inside a container).
    image
        The container image (``None`` outside containers).
    gpu
        Whether the container gets the host's GPUs.
    mounts
        Host folder -> container folder, for the inputs registered with :meth:`path`.
    """

    kind: str
    python: str
    image: str | None = None
    gpu: bool = False
    mounts: dict[str, str] = field(default_factory=dict)

    @property
    def in_container(self) -> bool:
        return self.kind in ENGINES

    def path(self, host_path: str | os.PathLike) -> str:
        """The path under which the worker sees ``host_path`` (a file or folder outside the run folder)."""
        host_path = Path(host_path).resolve()
        if not self.in_container:
            return str(host_path)
        folder = host_path if host_path.is_dir() else host_path.parent
        if str(folder) not in self.mounts:
            self.mounts[str(folder)] = f"{_INPUT_MOUNT}/{len(self.mounts)}"
        inside = self.mounts[str(folder)]
        return inside if folder == host_path else f"{inside}/{host_path.name}"

    def run_path(self, run_dir: Path, name: str) -> str:
        """The path of ``run_dir / name`` as the worker sees it."""
        return f"{_RUN_MOUNT}/{name}" if self.in_container else str(Path(run_dir).resolve() / name)

    def command(self, worker: str | os.PathLike, request: str, *, run_dir: Path) -> list[str]:
        """The full command line that runs ``worker`` on the request file ``request`` (a name inside ``run_dir``)."""
        worker = Path(worker)
        if not self.in_container:
            return [self.python, str(worker), str(Path(run_dir).resolve() / request)]
        return container_command(
            self.kind,
            self.image or "",
            run_dir=run_dir,
            worker_dir=worker.parent,
            mounts=self.mounts,
            gpu=self.gpu,
            args=[self.python, f"{_WORKERS_MOUNT}/{worker.name}", f"{_RUN_MOUNT}/{request}"],
        )


def container_command(
    engine: str,
    image: str,
    *,
    run_dir: str | os.PathLike,
    worker_dir: str | os.PathLike,
    mounts: dict[str, str] | None = None,
    gpu: bool = False,
    args: Sequence[str] = (),
) -> list[str]:
    """A ``docker run`` / ``podman run`` command line with the run folder, the workers and the inputs mounted.

    The run folder is the only writable mount; the container has no network (a worker never downloads) and runs as
    the calling user so that the files it writes belong to them.

    Examples
    --------
    >>> cmd = container_command("docker", "img:1", run_dir="/tmp/r", worker_dir="/w", gpu=True, args=["python", "x"])
    >>> cmd[:5], cmd[-3:]
    (['docker', 'run', '--rm', '--network', 'none'], ['img:1', 'python', 'x'])
    """
    if engine not in ENGINES:
        raise ValueError(f"Unknown container engine {engine!r}; use 'docker:IMAGE' or 'podman:IMAGE'.")
    if not image:
        raise ValueError(f"No image given: write environment='{engine}:IMAGE', e.g. '{engine}:linpert/gears:0.1.2'.")
    cmd = [engine, "run", "--rm", "--network", "none"]
    if engine == "docker":
        cmd += ["--user", f"{os.getuid()}:{os.getgid()}"]
    else:  # rootless podman maps the calling user to root inside; keep the host ids on written files
        cmd += ["--userns", "keep-id"]
    if gpu:
        cmd += ["--gpus", "all"] if engine == "docker" else ["--device", "nvidia.com/gpu=all"]
    cmd += ["-v", f"{Path(run_dir).resolve()}:{_RUN_MOUNT}", "-v", f"{Path(worker_dir).resolve()}:{_WORKERS_MOUNT}:ro"]
    for host, inside in (mounts or {}).items():
        cmd += ["-v", f"{host}:{inside}:ro"]
    cmd += ["-w", _RUN_MOUNT, image, *args]
    return cmd


def launcher(
    environment: str,
    *,
    model: str,
    stack: Sequence[str],
    extra: str,
    requirements: Sequence[str],
    python: str | None = None,
    pip_args: Sequence[str] = (),
    cache_dir: str | os.PathLike | None = None,
    gpu: bool = False,
) -> Launcher:
    """Resolve ``environment=`` into a :class:`Launcher`, checking or building what it needs.

    Parameters
    ----------
    environment
        ``"current"``, ``"venv"``, ``"docker:IMAGE"`` or ``"podman:IMAGE"``.
    model
        The model's name, used in messages and in the venv's folder name.
    stack
        Top-level modules the worker imports; with ``"current"`` they must be importable here.
    extra
        The linpert extra that installs the stack into the current environment (for the error message).
    requirements, python, pip_args, cache_dir
        See :func:`ensure_venv`.
    gpu
        Give a container the host's GPUs.
    """
    import importlib.util

    if not isinstance(environment, str):
        raise TypeError(f"environment must be a string ('current', 'venv', 'docker:IMAGE'), got {environment!r}.")
    if environment == "current":
        missing = [m for m in stack if importlib.util.find_spec(m) is None]
        if missing:
            raise ImportError(
                f"The {model} adapter runs its worker with this interpreter (environment='current'), but "
                f"{', '.join(missing)} cannot be imported here. Install the stack with "
                f"`pip install 'linpert[{extra}]'`, or pass environment='venv' to build an isolated one."
            )
        return Launcher("current", sys.executable)
    if environment == "venv":
        env = ensure_venv(requirements, name=model, python=python, pip_args=pip_args, cache_dir=cache_dir)
        return Launcher("venv", str(env / "bin" / "python"))
    engine, _, image = environment.partition(":")
    if engine in ENGINES:
        if not image:
            raise ValueError(f"environment={environment!r} names no image; write '{engine}:IMAGE'.")
        return Launcher(engine, "python", image=image, gpu=gpu)
    raise ValueError(
        f"Unknown environment {environment!r}. Use 'current', 'venv', 'docker:IMAGE' or 'podman:IMAGE'."
    )


def venv_path(
    requirements: Sequence[str],
    *,
    name: str,
    python: str | None = None,
    pip_args: Sequence[str] = (),
    cache_dir: str | os.PathLike | None = None,
) -> Path:
    """The folder of the virtual environment for these requirements: ``<cache>/envs/<name>-<12-hex hash>``.

    The hash covers the interpreter, the requirements (in order) and the pip arguments, so changing any of them
    builds a new environment instead of mutating an old one.

    Examples
    --------
    >>> a = venv_path(["six==1.16.0"], name="demo", python="/usr/bin/python3", cache_dir="/tmp/c")
    >>> str(a.parent), a.name.startswith("demo-"), len(a.name)
    ('/tmp/c/envs', True, 17)
    """
    from ..datasets import data_dir

    key = json.dumps(
        {"python": python or _base_python(), "requirements": list(requirements), "pip_args": list(pip_args)},
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return data_dir(cache_dir) / "envs" / f"{name}-{digest}"


def ensure_venv(
    requirements: Sequence[str],
    *,
    name: str,
    python: str | None = None,
    pip_args: Sequence[str] = (),
    cache_dir: str | os.PathLike | None = None,
) -> Path:
    """Return a virtual environment with ``requirements`` installed, building it on first use.

    Parameters
    ----------
    requirements
        pip requirement strings, e.g. ``["cell-gears==0.1.2", "torch_geometric==2.8.1"]``.
    name
        The folder's prefix (the model's name).
    python
        The base interpreter (default: the one running linpert). scGPT 0.2.1 needs Python < 3.11.
    pip_args
        Extra ``pip install`` arguments, e.g. ``["--extra-index-url", "https://download.pytorch.org/whl/cpu"]``.
    cache_dir
        The cache root (default ``$LINPERT_DATA_DIR``, else ``~/.cache/linpert``).

    Returns
    -------
    Path
        The environment's folder; its interpreter is ``<folder>/bin/python``.

    Notes
    -----
    The build holds an exclusive lock on ``<folder>.lock``; a second process waits for it and then finds the
    finished environment. A folder is only used once it holds the marker file written after a successful install,
    so a build that crashed half-way is removed and started again.
    """
    env = venv_path(requirements, name=name, python=python, pip_args=pip_args, cache_dir=cache_dir)
    if (env / _COMPLETE).is_file():
        return env
    env.parent.mkdir(parents=True, exist_ok=True)
    with _locked(env.with_name(env.name + ".lock")):
        if (env / _COMPLETE).is_file():  # built by another process while we waited
            return env
        if env.exists():
            shutil.rmtree(env)
        base = python or _base_python()
        _check_call([base, "-m", "venv", str(env)], what=f"creating the virtual environment {env}")
        if requirements:
            pip = [str(env / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", *pip_args]
            _check_call([*pip, *requirements], what=f"installing {list(requirements)} into {env}")
        record = {"python": base, "requirements": list(requirements), "pip_args": list(pip_args)}
        (env / _COMPLETE).write_text(json.dumps(record, indent=1))
    return env


def _base_python() -> str:
    # inside a venv sys.executable is the venv's interpreter; a new venv should start from the base one
    return getattr(sys, "_base_executable", None) or sys.executable


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _check_call(cmd: list[str], *, what: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-3000:]
        raise RuntimeError(f"Failed {what} (exit code {done.returncode}). Command: {' '.join(cmd)}\n{tail}")
