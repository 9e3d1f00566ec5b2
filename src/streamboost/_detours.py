"""HTTP requests with steps before and after the app's: a resumable path, admission.

``StreamBoost.__call__`` runs the usual request in its own coroutine; these go through
``HTTPStream.run`` instead (one more coroutine frame per stream, only for them).
"""

from __future__ import annotations

from ._admission import Admission
from ._resume import Resume
from ._stream import HTTPStream, ResponseSettings, current_record
from ._types import Receive, Scope, Send


class Guarded:
    """The requests of a ``StreamBoost`` with ``resume=`` or ``admission=`` set."""

    __slots__ = ("admission", "resume")

    def __init__(self, resume: Resume | None, admission: Admission | None) -> None:
        self.resume = resume
        self.admission = admission

    async def __call__(
        self, responses: ResponseSettings, scope: Scope, receive: Receive, send: Send
    ) -> None:
        resume, admission = self.resume, self.admission
        tap = None
        if resume is not None and resume.applies(scope):
            if resume.is_resume(scope):  # answered from the log, measured like any stream
                replayed = HTTPStream(resume.settings(responses), scope, receive, send)
                await replayed.run()
                return
            tap = resume.tap(scope, receive, send)
            receive, send = tap.receive, tap.send
        ticket = None if admission is None else admission.ticket(scope, receive, send)
        stream = HTTPStream(responses, scope, receive if ticket is None else ticket.receive, send)
        token = current_record.set(stream.record)  # for phase() inside the app
        try:
            await (stream.run() if ticket is None else ticket.run(stream.record, stream.run))
        finally:
            current_record.reset(token)
            if tap is not None:
                await tap.finish()
