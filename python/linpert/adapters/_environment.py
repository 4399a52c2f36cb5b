"""Where a deep-learning model's worker runs: one :class:`Runtime` (this interpreter, a pinned virtual environment
or a container) and the :class:`Stack` of packages it installs.

The models' dependency stacks conflict (scGPT pins cell-gears < 0.0.3, CPA torch <= 2.0.1 and its own scvi-tools),
so each adapter starts its worker script in a separate process and talks to it through files. A :class:`Launcher`
turns "run this worker on this request" into a command line and translates host paths into the paths the worker sees.

- ``"current"``: ``sys.executable`` (the stack must be importable here);
- ``"venv"``: ``$LINPERT_DATA_DIR/envs/<model>-<hash of the stack>``, built on first use with pip, under a file lock
  so that two runs never build it at once. Each adapter lists the stacks known to install, the paper's pins first;
  the first one that supports the base interpreter's Python is used;
- ``"docker:IMAGE"`` / ``"podman:IMAGE"``: the image's ``python``, with the run folder, the worker scripts and every
  input folder mounted, and no network.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

from .._errors import StackInstallError

__all__ = ["Launcher", "Runtime", "Stack", "container_command", "ensure_venv", "launcher", "venv_path"]

#: The worker scripts shipped with the package.
WORKERS = Path(__file__).resolve().parent / "workers"
ENGINES = ("docker", "podman")
# Inside a container: where the run folder, the worker scripts and the inputs are mounted.
_RUN_MOUNT, _WORKERS_MOUNT, _INPUT_MOUNT = "/linpert/run", "/linpert/workers", "/linpert/inputs"
_COMPLETE = ".linpert-complete"


@dataclass(frozen=True)
class Stack:
    """A set of pip requirements known to install and run on some Python versions.

    Attributes
    ----------
    requirements
        pip requirement strings.
    pythons
        The Python versions (``"3.11"``) it installs on.
    constraints
        pip constraints (written to a file and passed with ``-c``): pins of transitive dependencies.
    pip_args
        Further ``pip install`` arguments, e.g. ``--ignore-requires-python`` for a package whose metadata is
        stricter than its code.
    no_deps
        Requirements installed afterwards without their declared dependencies (``--no-deps``): a package whose
        pins have no wheels for this Python, run on the nearest versions that do (listed in ``requirements``).
    note
        Why this stack (shown in ``versions_`` and the docs).
    shared
        The name of an environment several models share (their stacks are the same object), instead of the
        model's: one install, and one copy on disk.
    """

    requirements: tuple[str, ...]
    pythons: tuple[str, ...] = ("3.10", "3.11", "3.12")
    constraints: tuple[str, ...] = ()
    pip_args: tuple[str, ...] = ()
    no_deps: tuple[str, ...] = ()
    note: str = ""
    shared: str = ""


#: One environment for the embedding models whose pins allow it: UCE's package, Geneformer through ``transformers``
#: and scBERT's code (given by the user). torch 2.13.0 is the CPU build on this project's registry (about 190 MB
#: against several GB of CUDA wheels; on PyPI it is the CUDA build).
EMBEDDING_STACK = Stack(("uce-model==0.1.4", "transformers>=4.40,<4.50", "torch==2.13.0", "einops", "local-attention",
                         "scikit-learn", "scipy", "requests"), pythons=("3.11", "3.12"),
                        note="UCE, Geneformer (transformers) and scBERT's code in one environment", shared="embedding")


def choose_stack(stacks: Sequence[Stack], python_version: str, *, model: str) -> Stack:
    """The first of ``stacks`` (the paper's pins come first) that supports ``python_version``.

    Examples
    --------
    >>> paper, newer = Stack(("a==1",), pythons=("3.10",)), Stack(("a==2",), pythons=("3.11", "3.12"))
    >>> choose_stack([paper, newer], "3.11", model="demo").requirements
    ('a==2',)
    """
    for stack in stacks:
        if python_version in stack.pythons:
            return stack
    known = sorted({v for s in stacks for v in s.pythons})
    raise RuntimeError(
        f"No known {model} stack installs on Python {python_version} (known: Python {', '.join(known)}). Pass "
        f"runtime=Runtime(python='/path/to/python3.X') with one of those versions, or your own "
        f"runtime=Runtime(requirements=[...])."
    )


@dataclass(frozen=True)
class Runtime:
    """Where and how an adapter's worker runs: one object instead of keyword arguments on every adapter.

    Attributes
    ----------
    environment
        ``"venv"`` (an isolated environment built on first use), ``"current"`` (this interpreter),
        ``"docker:IMAGE"`` or ``"podman:IMAGE"``.
    python
        The base interpreter of the venv (default: the one running linpert).
    requirements
        pip requirements replacing the adapter's default stack (then ``constraints`` and ``pip_args`` are used
        as given).
    constraints, pip_args
        Added to the stack's own.
    cache_dir
        The cache root of the venvs (default ``$LINPERT_DATA_DIR``, else ``~/.cache/linpert``).
    progress
        Print pip's progress while a venv is built.

    Examples
    --------
    >>> Runtime.of("current")
    Runtime(environment='current', python=None, requirements=None, constraints=(), pip_args=(), cache_dir=None, \
progress=True)
    >>> Runtime.of({"environment": "venv", "pip_args": ["--pre"]}).pip_args
    ('--pre',)
    """

    environment: str = "venv"
    python: str | None = None
    requirements: tuple[str, ...] | None = None
    constraints: tuple[str, ...] = ()
    pip_args: tuple[str, ...] = ()
    cache_dir: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.environment, str):
            raise TypeError(
                f"environment must be a string ('venv', 'current', 'docker:IMAGE'), got {self.environment!r}."
            )
        for key in ("requirements", "constraints", "pip_args"):
            value = getattr(self, key)
            if isinstance(value, str):
                raise TypeError(f"Runtime.{key} must be a list of strings, not the string {value!r}.")
            if value is not None:
                object.__setattr__(self, key, tuple(str(v) for v in value))
        if self.cache_dir is not None:
            object.__setattr__(self, "cache_dir", str(self.cache_dir))

    @classmethod
    def of(cls, value: Any) -> Runtime:
        """A Runtime from a Runtime, an environment string (``"venv"``) or a dict of its fields."""
        if isinstance(value, Runtime):
            return value
        if isinstance(value, str):
            return cls(environment=value)
        if isinstance(value, dict):
            return cls(**value)
        raise TypeError(
            f"runtime must be a Runtime, 'venv', 'current', 'docker:IMAGE' or a dict of Runtime fields, got {value!r}."
        )

    def stack(self, stacks: Sequence[Stack], *, model: str) -> Stack:
        """The stack this runtime installs: the user's requirements, or the adapter's stack for this Python."""
        if self.requirements is not None:
            chosen = Stack(self.requirements, note="requirements given by the user")
        else:
            chosen = choose_stack(stacks, python_version(self.python or _base_python()), model=model)
        mine = bool(self.constraints or self.pip_args)  # the user's additions make an environment of its own
        return replace(chosen, constraints=(*chosen.constraints, *self.constraints),
                       pip_args=(*chosen.pip_args, *self.pip_args), shared="" if mine else chosen.shared)


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


def launcher(runtime: Runtime, *, model: str, modules: Sequence[str], extra: str, stacks: Sequence[Stack],
             gpu: bool = False) -> Launcher:
    """Resolve a :class:`Runtime` into a :class:`Launcher`, checking or building what it needs.

    Parameters
    ----------
    runtime
        Where the worker runs (see :class:`Runtime`).
    model
        The model's name, used in messages and in the venv's folder name.
    modules
        Top-level modules the worker imports; with ``"current"`` they must be importable here.
    extra
        The linpert extra that installs the stack into the current environment (for the error message), or ``""``
        where there is none.
    stacks
        The stacks known to install, the paper's pins first (see :class:`Stack`).
    gpu
        Give a container the host's GPUs.
    """
    import importlib.util

    environment = runtime.environment
    if environment == "current":
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        if missing:
            how = f"`pip install 'linpert[{extra}]'`" if extra else _pip_hint(stacks, model)
            raise ImportError(
                f"The {model} adapter runs its worker with this interpreter (runtime='current'), but "
                f"{', '.join(missing)} cannot be imported here. Install the stack with {how}, or pass "
                "runtime='venv' to build an isolated one."
            )
        return Launcher("current", sys.executable)
    if environment == "venv":
        stack = runtime.stack(stacks, model=model)
        env = ensure_venv(stack, name=stack.shared or model, python=runtime.python, cache_dir=runtime.cache_dir,
                          progress=runtime.progress)
        return Launcher("venv", str(env / "bin" / "python"))
    engine, _, image = environment.partition(":")
    if engine in ENGINES:
        if not image:
            raise ValueError(f"runtime={environment!r} names no image; write '{engine}:IMAGE'.")
        return Launcher(engine, "python", image=image, gpu=gpu)
    raise ValueError(f"Unknown runtime {environment!r}. Use 'venv', 'current', 'docker:IMAGE' or 'podman:IMAGE'.")


def _pip_hint(stacks: Sequence[Stack], model: str) -> str:
    """The pip command that installs the stack for this Python into this interpreter."""
    try:
        stack = choose_stack(stacks, "%d.%d" % sys.version_info[:2], model=model)
    except RuntimeError:
        return "the model's own packages"
    args = [*stack.pip_args, *(["-c", "constraints.txt"] if stack.constraints else []), *stack.requirements]
    hint = f"`pip install {' '.join(args)}`"
    if stack.constraints:
        hint += f" (constraints.txt: {', '.join(stack.constraints)})"
    return hint


def python_version(python: str) -> str:
    """``"3.11"`` for the interpreter at ``python``."""
    if python == sys.executable or python == _base_python():
        return "%d.%d" % sys.version_info[:2]
    try:
        done = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as err:
        raise ValueError(f"Runtime(python={python!r}) is not a working Python interpreter ({err}).") from None
    return done.stdout.strip()


def _as_stack(stack: Stack | Sequence[str]) -> Stack:
    return stack if isinstance(stack, Stack) else Stack(tuple(stack))


def venv_path(
    stack: Stack | Sequence[str],
    *,
    name: str,
    python: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Path:
    """The folder of the virtual environment for a stack: ``<cache>/envs/<name>-<12-hex hash>``.

    The hash covers the interpreter, the requirements (in order), the constraints and the pip arguments, so
    changing any of them builds a new environment instead of mutating an old one.

    Examples
    --------
    >>> a = venv_path(["six==1.16.0"], name="demo", python="/usr/bin/python3", cache_dir="/tmp/c")
    >>> str(a.parent), a.name.startswith("demo-"), len(a.name)
    ('/tmp/c/envs', True, 17)
    """
    from .._config import data_dir

    stack = _as_stack(stack)
    key = {"python": python or _base_python(), "requirements": list(stack.requirements),
           "constraints": list(stack.constraints), "pip_args": list(stack.pip_args)}
    if stack.no_deps:
        key["no_deps"] = list(stack.no_deps)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return data_dir(cache_dir) / "envs" / f"{name}-{digest}"


def ensure_venv(
    stack: Stack | Sequence[str],
    *,
    name: str,
    python: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> Path:
    """Return a virtual environment with ``stack`` installed, building it on first use.

    Parameters
    ----------
    stack
        A :class:`Stack`, or a list of pip requirement strings.
    name
        The folder's prefix (the model's name).
    python
        The base interpreter (default: the one running linpert).
    cache_dir
        The cache root (default ``$LINPERT_DATA_DIR``, else ``~/.cache/linpert``).
    progress
        Print pip's progress (one line per package) to standard error while building.

    Returns
    -------
    Path
        The environment's folder; its interpreter is ``<folder>/bin/python``; ``<folder>/.linpert-complete``
        records the stack and the installed versions.

    Notes
    -----
    pip is upgraded first: the pip that ``venv`` ships resolves some of the models' stacks into old source
    releases that no longer build. The build holds an exclusive lock on ``<folder>.lock``; a second process waits
    for it and then finds the finished environment. A folder is only used once it holds the marker file written
    after a successful install, so a build that crashed half-way is removed and started again. Files identical to
    those of an environment built before are hard links to them (:func:`share_files`).
    """
    stack = _as_stack(stack)
    env = venv_path(stack, name=name, python=python, cache_dir=cache_dir)
    if (env / _COMPLETE).is_file():
        return env
    env.parent.mkdir(parents=True, exist_ok=True)
    with _locked(env.with_name(env.name + ".lock")):
        if (env / _COMPLETE).is_file():  # built by another process while we waited
            return env
        if env.exists():
            shutil.rmtree(env)
        base = python or _base_python()
        started = time.perf_counter()
        say = _printer(name, progress)
        say(f"building an isolated environment for {name} (first use; cached in {env})")
        _check_call([base, "-m", "venv", str(env)], what=f"creating the virtual environment {env}", say=say)
        pip = [str(env / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check"]
        _check_call([*pip, "--upgrade", "pip"], what=f"upgrading pip in {env}", say=say)
        if stack.requirements:
            args = [*pip, *stack.pip_args]
            if stack.constraints:
                (env / "constraints.txt").write_text("\n".join(stack.constraints) + "\n")
                args += ["-c", str(env / "constraints.txt")]
            _check_call([*args, *stack.requirements], what=f"installing {list(stack.requirements)} into {env}",
                        say=say)
        if stack.no_deps:
            _check_call([*pip, *stack.pip_args, "--no-deps", *stack.no_deps],
                        what=f"installing {list(stack.no_deps)} without dependencies into {env}", say=say)
        shared = share_files(env)
        record = {"python": base, "requirements": list(stack.requirements), "constraints": list(stack.constraints),
                  "pip_args": list(stack.pip_args), "no_deps": list(stack.no_deps), "note": stack.note,
                  "versions": _installed(env), "shared_mib": round(shared / 2**20),
                  "build_seconds": time.perf_counter() - started}
        (env / _COMPLETE).write_text(json.dumps(record, indent=1))
        say(f"{name} environment ready")
    return env


def share_files(env: Path, *, min_bytes: int = 1 << 16) -> int:
    """Replace each installed file of ``env`` that is byte-identical to the same file of a finished environment
    beside it (same path under ``lib/``, e.g. the same torch wheel's libraries) by a hard link to it; returns the
    bytes saved.

    pip never writes into an installed file (an upgrade removes it and writes a new one), so linked files cannot
    change under another environment. Files smaller than ``min_bytes`` are left alone: they cost little.
    """
    import filecmp

    others = [e for e in env.parent.iterdir() if e != env and (e / _COMPLETE).is_file()]
    saved = 0
    for path in (env / "lib").rglob("*"):
        if path.is_symlink() or not path.is_file() or path.stat().st_size < min_bytes:
            continue
        relative = path.relative_to(env)
        for other in others:
            twin = other / relative
            if (twin.is_file() and not twin.is_symlink() and twin.stat().st_ino != path.stat().st_ino
                    and twin.stat().st_size == path.stat().st_size and filecmp.cmp(twin, path, shallow=False)):
                temporary = path.with_name(path.name + ".linpert-link")
                os.link(twin, temporary)
                os.replace(temporary, path)
                saved += twin.stat().st_size
                break
    return saved


def venv_record(env: str | os.PathLike) -> dict[str, Any]:
    """What :func:`ensure_venv` recorded for a finished environment (stack, note and installed versions)."""
    return json.loads((Path(env) / _COMPLETE).read_text())


def _installed(env: Path) -> dict[str, str]:
    done = subprocess.run([str(env / "bin" / "python"), "-m", "pip", "list", "--format", "json",
                           "--disable-pip-version-check"], capture_output=True, text=True)
    if done.returncode != 0:
        return {}
    return {p["name"].lower(): p["version"] for p in json.loads(done.stdout)}


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


def _printer(name: str, progress: bool):
    def say(line: str) -> None:
        if progress:
            print(f"linpert [{name}]: {line}", file=sys.stderr, flush=True)

    return say


# pip's lines worth showing while it works, and the ones that name what failed
_PROGRESS = re.compile(r"^(Collecting|Downloading|Installing collected|Successfully installed|Building wheel)")
_FAILED = [
    re.compile(r"No matching distribution found for (\S+)"),
    re.compile(r"Failed (?:to )?build(?:ing wheel for)? (\S+)"),
    re.compile(r"Could not find a version that satisfies the requirement (\S+)"),
    re.compile(r"The conflict is caused by:\s*\n\s*(.+)"),
    re.compile(r"error in (\S+) setup command"),
]


def failing_package(log: str) -> str | None:
    """The package pip's log blames for a failed install, if it names one.

    Examples
    --------
    >>> failing_package("ERROR: No matching distribution found for torch==9.9")
    'torch==9.9'
    """
    for pattern in _FAILED:
        found = pattern.search(log)
        if found:
            return found.group(1).strip()
    return None


def _check_call(cmd: list[str], *, what: str, say=lambda line: None) -> None:
    lines = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            lines.append(line)
            if _PROGRESS.match(line):
                say(line.rstrip()[:160])
    if proc.returncode != 0:
        log = "".join(lines)
        culprit = failing_package(log)
        blame = f" pip could not install {culprit}." if culprit else ""
        raise StackInstallError(
            f"Failed {what} (exit code {proc.returncode}).{blame} Check the network or package index, or pass "
            f"runtime=Runtime(requirements=[...], constraints=[...]) with versions that install on this Python. "
            f"Command: {' '.join(cmd)}\n{log[-3000:]}"
        )
