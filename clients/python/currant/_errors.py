"""Exceptions raised by currant.

Every failure reported by the queue is a :class:`CurrantError` whose
``code`` is the stable short name of the C++/C error code (``"arena_full"``,
``"payload_too_large"``, ...). Subclasses exist for the cases callers
commonly handle; any other code raises a plain :class:`CurrantError`.
Bad argument *types* raise the built-in :class:`TypeError`.
"""

from __future__ import annotations


class CurrantError(Exception):
    """A failure reported by currant; ``code`` names the error ("arena_full")."""

    code: str = "unknown"

    def __init__(self, message: str = "", code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class InvalidArgument(CurrantError, ValueError):
    """A bad name, size, option or handle shape."""

    code = "invalid_argument"


class NotFound(CurrantError, LookupError):
    """No queue, entrypoint or job of that name or id."""

    code = "not_found"


class QueueNotFound(NotFound):
    """No queue of that name exists (create it first)."""


class EntrypointNotFound(NotFound):
    """No entrypoint of that name was declared on this queue."""


class QueueExists(CurrantError):
    """Queue.create() of a queue that already exists."""

    code = "already_exists"


class QueueClosed(CurrantError):
    """The Queue object was closed; open the queue again."""

    code = "closed"


class QueueRetired(CurrantError):
    """The queue was removed or recreated: reopen it."""

    code = "segment_retired"


class PayloadTooLarge(CurrantError, ValueError):
    """The payload exceeds the queue's payload_bytes per job."""

    code = "payload_too_large"


class ArenaFull(CurrantError):
    """No free slot: the queue is full (back-pressure)."""

    code = "arena_full"


class StaleHandle(CurrantError):
    """The job was re-picked, finished or its slot reused (lease lost?)."""

    code = "stale_handle"


class NotOwner(StaleHandle):
    """The job is held by another consumer (its lease expired and it was
    re-picked). A StaleHandle too: either way the job is no longer yours."""

    code = "not_owner"


class TimedOut(CurrantError):
    """A wait ended at its deadline."""

    code = "timed_out"


class PermissionDenied(CurrantError, PermissionError):
    """The OS refused access to the queue's segment."""

    code = "permission_denied"


class ScheduleExists(CurrantError):
    """Queue.add_schedule() with the name of a schedule that exists."""

    code = "already_exists"


class DuplicateJob(CurrantError):
    """Queue.enqueue(..., dedupe_key=K, on_duplicate="refuse") while a job of
    the entrypoint with key K is queued or picked; the message names the
    key and that job's id. Nothing was enqueued. Also raised by
    Queue.requeue() of a dead job whose key another queued or picked job
    holds: the dead job stays dead."""

    code = "already_exists"


class ScheduleNotFound(NotFound):
    """No schedule of that name exists on this queue."""


_BY_KIND: dict[str, type[CurrantError]] = {
    "invalid_argument": InvalidArgument,
    "not_found": NotFound,
    "queue_not_found": QueueNotFound,
    "entrypoint_not_found": EntrypointNotFound,
    "already_exists": QueueExists,
    "schedule_exists": ScheduleExists,
    "schedule_not_found": ScheduleNotFound,
    "duplicate_job": DuplicateJob,
    "closed": QueueClosed,
    "segment_retired": QueueRetired,
    "payload_too_large": PayloadTooLarge,
    "arena_full": ArenaFull,
    "stale_handle": StaleHandle,
    "not_owner": NotOwner,
    "timed_out": TimedOut,
    "permission_denied": PermissionDenied,
}


def make_error(kind: str, code: str, message: str) -> CurrantError:
    """Build the exception for an error of the given kind (used by _currant)."""
    return _BY_KIND.get(kind, CurrantError)(message, code)
