"""The benchmark subjects: the same envelope and the same model, served four ways, and the
requests every benchmark sends them."""

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from rest_framework import permissions, viewsets

from demo.models import Article
from demo.serializers import ArticleSerializer
from django_channels_router import AsyncSocketRouterConsumer
from drf_bridge import ModelSocketRouter

try:
    from djangochannelsrestframework import mixins as dcrf_mixins
    from djangochannelsrestframework.generics import GenericAsyncAPIConsumer
except ImportError:  # the peer is a benchmark-only dependency: its rows are left out
    GenericAsyncAPIConsumer = None


class HandWrittenEcho(AsyncJsonWebsocketConsumer):
    """What a user writes by hand for the same envelope."""

    async def receive_json(self, content, **kwargs):
        await self.send_json({"uuid": content["uuid"], "route": content["route"], "status": 200,
                              "headers": None, "payload": content.get("payload")})


class RouterEcho(AsyncSocketRouterConsumer):
    routes = [{"route": "echo"}]

    async def on_echo(self, payload, headers):
        return {"payload": payload}


class RouterArticles(ModelSocketRouter):
    queryset = Article.objects.all()
    serializer_class = ArticleSerializer
    permission_classes = [permissions.AllowAny]


PeerArticles = None
if GenericAsyncAPIConsumer is not None:
    class PeerArticles(dcrf_mixins.RetrieveModelMixin, dcrf_mixins.CreateModelMixin, dcrf_mixins.UpdateModelMixin,
                       dcrf_mixins.DeleteModelMixin, GenericAsyncAPIConsumer):
        queryset = Article.objects.all()
        serializer_class = ArticleSerializer
        permission_classes = [permissions.AllowAny]


class ArticleViewSet(viewsets.ModelViewSet):
    queryset = Article.objects.all()
    serializer_class = ArticleSerializer
    permission_classes = [permissions.AllowAny]
    authentication_classes = []


SUBJECTS = {"hand": HandWrittenEcho, "router": RouterEcho, "model": RouterArticles}
if PeerArticles is not None:
    SUBJECTS["peer"] = PeerArticles

CALLS = ("echo", "get", "create", "update", "delete")
WARM_UP = 50  # requests of each row sent before the clock starts
OK = (200, 201, 204)  # the statuses every reply must have
ROUTER = "router (AsyncSocketRouterConsumer / ModelSocketRouter)"
HAND = "hand-written AsyncJsonWebsocketConsumer"
PEER = "djangochannelsrestframework"
HTTP = "DRF ModelViewSet over HTTP"


def fresh_ids(count):
    """Ids of ``count`` new articles, for a row of deletes (each request deletes one)."""
    Article.objects.bulk_create(Article(title="doomed", body="x" * 200) for _ in range(count))
    return list(Article.objects.filter(title="doomed").order_by("-id").values_list("id", flat=True)[:count])


def socket_cases(pk, count, calls=CALLS):
    """``(call, subject, SUBJECTS key, messages)`` for the WebSocket rows of ``calls``: ``count``
    messages each, the same in every benchmark. Call it from sync code (deletes create articles)."""
    def router(call, i, target=pk):
        payload = {"echo": {"n": i}, "create": {"title": f"create{i}", "body": "x"},
                   "update": {"title": f"update{i}", "body": "x"}}
        return {"uuid": f"{call}{i}", "route": call, "headers": {} if call in ("echo", "create") else {"id": target},
                "payload": payload.get(call)}

    def peer(call, i, target=pk):
        action = {"get": "retrieve", "create": "create", "update": "update", "delete": "delete"}[call]
        message = {"action": action, "request_id": i}
        if call != "create":
            message["pk"] = target
        if call in ("create", "update"):
            message["data"] = {"title": f"{call}{i}", "body": "x"}
        return message

    rows = []
    if "echo" in calls:
        rows += [("echo", HAND, "hand", [router("echo", i) for i in range(count)]),
                 ("echo", ROUTER, "router", [router("echo", i) for i in range(count)])]
    for call in [call for call in CALLS[1:] if call in calls]:
        rows.append((call, ROUTER, "model", _messages(router, call, pk, count)))
        if "peer" in SUBJECTS:
            rows.append((call, PEER, "peer", _messages(peer, call, pk, count)))
    return rows


def http_cases(pk, count, calls=CALLS):
    """``(call, subject, requests)`` for DRF over HTTP: ``(method, path, JSON body)`` each."""
    body = {"create": {"title": "t", "body": "x"}, "update": {"title": "u", "body": "x"}}
    method = {"get": "get", "create": "post", "update": "put", "delete": "delete"}
    rows = []
    for call in [call for call in CALLS[1:] if call in calls]:
        targets = fresh_ids(count) if call == "delete" else [pk] * count
        path = "/articles/" if call == "create" else "/articles/{}/"
        rows.append((call, HTTP, [(method[call], path.format(target), body.get(call)) for target in targets]))
    return rows


def _messages(make, call, pk, count):
    if call == "delete":
        return [make(call, i, target) for i, target in enumerate(fresh_ids(count))]
    return [make(call, i) for i in range(count)]


def calls_argument(value):
    """``--calls get,create``: the calls to measure."""
    calls = tuple(value.split(","))
    unknown = set(calls) - set(CALLS)
    if unknown:
        raise ValueError(f"unknown calls {sorted(unknown)}; known: {', '.join(CALLS)}")
    return calls


def summary(rows):
    """Median figures per (call, subject) over the rounds, then the ratios the README reports."""
    from statistics import median

    samples = {}
    for call, subject, cpu, rate in rows:
        samples.setdefault((call, subject), []).append((cpu, rate))
    table = {key: (median(c for c, _ in values), median(r for _, r in values)) for key, values in samples.items()}
    lines = [f"{'call':7} {'subject':56} {'CPU us/req':>10} {'req/s':>8}"]
    lines += [f"{call:7} {subject:56} {cpu:10.0f} {rate:8.0f}" for (call, subject), (cpu, rate) in table.items()]
    lines.append("")
    if ("echo", HAND) in table:
        lines.append(f"router / hand-written, CPU per echo: {table['echo', ROUTER][0] / table['echo', HAND][0]:.2f}x")
    for other in [PEER] + sorted({subject for _, subject in table if subject.startswith(HTTP)}):
        for call in CALLS[1:]:
            if (call, other) in table and (call, ROUTER) in table:
                (cpu, rate), (their_cpu, their_rate) = table[call, ROUTER], table[call, other]
                lines.append(f"router / {other}, {call}: throughput {rate / their_rate:.2f}x,"
                             f" CPU per request {cpu / their_cpu:.2f}x")
    return "\n".join(lines)
