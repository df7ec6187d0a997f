"""The socket docs page and its schema, served by Django: ``include("django_channels_router.urls")``.

The page lists every socket and route of the AsyncAPI document and is a live console: it opens a
real WebSocket from the browser and shows replies and pushes. No CDN and no inline script (the
document travels in a ``json_script`` element), so it works offline and under a strict CSP.

Its three files come from ``STATIC_URL`` in production and from :func:`asset`, under the page's own
URL, in development (see :func:`asset_urls`), so the page works under any server without a
static files setup of its own while ``DEBUG`` is on.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.apps import apps
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render as render_page
from django.shortcuts import resolve_url
from django.templatetags.static import static
from django.urls import NoReverseMatch, Resolver404, get_script_prefix, resolve, reverse
from django.utils.cache import get_conditional_response

from ..conf import docs_access
from .asyncapi import render
from .page import lookup_values, page_model

__all__ = ["asset", "docs", "schema"]

#: A host and port as a CSP source may name them (CSP 3 has no IPv6 literals); others are left out.
CSP_HOST = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:[0-9]+)?")

#: The page's own files (``static/django_channels_router/``) and their types: all that :func:`asset` serves.
ASSETS = {"docs.css": "text/css; charset=utf-8", "docs.js": "text/javascript; charset=utf-8",
          "favicon.svg": "image/svg+xml"}
STATIC_DIR = Path(__file__).resolve().parent.parent / "static" / "django_channels_router"


def docs(request: HttpRequest) -> HttpResponse:
    refused = _refusal(request)
    if refused is not None:
        return refused
    model = page_model()
    sockets = model["sockets"]
    lookups = lookup_values(sockets)
    user = getattr(request, "user", None)
    username = user.get_username() if user is not None and user.is_authenticated else ""
    response = render_page(request, "django_channels_router/docs.html", {
        "document": model["document"], "sockets": _with_examples(sockets, lookups), "assets": asset_urls(),
        "console": _console(sockets, lookups, username),
        "from_static_url": not _assets_from_page(), "static_url": settings.STATIC_URL})
    response.setdefault("Content-Security-Policy", content_security_policy())
    return response


def content_security_policy() -> str:
    """The page needs nothing but its own static files and a WebSocket to its own host
    (``'self'`` covers ws:/wss: there); a project's own CSP header, set before, is kept."""
    assets = " ".join(["'self'", *static_source(settings.STATIC_URL or "")])
    return (f"default-src 'none'; script-src {assets}; style-src {assets}; img-src {assets}; "
            "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'self'")


def static_source(static_url: str) -> list[str]:
    """The CSP source of ``STATIC_URL`` when it is on another host: ``https://cdn.example.com``
    for an absolute URL, ``cdn.example.com`` for a protocol-relative one (a source without a
    scheme takes the page's, as the URL does), none for a path ('self' covers it). The host and
    port only (a source's path would not cover assets reached through a redirect)."""
    url = urlsplit(static_url)
    try:
        host = url.netloc.rpartition("@")[2].encode("idna").decode("ascii")  # no user@; IDNs as xn--
    except UnicodeError:
        return []
    if not CSP_HOST.fullmatch(host):
        return []
    return [f"{url.scheme}://{host}" if url.scheme else host]


def asset_urls() -> dict[str, str]:
    """Where the page loads its files from (``docs_css``, ``docs_js``, ``favicon_svg``).

    While ``DEBUG`` is on, from :func:`asset`: ``runserver`` serves ``STATIC_URL``, but daphne,
    uvicorn and gunicorn do not, and a view cannot tell which server runs it; its own URL works
    under all of them and is on the page's origin (the CSP's ``'self'``). Otherwise from
    ``STATIC_URL`` through ``{% static %}``: collectstatic's copies (hashed names, long caching)
    behind WhiteNoise or a proxy, or a CDN; so is a ``STATIC_URL`` on another host in development.
    """
    if _assets_from_page():
        return {name.replace(".", "_"): reverse("django_channels_router:asset", args=[name]) for name in ASSETS}
    return {name.replace(".", "_"): static(f"django_channels_router/{name}") for name in ASSETS}


def _assets_from_page() -> bool:
    return settings.DEBUG and not urlsplit(settings.STATIC_URL or "").netloc


