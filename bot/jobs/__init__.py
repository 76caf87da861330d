"""Jobs: the persisted queue and its workers (:mod:`.queue`, on pgqueuer in production: :mod:`.pgq`), the
stylization in worker threads (:mod:`.render`, micro-batched by :mod:`.batcher`) and what the user sees of
it, status and results (:mod:`.delivery`)."""

from .queue import JobRunner, JobSpec, Refused, Role

__all__ = ["JobRunner", "JobSpec", "Refused", "Role"]
