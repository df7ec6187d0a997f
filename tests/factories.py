import factory
from django.contrib.auth.models import Permission, User

from demo.models import Article
from tests.models import Note


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")

    @factory.post_generation
    def perms(self, create, codenames, **kwargs):
        """``UserFactory(perms=["add_article"])`` grants those model permissions."""
        if create and codenames:
            self.user_permissions.add(*Permission.objects.filter(codename__in=codenames))


class ArticleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Article

    title = factory.Sequence(lambda n: f"Article {n}")
    body = factory.Faker("sentence")


class NoteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Note

    owner = factory.SubFactory(UserFactory)
    title = factory.Sequence(lambda n: f"Note {n}")
