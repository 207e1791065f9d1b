"""Run the evaluation's chunks on Ray: stateful workers (one per GPU, or a fraction of one) that load their models
once and evaluate chunk after chunk, on one machine or a cluster.

    ray start --head                                    # or any running cluster
    harness run --executor ray --ray-address auto --workers 8 --gpus-per-worker 1 --retriever dar ...

    from harness.ray_executor import RayExecutor
    run_evaluation(spec, executor=RayExecutor(address="auto", gpus_per_worker=0.5))

Each worker is a Ray actor holding what ``make_worker()`` built. Chunks go to idle actors; results come back in
completion order, and the caller (the runner) appends a chunk's records only when its result arrives. When an actor
dies in the middle of a chunk (its process crashed or was killed, its node went away), the actor is replaced and the
chunk is sent to the next idle actor, up to ``max_task_retries`` times per chunk: a chunk is therefore stored exactly
once or not at all. An exception raised by the worker's code is not retried: it is raised here as the original
exception (a ``HarnessError`` stays one).

Ray is an optional extra (``pip install 'itir-harness[ray]'``); it is imported only when this executor is created.
Everything a worker reads (model files, the benchmark's images, the shared cache folder) must be at the same path
on every node; the driver fills the shared caches before the workers start.
"""

from __future__ import annotations

import logging
import math
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import ConfigError, HarnessError

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'itir-harness[ray]'"


