from django.urls import re_path

from . import consumers

websocket_urlpatterns = [
    re_path(r"ws/app/$", consumers.AppSocket.as_asgi()),
    re_path(r"ws/app-async/$", consumers.AppSocketAsync.as_asgi()),
    re_path(r"ws/articles/$", consumers.ArticleConsumer.as_asgi()),
    re_path(r"ws/model/articles/$", consumers.ArticleSocket.as_asgi()),
]
