from rest_framework.routers import SimpleRouter

from bench.subjects import ArticleViewSet

router = SimpleRouter()
router.register("articles", ArticleViewSet)
urlpatterns = router.urls
