from django.contrib import admin
from django.urls import path

from demo import views

urlpatterns = [
    path("", views.index, name="index"),
    path("whoami/", views.whoami, name="whoami"),
    path("admin/", admin.site.urls),
]
