"""The version matrix: every Django line the package metadata claims, each run twice.

* ``oldest``: on the line's oldest Python, with the oldest channels, channels-redis, jsonschema,
  drf-spectacular and DRF that ``pyproject.toml`` allows (DRF: the first release for the line);
* ``newest``: on the line's newest Python, with the newest release of everything.

So every Python, every Django line and every dependency floor is tested. ``nox -l`` lists the
sessions, ``nox`` runs them all, ``nox -s "tests(django='4.2', deps='oldest')"`` runs one.
Arguments after ``--`` go to pytest. Each session runs the README's test suite, but for the tests
marked ``independent_of_versions`` (the quickstart in its own virtualenv, the npm package, the docs
build: they do the same in every session) and ``documentation`` (the projects built from the
README, the tutorial and the how-to guides, whose examples are kept working on the releases the
README's test command installs) and ``chaos`` (tests/test_chaos.py: a minute of killed servers and
cut connections through both clients), which that command runs once.
"""

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True

# The floors of pyproject.toml's dependencies (keep both in step).
FLOORS = ["channels==4.2.2", "channels-redis==4.1.0", "jsonschema==4.18.0", "drf-spectacular==0.28.0"]

# Django line -> (its oldest and newest supported Python, the first DRF release that supports it).
DJANGO = {
    "4.2": ("3.11", "3.12", "3.15.1"),
    "5.0": ("3.11", "3.12", "3.15.1"),
    "5.1": ("3.11", "3.13", "3.15.2"),
    "5.2": ("3.11", "3.13", "3.16.0"),
    "6.0": ("3.12", "3.13", "3.16.1"),
    "6.1": ("3.12", "3.13", "3.18.0"),
}

MATRIX = [
    nox.param(python, line, deps, id=f"django={line!r}, deps={deps!r}")
    for line, (oldest_python, newest_python, first_drf) in DJANGO.items()
    for python, deps in ((oldest_python, "oldest"), (newest_python, "newest"))
]


@nox.session
@nox.parametrize(["python", "django", "deps"], MATRIX)
def tests(session: nox.Session, django: str, deps: str) -> None:
    pins = [f"django=={django}.*"]
    if deps == "oldest":
        pins += [*FLOORS, f"djangorestframework=={DJANGO[django][2]}"]
    session.install("-e", ".[test]", *pins)
    # Run once, by the README's test command: see the module's docstring.
    once = "not independent_of_versions and not documentation and not chaos"
    session.run("python", "-m", "pytest", "-m", once, *session.posargs)


@nox.session(python="3.11")
def package(session: nox.Session) -> None:
    """Build the sdist and the wheel, check them, and run tests from the unpacked sdist."""
    import glob
    import tarfile
    import zipfile

    tmp = session.create_tmp()
    session.install("build", "twine")
    session.run("python", "-m", "build", "--outdir", f"{tmp}/dist", silent=True)
    [sdist], [wheel] = glob.glob(f"{tmp}/dist/*.tar.gz"), glob.glob(f"{tmp}/dist/*.whl")
    session.run("twine", "check", "--strict", sdist, wheel)

    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("django_channels_router/py.typed", "drf_bridge/py.typed", "licenses/LICENSE",
                   "templates/django_channels_router/docs.html", "static/django_channels_router/docs.js",
                   "static/django_channels_router/router-socket.js",
                   "static/django_channels_router/router-socket.d.ts"):
        if not any(name.endswith(needed) for name in names):
            session.error(f"the wheel has no {needed}")
    if any(name.startswith(("tests/", "testproject/")) for name in names):
        session.error("the wheel carries the tests or the demo project")

    with tarfile.open(sdist) as archive:
        archive.extractall(tmp, filter="data")
        # The npm package's folder for its tests, without the copies `npm pack` makes (one source).
        members = {name.split("/", 1)[-1] for name in archive.getnames()}
    if "clients/js/package.json" not in members or members & {"clients/js/router-socket.js", "clients/js/LICENSE"}:
        session.error("the sdist lacks clients/js, or carries the npm package's copies of the client")
    unpacked = sdist.removeprefix(f"{tmp}/dist/").removesuffix(".tar.gz")
    session.chdir(f"{tmp}/{unpacked}")
    session.install(".[test]")
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only", silent=True)
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                "tests/test_routes.py", "tests/test_seed_examples.py", "tests/test_demo.py")
