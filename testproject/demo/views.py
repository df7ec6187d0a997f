from django.shortcuts import render


def index(request):
    """The demo page; its script (static/demo/app.js) talks to the three sockets."""
    return render(request, "demo/index.html")
