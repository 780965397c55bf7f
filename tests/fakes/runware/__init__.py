"""A local fake of Runware's REST API (docs/runware-api.md), for tests and benchmarks.

Start it, hand `fake.url` and `fake.api_key` to the client, then steer and inspect it:

    async with FakeRunware(polls_to_finish=1) as fake:
        fake.next_outcome(Outcome.failure("timeoutProvider"))   # the next video task will fail
        fake.inject(status=503, times=2, task_type="getResponse")  # the next 2 polls get a 503
        ...
        assert fake.task_counts["getResponse"] == 3

What it does, per task type (every POST body must be a JSON array; the API key is checked first):

- ``mediaStorage`` ``upload`` -> ``operation``, ``mediaUUID`` + ``mediaURL`` (and ``delete``); the deprecated
  ``imageUpload`` (older clients) -> ``imageUUID`` + ``imageURL``. The URLs serve the upload back. Decoded
  bytes are kept in ``fake.uploads`` so tests can check what was uploaded.
- ``videoInference`` is validated (model, ``deliveryMethod`` async, ``inputs.referenceImages`` and
  ``inputs.audio`` naming known uploads, ``outputFormat``, ``outputQuality`` 20-99, ``ttl`` >= 60,
  ``safety.mode``); invalid -> HTTP 400 with an ``invalid…``/``missing…`` error. A second submit of a
  taskUUID -> ``conflictTaskUUID``.
- ``getResponse`` answers each task of a batch: ``processing`` (with ``progress``), then the task's
  ``Outcome`` once it has been polled ``polls_to_finish`` times or ``seconds_to_finish`` have passed.
  Unknown UUIDs -> ``taskFailedOrNotFound``. ``getTaskDetails`` returns the original request and the current
  response.
- A ``videoInference`` with a ``webhookURL`` is POSTed there when it finishes: the flat result object,
  retried with backoff on a non-2xx answer or no answer (see FakeRunware's docstring for the knobs).
- ``GET /videos/<uuid>.<ext>`` serves a finished task's video bytes (with Content-Length unless told not to).

Run standalone (for subprocess tests): ``python -m tests.fakes.runware --port 0 --api-key k`` prints its URL
as the first line of stdout and serves until killed.

Modules: `server` (FakeRunware: HTTP handlers and the simulation of each task type), `outcomes` (Outcome,
Upload, make_mp4), `faults` (what `inject*` queues and how a faulted POST is answered), `protocol` (error
items, JSON answers and media decoding as Runware writes them), `__main__` (the standalone server).
"""

from tests.fakes.runware.outcomes import DEFAULT_VIDEO, Outcome, Upload, make_mp4
from tests.fakes.runware.server import DEFAULT_API_KEY, MODEL, FakeRunware, WebhookCall

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_VIDEO",
    "MODEL",
    "FakeRunware",
    "Outcome",
    "Upload",
    "WebhookCall",
    "make_mp4",
]
