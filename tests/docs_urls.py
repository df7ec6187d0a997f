from django.urls import include, path

urlpatterns = [path("socket-docs/", include("django_channels_router.urls"))]
