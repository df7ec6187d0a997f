from django.contrib import admin
from django.urls import include, path

from demo import views

urlpatterns = [
    path("", views.index, name="index"),
    path("whoami/", views.whoami, name="whoami"),
    path("admin/", admin.site.urls),
    # The socket docs page with its live console, and the AsyncAPI schema (DOCS_ACCESS in settings).
    path("socket-docs/", include("django_channels_router.urls")),
]
