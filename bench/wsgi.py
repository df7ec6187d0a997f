"""DRF over HTTP as it is usually deployed: WSGI (gunicorn), for bench/server.py."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
