"""Where the per-file work of ``prepare`` and ``predict`` runs: a local process pool, or Ray.

``--engine local`` (the default) is a process pool on this machine. ``--engine ray`` runs
the same per-recording (per-video) function as Ray tasks: on a local Ray instance started
for the run (no ``--ray-address``; as many CPUs as ``--workers`` or the machine has), or on
a running cluster (``--ray-address HOST:PORT``, ``ray://HOST:PORT`` for Ray Client, or
``auto``). Each task asks for one CPU, and ``num_gpus`` when the model runs on CUDA. A task
whose worker dies (killed, out of memory) is retried ``RAY_TASK_RETRIES`` times before its
file is reported as failed. Every node must see the output folder (shared storage): the
workers write the files themselves, and :func:`check_shared_folder` tries that before any
work is scheduled.

Ray is an optional extra: ``pip install avstan[ray]``.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from avstan.errors import AvstanError

ENGINES = ("local", "ray")
RAY_TASK_RETRIES = 2
CONNECT_TIMEOUT_S = 5.0


def check_engine(engine: str) -> None:
    """One line for an unknown engine, or Ray asked for but not installed."""
    if engine not in ENGINES:
        raise AvstanError(f"--engine {engine}: use one of {', '.join(ENGINES)}")
    if engine == "ray" and importlib.util.find_spec("ray") is None:
        raise AvstanError("--engine ray needs Ray, which is not installed; install the extra: "
                          "pip install 'avstan[ray]'")


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of ``HOST:PORT`` or ``ray://HOST:PORT``; None for ``auto``."""
    if address == "auto":
        return None
    bare = address.split("://", 1)[-1]
    host, _, port = bare.rpartition(":")
    if not host or not port.isdigit():
        raise AvstanError(f"--ray-address {address}: use HOST:PORT, ray://HOST:PORT or auto")
    return host, int(port)


# A gRPC server (Ray's GCS and its client server both are) answers the HTTP/2 client
# preface and an empty SETTINGS frame with a SETTINGS frame of its own (RFC 9113 §3.4).
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
HTTP2_SETTINGS = 4  # the frame type byte of a SETTINGS frame


def speaks_grpc(connection: socket.socket) -> bool:
    """Whether the server on ``connection`` answers the HTTP/2 preface as gRPC does."""
    try:
        connection.sendall(HTTP2_PREFACE)
        header = b""
        while len(header) < 9:
            chunk = connection.recv(9 - len(header))
            if not chunk:
                break
            header += chunk
    except OSError:
        return False
    return len(header) == 9 and header[3] == HTTP2_SETTINGS


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """One line when nothing listens at ``address``, or something that is not a Ray (gRPC)
    server does: Ray itself would retry for minutes, printing its log lines."""
    where = _host_port(address)
    if where is None:
        return
    try:
        with socket.create_connection(where, timeout=timeout) as connection:
            grpc = speaks_grpc(connection)
    except OSError as error:
        reason = error.strerror or error.__class__.__name__
        raise AvstanError(f"--ray-address {address}: no Ray cluster answers there ({reason}); "
                          "start one with 'ray start --head' or check the address") from None
    if not grpc:
        raise AvstanError(f"--ray-address {address}: something answers there but not Ray (no "
                          "gRPC reply); give the address 'ray start --head' printed (its GCS "
                          "port, 6379 by default, or ray://HOST:10001 for Ray Client)")


class RayRun:
    """Ray for one run: connected on entry, shut down on exit if this run started it."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        check_engine("ray")
        if address:
            check_reachable(address)
        self.address, self.num_cpus = address, num_cpus
        self._started = False

    def __enter__(self) -> RayRun:
        import ray

        if not ray.is_initialized():
            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                       "configure_logging": False}
            if self.address:
                options["address"] = self.address
            else:
                options["num_cpus"] = self.num_cpus or os.cpu_count() or 1
            try:
                ray.init(**options)
            except (ConnectionError, RuntimeError, ValueError) as error:
                raise AvstanError(f"--ray-address {self.address or '(local)'}: cannot connect "
                                  f"to Ray ({str(error).splitlines()[0]})") from None
            self._started = True
        return self

    def __exit__(self, *exc) -> None:
        if self._started:
            import ray

            ray.shutdown()

    def map_unordered(self, function: Callable, jobs: Sequence[tuple], num_gpus: float = 0,
                      ) -> Iterator[tuple[int, Any]]:
        """``(index, function(*jobs[index]))`` as tasks finish; a task that raises, or whose
        worker died more than RAY_TASK_RETRIES times, gives ``(index, AvstanError)``."""
        import ray
        from ray.exceptions import RayError, RayTaskError

        remote = ray.remote(num_cpus=1, num_gpus=num_gpus, max_retries=RAY_TASK_RETRIES)(
            function)
        pending = {remote.remote(*job): index for index, job in enumerate(jobs)}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for reference in done:
                index = pending.pop(reference)
                try:
                    yield index, ray.get(reference)
                except RayTaskError as error:
                    cause = error.cause if isinstance(error.cause, Exception) else error
                    message = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
                    yield index, AvstanError(message)
                except RayError as error:  # the worker died and the retries are spent
                    yield index, AvstanError(f"its Ray worker died ({type(error).__name__}); "
                                             "run again to redo it")


def _write_probe(folder: str, token: str) -> str:
    """On a worker: whether ``folder`` is there with the driver's token, and writable."""
    path = Path(folder)
    if not (path / token).is_file():
        return f"the workers do not see {folder} (not on storage every node shares)"
    try:
        (path / f"{token}.worker").write_text("ok")
    except OSError as error:
        return f"the workers cannot write into {folder} ({error.strerror})"
    return ""


def check_shared_folder(run: RayRun, folder: Path) -> None:
    """One line unless a Ray worker sees ``folder`` as the driver does and can write there."""
    token = f".avstan-probe-{uuid.uuid4().hex}"
    (folder / token).write_text("driver")
    try:
        ((_, problem),) = list(run.map_unordered(_write_probe, [(str(folder), token)]))
    finally:
        for leftover in (folder / token, folder / f"{token}.worker"):
            leftover.unlink(missing_ok=True)
    if isinstance(problem, Exception):
        problem = str(problem)
    if problem:
        raise AvstanError(f"{folder}: {problem}; put the output on storage every Ray node "
                          "mounts at the same path")
