"""The service's routes, one :class:`fastapi.APIRouter` per area.

``page`` (the web page), ``health`` (liveness and readiness), ``predict`` (the differential),
``search`` (embeddings, similar cases, thumbnails) and ``about`` (models, vocabulary). They reach
the :class:`~dermkit.serve.service.Service` through its dependency; the app adds the access
guards and the documented refusals when it includes the ``/v1/`` routers.
"""
