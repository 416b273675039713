"""Units of work on a Ray cluster: one actor per worker, each building the run's components once.

``address``: ``auto`` or ``host:port`` joins a running cluster (``ray start --head`` plus
``ray start --address ...`` on each other node); None starts a local one for this run. Every node
needs vcm installed, the run's relative paths (config, pipeline, checkpoints) under the driver's
working folder path, and the data under the same ``VCM_ASSETS`` path; results come back to the
driver, which alone writes the store. An actor that dies is replaced and its unit redone.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from vcm.pipeline.executor import Factory, WorkerLost, dispatch, set_threads

U = TypeVar("U")


class _Worker:
    """A Ray actor: builds the work function on first use, then applies it to units."""

    def __init__(self, factory: Factory, threads: int) -> None:
        self.factory, self.threads, self.fn = factory, threads, None

    def run(self, unit: Any) -> list[Any]:
        if self.fn is None:
            set_threads(self.threads)
            self.fn = self.factory()
        return list(self.fn(unit))

    def pid(self) -> int:
        return os.getpid()


class RayExecutor:
    def __init__(self, workers: int | None = None, threads: int | None = None, address: str | None = None) -> None:
        self.workers, self.threads, self.address = workers, threads or 1, address

    def imap(self, factory: Factory, units: Iterable[U]) -> Iterator[tuple[U, list[Any]]]:
        try:
            import ray
        except ImportError as e:
            raise ValueError("executor ray needs Ray: pip install 'vcm[ray]'") from e
        started = not ray.is_initialized()
        if started:
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            ray.init(address=self.address, num_cpus=None if self.address else self.workers and
                     self.workers * self.threads, include_dashboard=False, log_to_driver=False,
                     logging_level="ERROR")
        backend = _ActorBackend(ray, factory, self.threads, self.workers)
        try:
            yield from dispatch(units, backend)
        finally:
            backend.close()
            if started:
                ray.shutdown()


class _ActorBackend:
    def __init__(self, ray: Any, factory: Factory, threads: int, workers: int | None) -> None:
        self.ray, self.factory, self.threads = ray, factory, threads
        cpus = int(ray.cluster_resources().get("CPU", 0))
        n = workers or max(1, cpus // threads)
        if n * threads > cpus:  # an actor holds its CPUs for life: one that cannot be placed waits forever
            raise ValueError(f"executor ray: {n} workers x {threads} threads need {n * threads} CPUs; "
                             f"the cluster has {cpus}")
        self.cls = ray.remote(num_cpus=threads, max_restarts=0)(_Worker)
        self.actors = [self._new() for _ in range(n)]
        self.idle = list(self.actors)
        self.owner: dict[Any, Any] = {}

    def _new(self) -> Any:
        env = {"OMP_NUM_THREADS": str(self.threads)}
        return self.cls.options(runtime_env={"env_vars": env}).remote(self.factory, self.threads)

    def capacity(self) -> int:
        return len(self.actors)

    def submit(self, unit: Any) -> Any:
        actor = self.idle.pop()
        ref = actor.run.remote(unit)
        self.owner[ref] = actor
        return ref

    def ready(self, handles: list[Any], timeout: float | None) -> list[Any]:
        return list(self.ray.wait(handles, num_returns=1, timeout=timeout)[0])

    def result(self, ref: Any) -> list[Any]:
        actor = self.owner.pop(ref)
        try:
            out = self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as e:
            self.idle.append(actor)
            cause = getattr(e, "cause", None)  # the worker's own exception, as raised there
            raise (cause if isinstance(cause, Exception) else e.as_instanceof_cause()) from e  # e: remote traceback
        except (self.ray.exceptions.RayActorError, self.ray.exceptions.WorkerCrashedError) as e:
            self._replace(actor)
            raise WorkerLost(f"Ray actor died ({type(e).__name__})") from e
        self.idle.append(actor)
        return list(out)

    def _replace(self, dead: Any) -> None:
        """A fresh actor for a dead one, unless the cluster lost the CPUs for it (a node left):
        then the run goes on with fewer actors rather than waiting on one that cannot start."""
        self._kill(dead)
        i = self.actors.index(dead)
        fits = int(self.ray.cluster_resources().get("CPU", 0)) // self.threads
        if len(self.actors) > max(1, fits):
            del self.actors[i]
            return
        self.actors[i] = self._new()
        self.idle.append(self.actors[i])

    def _kill(self, actor: Any) -> None:
        try:
            self.ray.kill(actor, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone with its node
            pass

    def close(self) -> None:
        for actor in self.actors:
            self._kill(actor)
