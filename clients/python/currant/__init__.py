"""currant: a job queue in POSIX shared memory for processes on one host.

Producers and consumers in separate processes share one queue segment::

    import currant

    with currant.Queue.create("demo", slots=1024, payload_bytes=256) as q:
        q.declare_entrypoint("emails")
        q.enqueue("emails", b"hello")
        for job in q.dequeue("emails", batch_size=32, timeout=1.0):
            handle(bytes(job.payload))
            q.ack(job)

Payloads are zero copy: ``job.payload`` is a read-only :class:`memoryview`
into the shared segment. It stays valid until the job is acked, failed or
retried (or the queue is closed), and is *released* at that point: using it
afterwards raises :class:`ValueError`, so Python code can never read a slot
that has been reused. Views derived from it (slices, ``memoryview(...)``,
numpy arrays) must be gone by then; otherwise ack/fail/retry raise
:class:`BufferError` and leave the job untouched. Copy with ``bytes()`` to
keep data longer.

A :class:`Queue` object is one participant of the queue. Blocking calls
release the GIL, so other threads run meanwhile. Calls on one Queue object
are serialised (a thread waiting in ``dequeue`` holds it), so give each
thread its own Queue. Do not use a Queue across ``fork()``: open the queue
again in the child process.
"""

from __future__ import annotations

import datetime as _dt
import enum as _enum
import time as _time
import traceback as _traceback
from collections.abc import Iterable, Sequence
from typing import Any, Union

from . import _currant
from ._errors import (
    ArenaFull,
    CurrantError,
    DuplicateJob,
    EntrypointNotFound,
    InvalidArgument,
    NotFound,
    NotOwner,
    PayloadTooLarge,
    PermissionDenied,
    QueueClosed,
    QueueExists,
    QueueNotFound,
    QueueRetired,
    ScheduleExists,
    ScheduleNotFound,
    StaleHandle,
    TimedOut,
)

__all__ = [
    "Queue",
    "CancelOutcome",
    "JobOutcome",
    "Job",
    "Reservation",
    "CurrantError",
    "InvalidArgument",
    "NotFound",
    "QueueNotFound",
    "EntrypointNotFound",
    "QueueExists",
    "QueueClosed",
    "QueueRetired",
    "PayloadTooLarge",
    "ArenaFull",
    "StaleHandle",
    "NotOwner",
    "TimedOut",
    "PermissionDenied",
    "ScheduleExists",
    "ScheduleNotFound",
    "DuplicateJob",
    "DeadJob",
]

for _cls in (ArenaFull, CurrantError, DuplicateJob, EntrypointNotFound, InvalidArgument, NotFound, NotOwner,
             PayloadTooLarge, PermissionDenied, QueueClosed, QueueExists, QueueNotFound,
             QueueRetired, ScheduleExists, ScheduleNotFound, StaleHandle, TimedOut):
    _cls.__module__ = __name__  # show as currant.PayloadTooLarge in tracebacks
del _cls

Job = _currant.Job
"""A picked job: ``id``, ``entrypoint`` (id), ``priority``, ``attempts``,
``enqueued_at_ns`` and ``payload`` (read-only memoryview, valid until the
job is finished)."""

Entrypoint = Union[str, int]
"""An entrypoint, by name or by the id declare_entrypoint() returned."""

Buffer = Any  # bytes, bytearray, memoryview or any object with the buffer protocol

_DURABILITIES = ("memory", "async", "sync")


def _ms(seconds: float | _dt.timedelta, what: str) -> int:
    if isinstance(seconds, _dt.timedelta):
        seconds = seconds.total_seconds()
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"{what} must be seconds (int or float) or a timedelta, not {type(seconds).__name__}")
    if seconds < 0:
        raise ValueError(f"{what} must not be negative")
    return int(round(seconds * 1000))


def _execute_after_ns(when: float | _dt.datetime | _dt.timedelta | None) -> int:
    """None: now; datetime: that instant; timedelta or seconds: from now."""
    if when is None:
        return 0
    if isinstance(when, _dt.datetime):
        return int(when.timestamp() * 1e9)
    if isinstance(when, _dt.timedelta):
        when = when.total_seconds()
    if isinstance(when, bool) or not isinstance(when, (int, float)):
        raise TypeError(
            "execute_after must be None, a datetime, a timedelta or seconds from now, "
            f"not {type(when).__name__}"
        )
    return _time.time_ns() + int(when * 1e9)


