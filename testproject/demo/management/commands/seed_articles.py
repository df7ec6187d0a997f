from django.core.management.base import BaseCommand

from demo.models import Article

SAMPLES = [
    ("Hello, sockets", "Requests and replies over one WebSocket, matched by uuid."),
    ("Hydrate and dehydrate", "Load the model before the handler, serialise it after."),
    ("Status codes", "200, 201, 400, 404 and friends, as over HTTP."),
]


class Command(BaseCommand):
    help = "Create three sample articles when there are none."

    def handle(self, *args, **options) -> None:
        if Article.objects.exists():
            self.stdout.write(f"{Article.objects.count()} article(s) already there; nothing to do.")
            return
        Article.objects.bulk_create(Article(title=title, body=body) for title, body in SAMPLES)
        self.stdout.write(self.style.SUCCESS(f"Created {len(SAMPLES)} articles."))
