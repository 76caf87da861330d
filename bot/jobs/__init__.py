"""Jobs: the persisted queue and its workers (:mod:`.queue`, on pgqueuer in production: :mod:`.pgq`), the
stylization in worker threads (:mod:`.render`, micro-batched by :mod:`.batcher`); what the user sees of it goes
through the job's origin (:mod:`.origin`), which each front end implements (:mod:`bot.telegram.delivery`,
:mod:`bot.http.delivery`)."""

from .queue import JobRunner, JobSpec, Refused, Role

__all__ = ["JobRunner", "JobSpec", "Refused", "Role"]
