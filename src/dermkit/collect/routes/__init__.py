"""The platform's routes, one :class:`fastapi.APIRouter` per area.

``contribute`` (consent, upload, status, withdrawal), ``accounts`` (sign in and out), ``grading``
(queue, forms, images, condition search) and ``admin`` (dashboard, cases, users, export);
``deps`` holds what they share, reached through ``request.app.state``.
"""
