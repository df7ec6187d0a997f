from rest_framework.routers import SimpleRouter

from tests.drf import ArticleViewSet

router = SimpleRouter()
router.register("articles", ArticleViewSet)
urlpatterns = router.urls