def asset(request: HttpRequest, name: str) -> HttpResponse:
    """One of the page's files, in development only (:func:`asset_urls`); 404 with ``DEBUG`` off,
    as ``django.contrib.staticfiles``' own view, since production serves them from ``STATIC_URL``.
    A project's copy found by the staticfiles finders (its own ``static/django_channels_router/``)
    wins over the package's, as it does for collectstatic. ``no-cache`` with an ETag: an edited
    file shows on the next load, an unchanged one costs a 304. Public, as static files are."""
    if not settings.DEBUG or name not in ASSETS:
        raise Http404(name)
    found = None
    if apps.is_installed("django.contrib.staticfiles"):
        from django.contrib.staticfiles import finders

        found = finders.find(f"django_channels_router/{name}")
    body = Path(found if isinstance(found, str) else STATIC_DIR / name).read_bytes()
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    response = get_conditional_response(request, etag=etag) or HttpResponse(body, content_type=ASSETS[name])
    response["ETag"] = etag
    response["Cache-Control"] = "no-cache"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def schema(request: HttpRequest, fmt: str) -> HttpResponse:
    refused = _refusal(request)
    if refused is not None:
        return refused
    content_type = "application/json" if fmt == "json" else "application/yaml"
    return HttpResponse(render(page_model()["document"], fmt), content_type=f"{content_type}; charset=utf-8")


def _refusal(request: HttpRequest) -> HttpResponse | None:
    """``DOCS_ACCESS`` decides: an anonymous user who may not see the docs is sent to log in, as
    by ``login_required``; anyone else who may not is refused 403."""
    if docs_access()(request):
        return None
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        raise PermissionDenied
    login_url = _login_url()
    if login_url is None:  # a redirect would end on a 404: say what opens the page instead
        return render_page(request, "django_channels_router/docs_closed.html",
                           {"login_url": settings.LOGIN_URL}, status=403)
    return redirect_to_login(request.get_full_path(), login_url)


def _login_url() -> str | None:
    """``LOGIN_URL`` when it leads somewhere (Django's default, ``/accounts/login/``, is not
    routed in a new project), else the admin's login when the admin is routed, else None.
    A URL on another host (a single sign-on) is taken as it is."""
    try:
        url = str(resolve_url(settings.LOGIN_URL))
    except NoReverseMatch:  # a URL name that is not routed
        url = ""
    parts = urlsplit(url)
    if url and (parts.scheme or parts.netloc):
        return url
    if parts.path.startswith(get_script_prefix()):
        try:
            resolve("/" + parts.path.removeprefix(get_script_prefix()))
            return url
        except Resolver404:
            pass
    if apps.is_installed("django.contrib.admin"):
        try:
            return reverse("admin:login")
        except NoReverseMatch:
            pass
    return None


def _with_examples(sockets: list[dict[str, Any]], lookups: dict[str, Any]) -> list[dict[str, Any]]:
    """The sockets (cached, shared) with this load's example requests: the ids found now."""
    return [{**socket, "routes": [{**route, "found": route["anchor"] in lookups,
                                   "example_text": example_request(route, lookups)} for route in socket["routes"]]}
            for socket in sockets]


def example_request(route: dict[str, Any], lookups: dict[str, Any]) -> str:
    """A route's example request as JSON text; a detail route's id is the one found, or a
    placeholder to replace."""
    headers = dict(route["example"]["headers"])
    if route["lookup"]:
        headers[route["lookup"]] = lookups.get(route["anchor"], f"<{route['lookup']}>")
    message = {"uuid": "1", "route": route["name"], "headers": headers, "payload": route["example"]["payload"]}
    return json.dumps(message, indent=2, ensure_ascii=False)


def _console(sockets: list[dict[str, Any]], lookups: dict[str, Any], username: str) -> dict[str, Any]:
    """What the console's script needs (the page's ``json_script``): each socket's address, URL
    parameters and handshake user, and each route's example request and object lookup."""
    return {"sockets": [{
        "id": socket["id"], "address": socket["address"], "parameters": socket["parameters"],
        "user": username if socket["auth"] else "",
        "routes": [{"name": route["name"], "anchor": route["anchor"], "headers": route["example"]["headers"],
                    "payload": route["example"]["payload"], "lookup": route["lookup"], "model": route["model"],
                    "id": lookups.get(route["anchor"])} for route in socket["routes"]],
    } for socket in sockets]}
