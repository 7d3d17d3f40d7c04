"""``xaicli serve``: the models behind HTTP (and behind the chat bot plugin), one concern per module.

* :mod:`~xaicli.serve.config` -- the service's settings and limits, and model names;
* :mod:`~xaicli.serve.uploads` -- the service's private temporary folder (0700): one folder per
  upload, removed after the response, after a TTL in any case, and on shutdown;
* :mod:`~xaicli.serve.multipart` -- reading a multipart body into memory within the size limits;
* :mod:`~xaicli.serve.intake` -- checking an upload by its content (never its name), pixel limits,
  and DICOM de-identified on arrival through :mod:`~xaicli.serve.deid` (the one call into the
  project's anonymiser);
* :mod:`~xaicli.serve.batching` -- the bounded queue and the one worker thread that makes every
  model call, in batches;
* :mod:`~xaicli.serve.core` -- the inference core: models, shared runners and the pipelines
  (:class:`xaicli.pipeline.run.Pipeline`) concurrent requests are batched through; the HTTP app
  and the chat bot both call it;
* :mod:`~xaicli.serve.results` -- a record as JSON, its overlays as PNG;
* :mod:`~xaicli.serve.security` -- the bearer token, and logs that carry nothing of an upload;
* :mod:`~xaicli.serve.app` -- the FastAPI application (routes, errors, the page at ``/``);
  :mod:`~xaicli.serve.server` runs it with uvicorn.

Nothing here is imported by ``xaicli --help``; FastAPI is imported only by ``app`` and ``server``.
"""
