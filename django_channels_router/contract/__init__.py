"""The contract of a project's sockets, read from the code: the AsyncAPI document
(``asyncapi``), TypeScript types from it (``typescript``) and the docs page that serves both
(``views``, mounted by ``include("django_channels_router.urls")``).

Tooling: it imports the runtime (routers are found by their ``route_table`` and asked for their
``route_errors()``), never the reverse, so serving sockets loads none of it. The page's template
and static files stay in ``django_channels_router/templates`` and ``static``: Django's
app-directory finders look there, in the installed app's own directory, and this subpackage is
not an app.
"""
