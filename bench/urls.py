from rest_framework.routers import SimpleRouter

from bench.compare import ArticleViewSet

router = SimpleRouter()
router.register("articles", ArticleViewSet)
urlpatterns = router.urls