def _int_or_none(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if type(value) is not int:
        raise TypeError(f"{what} must be an int or None, not {type(value).__name__}")
    return value


def _float_or_none(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number or None, not {type(value).__name__}")
    return float(value)


def _timeout_ns(timeout: float | None) -> int:
    if timeout is None:
        return -1
    if isinstance(timeout, _dt.timedelta):
        timeout = timeout.total_seconds()
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be None or seconds, not {type(timeout).__name__}")
    return max(0, int(timeout * 1e9))


def _error_text(error: str | BaseException | None) -> str:
    if error is None:
        return ""
    if isinstance(error, BaseException):
        return "".join(_traceback.format_exception(type(error), error, error.__traceback__)).rstrip("\n")
    if isinstance(error, str):
        return error
    raise TypeError(f"error must be a str, an exception or None, not {type(error).__name__}")


def _job_ids(ids: int | Iterable[int] | None, what: str) -> list[int]:
    if ids is None:
        raise InvalidArgument(f"{what} needs job ids or entrypoint=")
    items = [ids] if isinstance(ids, int) else list(ids)
    for job_id in items:
        if type(job_id) is not int:
            raise TypeError(f"{what}: job ids must be ints, not {type(job_id).__name__}")
        if not 0 <= job_id < 2**64:
            raise InvalidArgument(f"{what}: job id {job_id} is out of range (0 .. 2**64-1)")
    return items


def _result_bytes(value: Any) -> bytes | None:
    """A handler's result as bytes: bytes-like as is, str as UTF-8, None: none."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"a job's result must be bytes, str or None, not {type(value).__name__}")


class JobOutcome:
    """What :meth:`Queue.wait` reports for one job (docs/results.md).

    ``id``; ``status``: the final status ("successful", "exception",
    "canceled") once ``finished``, else "queued" or "picked" (the wait ended
    first) or "unknown" (not in the queue: never existed, or finished and
    its slot recycled); ``result``: the handler's result (bytes) while it is
    kept, else None; ``error``: the last error text of a job that ended
    "exception" (if kept); ``finished_at`` (aware UTC datetime or None)."""

    __slots__ = ("id", "status", "finished", "result", "error", "finished_at_ns")

    def __init__(self, fields: dict[str, Any]) -> None:
        for name in self.__slots__:
            setattr(self, name, fields[name])

    @property
    def finished_at(self) -> _dt.datetime | None:
        if not self.finished_at_ns:
            return None
        return _dt.datetime.fromtimestamp(self.finished_at_ns / 1e9, _dt.timezone.utc)

    def __repr__(self) -> str:
        extra = f" result={self.result!r}" if self.result is not None else ""
        return f"<JobOutcome {self.id} {self.status}{extra}>"


class DeadJob:
    """A dead job kept with its last error (:meth:`Queue.dead_jobs`).

    ``id``, ``entrypoint`` (name), ``entrypoint_id``, ``priority``,
    ``attempts`` (deliveries made), ``max_attempts``, ``error`` (the last
    error text, "" if none was given), ``error_truncated``, ``payload``
    (bytes), ``enqueued_at`` and ``died_at`` (aware UTC datetimes)."""

    __slots__ = ("id", "entrypoint", "entrypoint_id", "priority", "attempts", "max_attempts", "error",
                 "error_truncated", "payload", "enqueued_at_ns", "died_at_ns")

    def __init__(self, fields: dict[str, Any]) -> None:
        for name in self.__slots__:
            setattr(self, name, fields[name])

    @property
    def enqueued_at(self) -> _dt.datetime:
        return _dt.datetime.fromtimestamp(self.enqueued_at_ns / 1e9, _dt.timezone.utc)

    @property
    def died_at(self) -> _dt.datetime:
        return _dt.datetime.fromtimestamp(self.died_at_ns / 1e9, _dt.timezone.utc)

    def __repr__(self) -> str:
        first = self.error.splitlines()[-1] if self.error else ""
        return f"<DeadJob {self.id} {self.entrypoint!r} attempts={self.attempts} error={first!r}>"


class Reservation:
    """A slot reserved for writing a job's payload in place (zero copy).

    ``payload`` is a writable :class:`memoryview` of ``capacity`` bytes into
    the slot. :meth:`commit` queues the job with the first ``size`` bytes as
    its payload; :meth:`abandon` gives the slot back. Either one releases
    ``payload``: writing to it afterwards raises :class:`ValueError`. Views
    derived from it must be gone by then (otherwise :class:`BufferError` and
    nothing happens). As a context manager it abandons the slot when the
    block raises; leaving the block without commit or abandon abandons the
    slot and raises :class:`RuntimeError`::

        with queue.reserve("images") as r:
            n = render_into(r.payload)
            r.commit(n, priority=5)
    """

    __slots__ = ("_queue", "_r")

    def __init__(self, queue: Any, native: Any) -> None:
        self._queue = queue
        self._r = native

    @property
    def id(self) -> int:
        """The id the job gets at commit."""
        return self._r.id

    @property
    def capacity(self) -> int:
        """Bytes available in ``payload``."""
        return self._r.capacity

    @property
    def payload(self) -> memoryview:
        """Writable view into the slot, valid until commit or abandon."""
        return self._r.payload

    @property
    def open(self) -> bool:
        """False once committed or abandoned."""
        return self._r.open

    def commit(
        self,
        size: int | None = None,
        priority: int = 0,
        execute_after: float | _dt.datetime | _dt.timedelta | None = None,
        *,
        max_attempts: int = 0,
        depends_on: Iterable[int] | None = None,
    ) -> int:
        """Queue the job with the first ``size`` bytes of ``payload``
        (None: all ``capacity`` bytes) and return its id. Raises
        :class:`PayloadTooLarge` beyond ``capacity``.

        ``depends_on``: as for :meth:`Queue.enqueue` (docs/job-dependencies.md);
        the reservation's own id is refused (``InvalidArgument``). On an
        error the reservation stays open: commit again or abandon it."""
        if size is None:
            size = -1
        elif type(size) is not int:
            raise TypeError(f"size must be an int or None, not {type(size).__name__}")
        elif size < 0:
            raise ValueError("size must not be negative")
        return self._queue.commit(
            self._r, size, priority, _execute_after_ns(execute_after), max_attempts,
            None if depends_on is None else list(depends_on),
        )

    def abandon(self) -> None:
        """Give the slot back without queueing anything. Idempotent."""
        self._queue.abandon(self._r)

    def __enter__(self) -> "Reservation":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if not self._r.open:
            return
        self._queue.abandon(self._r)
        if exc_type is None:
            raise RuntimeError(
                f"reservation {self.id} left its with block without commit() or abandon(); it was abandoned"
            )

    def __repr__(self) -> str:
        return f"<currant.Reservation id={self.id} capacity={self.capacity}{'' if self.open else ' closed'}>"



class CancelOutcome(str, _enum.Enum):
    """What Queue.cancel did (docs/cancellation.md)."""

    CANCELED = "canceled"              # it was queued: it ended "canceled" now
    REQUESTED = "requested"            # it is picked: its holder was asked to stop
    NOT_CANCELABLE = "not_cancelable"  # finished, or unknown to the queue

    def __bool__(self) -> bool:
        return self is not CancelOutcome.NOT_CANCELABLE

    def __str__(self) -> str:
        return self.value

class Queue:
    """A handle on one currant queue (a shared-memory segment).

    ``Queue(name)`` opens an existing queue (:class:`QueueNotFound` if there
    is none); :meth:`Queue.create` makes a new one. Use as a context manager
    or call :meth:`close`; jobs picked and not finished are requeued at close.
    """

    __slots__ = ("_q", "_fast")

    def __init__(self, name: str, *, _native: Any = None) -> None:
        if _native is None:
            if not isinstance(name, str):
                raise TypeError(f"queue name must be a str, not {type(name).__name__}")
            _native = _currant.Queue.open(name)
        self._q = _native  # pybind11
        self._fast = _native.fast()  # enqueue, dequeue, dequeue_one, ack, ack_deferred (raw CPython)

    @classmethod
    def create(
        cls,
        name: str,
        *,
        slots: int = 65536,
        payload_bytes: int = 256,
        max_entrypoints: int = 64,
        max_participants: int = 256,
        log_capacity: int = 65536,
        host_id: int = 0,
        mode: int = 0o600,
        result_bytes: int = 1024,
    ) -> "Queue":
        """Create a new queue segment and open it.

        ``slots`` is how many jobs it holds at once, ``payload_bytes`` the
        largest payload, ``max_participants`` how many Queue objects may be
        attached at once across processes, ``mode`` the segment's permission
        bits, ``result_bytes`` the largest job result (0 to 1 MiB;
        docs/results.md). Raises :class:`QueueExists` if the queue exists.
        """
        if not isinstance(name, str):
            raise TypeError(f"queue name must be a str, not {type(name).__name__}")
        native = _currant.Queue.create(
            name, slots, payload_bytes, max_entrypoints, max_participants, log_capacity, host_id, mode, result_bytes
        )
        return cls(name, _native=native)

    @staticmethod
    def remove(name: str) -> bool:
        """Retire and unlink a queue; False if it did not exist.

        Processes still attached get :class:`QueueRetired` on their next call.
        """
        if not isinstance(name, str):
            raise TypeError(f"queue name must be a str, not {type(name).__name__}")
        return _currant.Queue.remove(name)

    # --- lifetime ---

    def close(self) -> None:
        """Detach from the queue. Unfinished picked jobs are requeued. Idempotent."""
        self._q.close()

    def interrupt(self) -> None:
        """Make a dequeue waiting on this Queue in another thread (or the next
        one to wait) return early with what it has, possibly nothing. The one
        method that is safe to call from another thread or a signal handler
        while this Queue is busy: it never takes the Queue's lock."""
        self._q.interrupt()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._q.closed

    @property
    def name(self) -> str:
        """The queue's name."""
        return self._q.name

    def __enter__(self) -> "Queue":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<currant.Queue {self.name!r}{' closed' if self.closed else ''}>"

    # --- entrypoints ---

    def declare_entrypoint(
        self,
        name: str,
        durability: str | None = None,
        *,
        lease: float | _dt.timedelta = 30.0,
        max_attempts: int = 5,
        retry_delay: float | _dt.timedelta = 1.0,
        max_retry_delay: float | _dt.timedelta = 300.0,
        concurrency_limit: int | None = None,
        rate_limit: float | None = None,
        rate_burst: int | None = None,
        max_dead: int | None = None,
        result_retention: float | _dt.timedelta | None = None,
    ) -> int:
        """Declare an entrypoint (or update an existing one) and return its id.

        ``durability`` is "memory", "async" or "sync" (see DESIGN.md); None
        gives a new entrypoint the queue's default (async once currantd
        mirrors the queue, else memory) and keeps an existing one's.
        ``lease`` is how long (seconds) a picked job stays with its consumer
        without a heartbeat before it is requeued; ``max_attempts`` how many
        deliveries a job gets; ``retry_delay`` the first back-off, doubled
        per attempt up to ``max_retry_delay``.

        Limits (docs/limits.md): ``concurrency_limit`` jobs picked at once
        across all processes, ``rate_limit`` starts per second with up to
        ``rate_burst`` (default 1) at once. None keeps an existing
        entrypoint's limit (a new one has none); zero or negative raises
        :class:`InvalidArgument` and declares nothing. Change or remove them
        later with :meth:`set_concurrency_limit` / :meth:`set_rate_limit`.

        ``max_dead`` (docs/dead-jobs.md): how many dead jobs (ended
        "exception") are kept with their last error, the oldest recycled
        first; 0 keeps none. None gives a new entrypoint 1000 (at most the
        arena's slots) and keeps an existing one's; more than the arena's
        slots raises :class:`InvalidArgument`.

        ``result_retention`` (docs/results.md): seconds a job that ends
        "successful" or "canceled" stays readable with its result
        (:meth:`wait`); at least that long while the arena has room, the
        oldest recycled first when it would otherwise be full. 0 keeps none.
        None gives a new entrypoint 0 and keeps an existing one's.
        """
        if max_dead is not None and (type(max_dead) is not int or not 0 <= max_dead <= 0xFFFFFFFF):
            if type(max_dead) is not int:
                raise TypeError(f"max_dead must be an int or None, not {type(max_dead).__name__}")
            raise InvalidArgument(f"max_dead must be between 0 and the arena's slots, not {max_dead}")
        if not isinstance(name, str):
            raise TypeError(f"entrypoint name must be a str, not {type(name).__name__}")
        if durability is not None and durability not in _DURABILITIES:
            raise ValueError(f"durability must be one of {_DURABILITIES} or None, not {durability!r}")
        return self._q.declare_entrypoint(
            name,
            durability or "",
            _ms(lease, "lease"),
            max_attempts,
            _ms(retry_delay, "retry_delay"),
            _ms(max_retry_delay, "max_retry_delay"),
            _int_or_none(concurrency_limit, "concurrency_limit"),
            _float_or_none(rate_limit, "rate_limit"),
            _int_or_none(rate_burst, "rate_burst"),
            max_dead,
            None if result_retention is None else _ms(result_retention, "result_retention"),
        )

    def entrypoint(self, name: str) -> int:
        """The id of a declared entrypoint (:class:`EntrypointNotFound` if none)."""
        if not isinstance(name, str):
            raise TypeError(f"entrypoint name must be a str, not {type(name).__name__}")
        return self._q.entrypoint(name)

    # --- pause and limits (docs/limits.md) ---

    def pause(self, entrypoint: Entrypoint) -> None:
        """Hand out nothing from this entrypoint until :meth:`resume`.

        Enqueues are still accepted and jobs already picked may be acked. The
        pause lives in the queue segment: it holds for every process and
        outlives the one that set it. Returns once no pick is in progress.
        """
        self._q.pause(entrypoint)

    def resume(self, entrypoint: Entrypoint) -> None:
        """End a pause; consumers asleep on the entrypoint wake up."""
        self._q.resume(entrypoint)

    def paused(self, entrypoint: Entrypoint) -> bool:
        """True while the entrypoint is paused."""
        return bool(self._q.limits(entrypoint)["paused"])

    def set_concurrency_limit(self, entrypoint: Entrypoint, limit: int | None) -> None:
        """At most ``limit`` jobs of the entrypoint picked at once across all
        processes (exact); None removes the limit. Jobs already picked count
        at once, prefetched jobs too. Zero or negative: :class:`InvalidArgument`."""
        self._q.set_concurrency_limit(entrypoint, _int_or_none(limit, "limit"))

    def set_rate_limit(self, entrypoint: Entrypoint, per_second: float | None, burst: int = 1) -> None:
        """At most ``per_second`` starts per second, up to ``burst`` at once (a
        token bucket in the segment; setting it refills the bucket); None
        removes the limit. Zero, negative or NaN: :class:`InvalidArgument`."""
        checked_burst = _int_or_none(burst, "burst")
        self._q.set_rate_limit(
            entrypoint, _float_or_none(per_second, "per_second"), 1 if checked_burst is None else checked_burst
        )

    def limits(self, entrypoint: Entrypoint) -> dict[str, Any]:
        """The entrypoint's pause flag and limits: ``paused``, ``concurrency``
        (None: no limit), ``in_flight`` (picked jobs counted against it),
        ``rate`` (starts per second, None: no limit) and ``burst``."""
        return self._q.limits(entrypoint)

    def entrypoint_name(self, entrypoint_id: int) -> str:
        """The name of the entrypoint with this id."""
        return self._q.entrypoint_name(entrypoint_id)

    def entrypoint_names(self) -> list[str]:
        """Names of all declared entrypoints."""
        return self._q.entrypoint_names()

    # --- producing ---

    def enqueue(
        self,
        entrypoint: Entrypoint,
        payload: Buffer,
        priority: int = 0,
        execute_after: float | _dt.datetime | _dt.timedelta | None = None,
        *,
        max_attempts: int = 0,
        wait: float | None = 0,
        dedupe_key: str | bytes | None = None,
        on_duplicate: str = "skip",
        depends_on: Iterable[int] | None = None,
    ) -> int:
        """Queue one job and return its id.

        ``payload`` is bytes or any contiguous buffer (bytearray, memoryview,
        array, numpy array ...); it is copied into the segment.
        ``execute_after`` delays the job: a datetime, or a timedelta / seconds
        from now. ``max_attempts`` 0 takes the entrypoint's default. ``wait``
        is how long (seconds) to wait for a free slot when the queue is full
        before raising :class:`ArenaFull`.

        ``dedupe_key`` (1 to 128 bytes, str as UTF-8, no control characters;
        docs/dedupe.md): while a job of this entrypoint with the same key is
        queued (delayed included) or picked, nothing is enqueued and
        ``on_duplicate`` decides: ``"skip"`` returns that job's id (then
        :attr:`last_enqueue_skipped` is True), ``"refuse"`` raises
        :class:`DuplicateJob`. The key is free again once its job ends.

        ``depends_on`` (docs/job-dependencies.md): ids of jobs (any
        entrypoint, at most 16) that must end successful first. Until then
        the job is ``"waiting"``; if one ends exception or canceled, the job
        ends ``"canceled"`` and :meth:`job_info` gives the reason. An id
        unknown to the queue raises :class:`NotFound` and enqueues nothing.
        """
        if depends_on is not None:
            return self._fast.enqueue(
                entrypoint, payload, priority, _execute_after_ns(execute_after), max_attempts,
                _ms(wait or 0, "wait"), dedupe_key, on_duplicate, list(depends_on),
            )
        if dedupe_key is not None:
            return self._fast.enqueue(
                entrypoint, payload, priority, _execute_after_ns(execute_after), max_attempts,
                _ms(wait or 0, "wait"), dedupe_key, on_duplicate,
            )
        if execute_after is None and not wait:  # the common call: no conversions
            return self._fast.enqueue(entrypoint, payload, priority, 0, max_attempts, 0)
        return self._fast.enqueue(
            entrypoint, payload, priority, _execute_after_ns(execute_after), max_attempts, _ms(wait or 0, "wait")
        )

    @property
    def last_enqueue_skipped(self) -> bool:
        """True if this Queue's last enqueue with a ``dedupe_key`` added no job
        (the key was held; the id returned was the holder's)."""
        return self._q.last_enqueue_skipped()

    def enqueue_batch(
        self,
        entrypoint: Entrypoint,
        payloads: Iterable[Buffer],
        priority: int = 0,
        execute_after: float | _dt.datetime | _dt.timedelta | None = None,
        *,
        max_attempts: int = 0,
        wait: float | None = 0,
        depends_on: Iterable[int] | None = None,
    ) -> list[int]:
        """Queue many jobs in order; return their ids.

        Every payload is checked first (one too large raises
        :class:`PayloadTooLarge` and nothing is queued). All payloads are
        queued, or :class:`ArenaFull` is raised once the queue stays full for
        ``wait`` seconds; its ``enqueued_ids`` attribute then lists the ids of
        the jobs queued before that (a prefix of ``payloads``).

        ``depends_on``: as for :meth:`enqueue`, for every job of the batch
        (each waits for all of them; docs/job-dependencies.md). An id the
        queue cannot judge raises :class:`NotFound` before anything is queued.
        """
        payloads = payloads if isinstance(payloads, list) else list(payloads)
        after_ns = _execute_after_ns(execute_after)
        wait_ms = _ms(wait or 0, "wait")
        dependencies = None if depends_on is None else list(depends_on)
        ids: list[int] = self._q.enqueue_batch(
            entrypoint, payloads, priority, after_ns, max_attempts, wait_ms, dependencies
        )
        while len(ids) < len(payloads):
            try:
                ids += self._q.enqueue_batch(
                    entrypoint, payloads[len(ids):], priority, after_ns, max_attempts, wait_ms, dependencies
                )
            except CurrantError as error:
                error.enqueued_ids = ids  # type: ignore[attr-defined]
                raise
        return ids

    def reserve(self, entrypoint: Entrypoint) -> Reservation:
        """Reserve a slot to write a payload in place; see :class:`Reservation`.
        Raises :class:`ArenaFull` when no slot is free."""
        return Reservation(self._q, self._q.reserve(entrypoint))

    # --- consuming ---

    def dequeue(
        self,
        entrypoints: Entrypoint | Iterable[Entrypoint],
        batch_size: int = 1,
        timeout: float | None = None,
    ) -> list[Job]:
        """Pick up to ``batch_size`` jobs from one or more entrypoints.

        Waits (blocked in the kernel, GIL released) up to ``timeout`` seconds
        for the first job; ``None`` waits forever, 0 does not wait. Returns
        an empty list on timeout. Each job must be finished with :meth:`ack`,
        :meth:`fail` or :meth:`retry` before its lease expires.
        """
        if type(batch_size) is not int:  # bool is refused too
            raise TypeError(f"batch_size must be an int, not {type(batch_size).__name__}")
        if timeout is None:
            timeout_ns = -1
        elif type(timeout) is float or type(timeout) is int:
            timeout_ns = int(timeout * 1e9) if timeout > 0 else 0
        else:
            timeout_ns = _timeout_ns(timeout)
        return self._fast.dequeue(entrypoints, batch_size, timeout_ns)

    def dequeue_one(self, entrypoints: Entrypoint | Iterable[Entrypoint], timeout: float | None = None) -> Job | None:
        """Pick one job, or return None on timeout.

        Served from this Queue's prefetch buffer: when it is empty, one call
        picks up to :meth:`set_prefetch` jobs (default 8) under one lock.
        Prefetched jobs are this consumer's (their leases run from the pick,
        other consumers cannot get them) until handed out, and are requeued
        at :meth:`close`. ``timeout`` as in :meth:`dequeue`.
        """
        if timeout is None:
            timeout_ns = -1
        elif type(timeout) is float or type(timeout) is int:
            timeout_ns = int(timeout * 1e9) if timeout > 0 else 0
        else:
            timeout_ns = _timeout_ns(timeout)
        return self._fast.dequeue_one(entrypoints, timeout_ns)

    def set_prefetch(self, jobs: int) -> None:
        """How many jobs :meth:`dequeue_one` picks at once: 1..1024 (default 8)."""
        if type(jobs) is not int:
            raise TypeError(f"prefetch must be an int, not {type(jobs).__name__}")
        if not 1 <= jobs <= 1024:
            raise ValueError("prefetch must be between 1 and 1024 jobs")
        self._q.set_prefetch(jobs)

    def ack_deferred(self, job: Job) -> None:
        """Buffer the job's success; it is NOT yet recorded when this returns.

        Buffered acks are applied by :meth:`flush`, every 64 jobs, before this
        Queue sleeps in a dequeue, 100 ms before the earliest lease deadline
        of a buffered job, and at :meth:`close`. Until then the job is still
        picked: if this process dies it runs again (at least once), never
        lost. The payload is released now, as by :meth:`ack`. A job that is
        no longer ours by the flush is skipped silently.
        """
        self._fast.ack_deferred(job)

    def flush(self) -> int:
        """Apply the buffered deferred acks now; returns how many were applied."""
        return self._q.flush()

    def ack(self, job: Job | Sequence[Job], result: bytes | str | None = None) -> int:
        """Record success of a job (or a list of jobs) and release its payload.

        One job: raises :class:`StaleHandle` if the job is no longer ours
        (lease lost, already finished); returns 1. A list: returns how many
        were acked (stale ones are skipped).

        ``result`` (one job only; docs/results.md): bytes, or a str stored
        as UTF-8, kept with the job for its entrypoint's result_retention and
        returned by :meth:`wait`. One larger than the queue's result bytes
        (1024 unless created larger) raises :class:`InvalidArgument` naming
        both sizes, and the job stays picked (ack it again).
        """
        if result is not None:
            if type(job) is not Job:
                raise TypeError("ack takes a result only with one Job")
            data = _result_bytes(result)
            assert data is not None
            self._q.ack_result(job, data)
            return 1
        if type(job) is Job:
            self._fast.ack(job)
            return 1
        if isinstance(job, (list, tuple)):
            return self._q.ack_many(list(job))
        raise TypeError(f"ack takes a Job or a list of Jobs, not {type(job).__name__}")

    def fail(self, job: Job, error: str | BaseException | None = None) -> None:
        """End the job as failed (status "exception") and release its payload.

        ``error`` is kept with the dead job as its last error (see
        :meth:`dead_jobs`) and mirrored as ``currant_log.traceback``: a str,
        or an exception, whose formatted traceback is kept. Texts longer than
        the slot's outcome area (at least 1024 bytes) are cut."""
        self._q.fail(job, _error_text(error))

    def retry(self, job: Job, delay: float | _dt.timedelta | None = None,
              error: str | BaseException | None = None) -> bool:
        """Requeue the job after ``delay`` seconds (default: the entrypoint's
        exponential back-off). Returns False if the job ran out of attempts
        and ended "exception" instead. ``error`` as for :meth:`fail`: the
        job's last error, kept with it if this retry ended it."""
        return self._q.retry(job, -1 if delay is None else _ms(delay, "delay"), _error_text(error))

    # --- dead jobs (docs/dead-jobs.md) ---

    def dead_jobs(self, entrypoint: Entrypoint | None = None) -> list[DeadJob]:
        """The dead jobs kept (ended "exception": failed, or out of
        attempts), oldest death first per entrypoint; of one entrypoint, or
        of all with None. :class:`EntrypointNotFound` for an unknown name."""
        return [DeadJob(d) for d in self._q.dead_jobs(entrypoint)]

    def requeue(self, ids: int | Iterable[int] | None = None, *, entrypoint: Entrypoint | None = None) -> int:
        """Put kept dead jobs back to "queued" at once with a fresh set of
        attempts: the given ids, or every dead job of ``entrypoint``. Returns
        how many were requeued; ids that are not kept dead jobs (queued,
        running, purged, unknown) are skipped. A dead job whose dedupe key
        another queued or running job holds stays dead: by id it raises
        :class:`DuplicateJob` (ids before it were requeued), with
        ``entrypoint`` it is skipped."""
        if entrypoint is not None:
            if ids is not None:
                raise InvalidArgument("requeue takes ids or entrypoint=, not both")
            return self._q.requeue_dead(entrypoint)
        return sum(1 for job_id in _job_ids(ids, "requeue") if self._q.requeue(job_id))

    def purge_dead(self, ids: int | Iterable[int] | None = None, *, entrypoint: Entrypoint | None = None) -> int:
        """Drop kept dead jobs: the given ids, or every dead job of
        ``entrypoint``. Returns how many were dropped; ids that are not kept
        dead jobs are skipped. (In async/sync durability a death currantd
        has not mirrored yet keeps its slot until it has.)"""
        if entrypoint is not None:
            if ids is not None:
                raise InvalidArgument("purge_dead takes ids or entrypoint=, not both")
            return self._q.purge_dead(entrypoint)
        return sum(1 for job_id in _job_ids(ids, "purge_dead") if self._q.purge(job_id))

    def heartbeat(self, jobs: Job | Sequence[Job]) -> int:
        """Extend the leases of picked jobs; returns how many were extended."""
        if isinstance(jobs, Job):
            jobs = [jobs]
        return self._q.heartbeat(list(jobs))

    def cancel(self, job_id: int) -> "CancelOutcome":
        """Cancel a job from any process (docs/cancellation.md).

        Returns CancelOutcome.CANCELED if it was queued (it ended "canceled"
        now), CancelOutcome.REQUESTED if it is picked (the request is
        recorded in the queue and its holder woken: it never runs again and
        ends "canceled" unless its handler finishes first), or
        CancelOutcome.NOT_CANCELABLE (finished or unknown). The outcome is
        true unless it is NOT_CANCELABLE. Raises TypeError for a non-int
        and InvalidArgument for an int that is no job id (0, negative, or
        above 2**63-1)."""
        if isinstance(job_id, bool) or not isinstance(job_id, int):
            raise TypeError(f"job id must be an int, not {type(job_id).__name__}")
        if not 0 < job_id < 2**63:
            raise InvalidArgument(f"queue {self.name!r}: {job_id} is not a job id (ids are 1 to 2**63-1)")
        return CancelOutcome(self._q.cancel(job_id))

    def cancel_requested(self, job: Job) -> bool:
        """Holder side: True once a cancel was requested for this pick of
        the job. Reads one word of the queue (no system call, no lock), so
        it is cheap in a loop and safe from any thread."""
        return self._q.cancel_requested(job)

    def wait_for_cancel(self, jobs: Job | Sequence[Job], timeout: float | None = None) -> int | None:
        """Block (GIL released) until a cancel is requested for one of the
        picked `jobs` (returns its index), `timeout` seconds pass (None:
        forever), none of them is still held, or interrupt() is called (then
        None). Signals are handled when it returns, not during the wait."""
        if isinstance(jobs, Job):
            jobs = [jobs]
        return self._q.wait_for_cancel(list(jobs), -1 if timeout is None else _timeout_ns(timeout))

    def ack_canceled(self, job: Job) -> None:
        """The holder gives the job up: it ends "canceled" (with or without
        a request). Raises like ack()."""
        self._q.ack_canceled(job)

    # --- schedules (docs/schedules.md) ---

    def add_schedule(
        self,
        name: str,
        expression: str,
        entrypoint: Entrypoint,
        payload: bytes = b"",
        *,
        priority: int = 0,
        missed: str = "skip",
        catch_up_max: int = 100,
    ) -> None:
        """Add a named cron schedule that enqueues one job (payload, priority)
        on `entrypoint` at each tick of `expression` (5 or 6 fields, seconds
        first when 6, or an alias such as "@hourly"; UTC).

        Each tick fires exactly once on the host: any process waiting in
        dequeue (or calling run_schedules) fires it, and the job's
        enqueued_at_ns is the tick. `missed` is "skip" (fire once for the
        latest missed tick) or "catch_up" (fire each missed tick, at most
        `catch_up_max`). Raises InvalidArgument (bad expression: the message
        names the field), EntrypointNotFound, ScheduleExists,
        PayloadTooLarge."""
        self._q.add_schedule(name, expression, entrypoint, bytes(payload), priority, missed, catch_up_max)

    def remove_schedule(self, name: str) -> None:
        """Remove a schedule; raises ScheduleNotFound for an unknown name."""
        self._q.remove_schedule(name)

    def schedules(self) -> list[dict[str, Any]]:
        """The schedules, by name: name, expression, entrypoint (name),
        entrypoint_id, payload, priority, missed, catch_up_max, next_tick_ns,
        last_tick_ns, fired, last_job_id, created_at_ns (CLOCK_REALTIME ns)."""
        return self._q.schedules()

    def run_schedules(self) -> int:
        """Fire the ticks due now; returns how many jobs were enqueued. Only
        needed in processes that never dequeue."""
        return self._q.run_schedules()

    # --- results and waiting (docs/results.md) ---

    def wait(self, ids: int | Iterable[int], timeout: float | _dt.timedelta | None = None) -> list[JobOutcome]:
        """Block (GIL released, in the kernel) until every job of ``ids``
        has ended or is not in the queue, ``timeout`` seconds pass (None:
        forever; 0: just look) or :meth:`interrupt` is called; returns a
        :class:`JobOutcome` per id, in order. Returns at once for finished
        jobs (also a job whose slot was reused: its final status, no result);
        unknown ids are reported ("unknown"), not waited for. Ctrl-C
        raises KeyboardInterrupt. Raises :class:`InvalidArgument` for an id
        that no job can have (0, or not below 2**63)."""
        items = [ids] if isinstance(ids, int) else list(ids)
        for job_id in items:
            if isinstance(job_id, bool) or not isinstance(job_id, int):
                raise TypeError(f"job id must be an int, not {type(job_id).__name__}")
            if not 0 < job_id < 2**63:
                raise InvalidArgument(f"queue {self.name!r}: {job_id} is not a job id (ids are 1 to 2**63-1)")
        return [JobOutcome(o) for o in self._q.wait(items, _timeout_ns(timeout))]

    def set_result_retention(self, entrypoint: Entrypoint, seconds: float | _dt.timedelta) -> None:
        """Change how long the entrypoint keeps finished jobs with their
        results (see :meth:`declare_entrypoint`); jobs finishing from now on
        get it."""
        self._q.set_result_retention(entrypoint, _ms(seconds, "result_retention"))

    # --- inspecting ---

    def status(self, ids: int | Iterable[int]) -> list[str]:
        """Statuses of jobs by id: "queued", "picked", "successful",
        "exception", "canceled", "waiting" (for its dependencies) or "unknown"
        (never issued, or ended too long ago to be remembered). A finished
        job keeps its final status after its slot is reused, while the
        queue's recent outcomes hold it (docs/results.md)."""
        if isinstance(ids, int):
            ids = [ids]
        return self._q.status(list(ids))

    def job_info(self, id: int) -> dict[str, Any]:
        """One job's status with its dependencies (docs/job-dependencies.md):
        ``{"status", "depends_on": [ids], "waiting_on": n, "reason": str,
        "slot_reused": bool}``; ``reason`` says which dependency canceled it
        ("" if none); ``slot_reused`` is True when the job finished and its
        slot was reused: ``status`` is then its final status as the queue
        remembers it, and the other fields are empty."""
        return self._q.job_info(id)

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per-entrypoint counters, keyed by entrypoint name: queued, delayed,
        picked (now) and enqueued, picks, successful, failed, retried,
        canceled (totals)."""
        return self._q.stats()

    def info(self) -> dict[str, Any]:
        """Sizes and occupancy of the queue segment."""
        return self._q.info()

    def reap(self) -> int:
        """Requeue jobs of dead consumers and expired leases now; returns how many."""
        return self._q.reap()

from .aio import dequeue_async, wait_for_cancel_async  # noqa: E402  (asyncio: awaitable dequeue and cancel wait)
from .worker import JobContext, QueueManager  # noqa: E402  (PgQueuer-style worker API)

__all__ += ["dequeue_async", "wait_for_cancel_async", "QueueManager", "JobContext"]