def import_ray() -> Any:
    """The ``ray`` module, or a ``HarnessError`` telling the user how to install it."""
    try:
        import ray
    except ImportError:
        raise HarnessError(f"the Ray executor needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


class _ChunkActor:
    """The body of one Ray actor: builds its worker (models) on the first call, then evaluates chunks."""

    def __init__(self, make_worker: Callable[[], Callable[[Any], Any]]) -> None:
        self._make_worker = make_worker
        self._worker: Callable[[Any], Any] | None = None

    def setup(self) -> int:
        if self._worker is None:
            self._worker = self._make_worker()
        return os.getpid()

    def run(self, chunk: Any) -> Any:
        self.setup()
        assert self._worker is not None
        return self._worker(chunk)


@dataclass
class _Slot:
    """One worker position: its current actor and how many actors it has had."""

    index: int
    actor: Any
    generation: int = 0


class RayExecutor:
    """Chunks over ``workers`` Ray actors, each reserving ``gpus_per_worker`` GPUs (fractions let small models share
    one) and ``cpus_per_worker`` CPUs.

    ``address``: a cluster to join (``"auto"``, ``"ray://host:10001"``); ``None`` joins the cluster this process is
    already connected to, else starts a local one (shut down again at the end). ``workers=None`` fills the cluster:
    its GPUs divided by ``gpus_per_worker`` (or CPUs by ``cpus_per_worker``), never more than there are chunks.
    """

    remote = True

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        gpus_per_worker: float = 0.0,
        cpus_per_worker: float = 1.0,
        max_task_retries: int = 3,
        init_options: dict[str, Any] | None = None,
    ) -> None:
        if workers is not None and workers < 1:
            raise ConfigError(f"workers must be at least 1, got {workers}")
        if gpus_per_worker < 0 or cpus_per_worker < 0:
            raise ConfigError("gpus_per_worker and cpus_per_worker must be 0 or more")
        if gpus_per_worker > 1 and not float(gpus_per_worker).is_integer():
            raise ConfigError(f"gpus_per_worker above 1 must be a whole number, got {gpus_per_worker}")
        if max_task_retries < 0:
            raise ConfigError(f"max_task_retries must be 0 or more, got {max_task_retries}")
        self.ray = import_ray()
        self.address = address
        self.workers = workers
        self.gpus_per_worker = gpus_per_worker
        self.cpus_per_worker = cpus_per_worker
        self.max_task_retries = max_task_retries
        self.init_options = dict(init_options or {})
        self.replaced = 0  # actors replaced after dying, over this executor's life (for logs and tests)
        self.used_workers = 0  # how many actors the last map() ran

    def map(self, make_worker: Callable[[], Callable[[Any], Any]], chunks: Sequence[Any]) -> Iterator[Any]:
        if not chunks:
            return
        ray = self.ray
        started_here = self._connect()
        actor_class = ray.remote(_ChunkActor).options(
            num_cpus=self.cpus_per_worker, num_gpus=self.gpus_per_worker, max_restarts=0, max_task_retries=0
        )
        # The factory (spec and benchmark) is put in the object store once, not serialised per actor.
        factory_ref = ray.put(make_worker)
        count = self._worker_count(len(chunks))
        self.used_workers = count
        slots = [_Slot(index, actor_class.remote(factory_ref)) for index in range(count)]
        log.info("Ray executor: %d workers (%s GPU, %s CPU each) for %d chunks",
                 count, self.gpus_per_worker, self.cpus_per_worker, len(chunks))
        waiting = deque(range(len(chunks)))
        attempts = [0] * len(chunks)
        idle = deque(slots)
        running: dict[Any, tuple[_Slot, int]] = {}
        try:
            while waiting or running:
                while idle and waiting:
                    slot, index = idle.popleft(), waiting.popleft()
                    running[slot.actor.run.remote(chunks[index])] = (slot, index)
                done, _ = ray.wait(list(running), num_returns=1)
                slot, index = running.pop(done[0])
                try:
                    result = ray.get(done[0])
                except ray.exceptions.RayTaskError as error:
                    # The worker's own code raised: deterministic, so not retried; re-raise it as itself.
                    raise error.as_instanceof_cause() from None
                except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                        ray.exceptions.NodeDiedError, ray.exceptions.ObjectLostError) as error:
                    attempts[index] += 1
                    if attempts[index] > self.max_task_retries:
                        raise HarnessError(
                            f"chunk {index} lost its worker {attempts[index]} times (last: {type(error).__name__}); "
                            "finished chunks are stored: rerun the same command to resume"
                        ) from error
                    log.warning("worker %d died during chunk %d (%s); retrying it on a new worker",
                                slot.index, index, type(error).__name__)
                    self._replace(slot, actor_class, factory_ref)
                    waiting.appendleft(index)
                    idle.append(slot)
                    continue
                idle.append(slot)
                yield result
        finally:
            for slot in slots:
                ray.kill(slot.actor, no_restart=True)
            if started_here:
                ray.shutdown()

    def _connect(self) -> bool:
        """Join (or start) a cluster; True when this call started it (so ``map`` shuts it down again)."""
        ray = self.ray
        if ray.is_initialized():
            return False
        options = {"include_dashboard": False, "log_to_driver": True, **self.init_options}
        try:
            ray.init(address=self.address, **options)
        except ConnectionError as error:
            raise HarnessError(f"cannot reach the Ray cluster at {self.address!r}: {error}") from None
        return self.address is None

    def _worker_count(self, chunks: int) -> int:
        if self.workers is not None:
            return min(self.workers, chunks)
        resources = self.ray.cluster_resources()
        if self.gpus_per_worker > 0:
            fit = math.floor(resources.get("GPU", 0) / self.gpus_per_worker + 1e-9)
            if fit < 1:
                raise HarnessError(f"the Ray cluster has {resources.get('GPU', 0):g} GPUs; "
                                   f"a worker needs {self.gpus_per_worker:g}")
        else:
            fit = math.floor(resources.get("CPU", 1) / max(self.cpus_per_worker, 1e-9) + 1e-9)
        return max(1, min(fit, chunks))

    def _replace(self, slot: _Slot, actor_class: Any, factory_ref: Any) -> None:
        self.ray.kill(slot.actor, no_restart=True)
        slot.actor = actor_class.remote(factory_ref)
        slot.generation += 1
        self.replaced += 1
