"""The ASGI application (config/gunicorn_asgi.conf.py runs it under uvicorn).

Django's own ASGI handler runs every middleware that is async-capable on the event
loop, hopping into a thread for each part of it that is synchronous (most of
Django's middlewares, and every database call): a dozen hops per request, each one
queued behind the event loop when the process is busy. Parley's views are
synchronous (all but the event streams), so ``Handler`` runs the whole middleware
chain and the view in one thread, in one hop; an async view (the streams) is
called from there on the event loop, and its streaming runs on the loop as before.
In front of it, ``Admission`` (config/admission.py) keeps the API's and the agents'
lanes on the event loop, before a thread is taken.
"""

import os

import django
from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup(set_prefix=False)

from config.admission import Admission  # noqa: E402 (reads the settings)


class Handler(ASGIHandler):
    def load_middleware(self, is_async=False):
        super().load_middleware(is_async=False)

    async def get_response_async(self, request):
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)


application = Admission(Handler())
