"""What an installed package promises: its version in one place, and a clear error without DRF."""

import subprocess
import sys
from importlib.metadata import version

import django_channels_router
import drf_bridge


def test_both_packages_report_the_installed_version():
    assert django_channels_router.__version__ == drf_bridge.__version__ == version("django-channels-router")


def test_drf_bridge_without_django_rest_framework_says_which_extra_to_install():
    # sys.modules[name] = None makes Python's import system refuse the module, as if not installed.
    code = "import sys; sys.modules['rest_framework'] = None; import drf_bridge"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert last == "ImportError: drf_bridge needs Django REST framework: pip install 'django-channels-router[drf]'"
