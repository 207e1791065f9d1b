"""Run the evaluation's chunks on Ray: stateful workers (one per GPU, or a fraction of one) that load their models
once and evaluate chunk after chunk, on one machine or a cluster.

    ray start --head                                    # or any running cluster
    harness run --executor ray --ray-address auto --workers 8 --gpus-per-worker 1 --retriever dar ...

    from harness.ray_executor import RayExecutor
    run_evaluation(spec, executor=RayExecutor(address="auto", gpus_per_worker=0.5))

Each worker is a Ray actor holding what ``make_worker()`` built. Chunks go to idle actors; results are yielded in
chunk order (a chunk that finishes early waits for the ones before it), so the caller (the runner) appends records
in the same order as the in-process executor and the run directory is byte-identical to an in-process run's. A
crash loses at most the finished chunks still waiting for an earlier one; what they computed stays in the shared
caches, so recomputing them on resume is cheap. When an actor
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


def _lost_worker_errors(ray: Any) -> tuple[type[BaseException], ...]:
    """Ray's errors for a chunk whose worker went away (crash, kill, node loss, the memory monitor's kill): the
    chunk itself may be fine, so it is retried on a new worker."""
    exceptions = ray.exceptions
    names = ("RayActorError", "WorkerCrashedError", "NodeDiedError", "ObjectLostError", "OutOfMemoryError")
    return tuple(getattr(exceptions, name) for name in names if hasattr(exceptions, name))


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

    ``device`` is the run's ``--device``. Ray shows an actor that reserved no GPU every GPU of its node, so with
    ``gpus_per_worker=0`` all workers would load their models onto the same first GPU: for ``cuda`` (and for
    ``auto`` on a cluster that has GPUs) each worker therefore reserves one whole GPU unless told otherwise, and
    ``cuda:N`` is refused (Ray picks the GPU; inside a worker it is ``cuda``).

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
        device: str = "auto",
    ) -> None:
        if workers is not None and workers < 1:
            raise ConfigError(f"workers must be at least 1, got {workers}")
        if gpus_per_worker < 0 or cpus_per_worker < 0:
            raise ConfigError("gpus_per_worker and cpus_per_worker must be 0 or more")
        if gpus_per_worker > 1 and not float(gpus_per_worker).is_integer():
            raise ConfigError(f"gpus_per_worker above 1 must be a whole number, got {gpus_per_worker}")
        if max_task_retries < 0:
            raise ConfigError(f"max_task_retries must be 0 or more, got {max_task_retries}")
        if device.startswith("cuda:"):
            raise ConfigError(f"--device {device} cannot be used with --executor ray: Ray gives each worker its own "
                              "GPU(s), seen inside the worker as cuda; use --device cuda (or auto)")
        self.device = device
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
        gpus = self._gpus_per_worker()
        actor_class = ray.remote(_ChunkActor).options(
            num_cpus=self.cpus_per_worker, num_gpus=gpus, max_restarts=0, max_task_retries=0
        )
        # The factory (spec and benchmark) is put in the object store once, not serialised per actor.
        factory_ref = ray.put(make_worker)
        count = self._worker_count(len(chunks), gpus)
        self.used_workers = count
        slots = [_Slot(index, actor_class.remote(factory_ref)) for index in range(count)]
        log.info("Ray executor: %d workers (%s GPU, %s CPU each) for %d chunks",
                 count, gpus, self.cpus_per_worker, len(chunks))
        waiting = deque(range(len(chunks)))
        attempts = [0] * len(chunks)
        idle = deque(slots)
        running: dict[Any, tuple[_Slot, int]] = {}
        finished: dict[int, Any] = {}
        next_to_yield = 0
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
                except _lost_worker_errors(ray) as error:
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
                finished[index] = result
                while next_to_yield in finished:
                    yield finished.pop(next_to_yield)
                    next_to_yield += 1
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

    def _gpus_per_worker(self) -> float:
        """GPUs each actor reserves: as asked, or one whole GPU where the models go to CUDA (see the class doc)."""
        if self.gpus_per_worker > 0 or self.device == "cpu":
            return self.gpus_per_worker
        cluster_gpus = self.ray.cluster_resources().get("GPU", 0)
        if cluster_gpus == 0:
            if self.device == "cuda":
                raise HarnessError("--device cuda with --executor ray, but the Ray cluster has no GPU")
            return 0.0
        log.info("Ray executor: each worker reserves 1 GPU (--gpus-per-worker 0.5 lets two share one)")
        return 1.0

    def _worker_count(self, chunks: int, gpus_per_worker: float) -> int:
        if self.workers is not None:
            return min(self.workers, chunks)
        resources = self.ray.cluster_resources()
        if gpus_per_worker > 0:
            fit = math.floor(resources.get("GPU", 0) / gpus_per_worker + 1e-9)
            if fit < 1:
                raise HarnessError(f"the Ray cluster has {resources.get('GPU', 0):g} GPUs; "
                                   f"a worker needs {gpus_per_worker:g}")
        else:
            fit = math.floor(resources.get("CPU", 1) / max(self.cpus_per_worker, 1e-9) + 1e-9)
        return max(1, min(fit, chunks))

    def _replace(self, slot: _Slot, actor_class: Any, factory_ref: Any) -> None:
        self.ray.kill(slot.actor, no_restart=True)
        slot.actor = actor_class.remote(factory_ref)
        slot.generation += 1
        self.replaced += 1
