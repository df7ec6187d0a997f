from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET


def index(request):
    """The demo page; its script (static/demo/app.js) talks to the demo's sockets."""
    return render(request, "demo/index.html")


@require_GET
def whoami(request):
    """The session's user, as the sockets see it: AuthMiddlewareStack reads the same cookie."""
    user = request.user
    return JsonResponse({"username": user.get_username() if user.is_authenticated else None,
                         "authenticated": user.is_authenticated})
