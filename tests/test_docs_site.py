"""The documentation site builds with every warning as an error and every reference resolved."""

import subprocess
import sys

import pytest

from tests.conftest import ROOT

# Sphinx builds the same site whatever Django, Channels and DRF are installed.
pytestmark = pytest.mark.independent_of_versions


def test_docs_build_without_warnings(tmp_path):
    # What CI and Read the Docs run: -W turns warnings into errors, -n reports every reference
    # (to a page, a heading or a Python object) that does not resolve.
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html", "-d",
         str(tmp_path / "doctrees"), str(ROOT / "docs"), str(tmp_path / "html")],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    assert (tmp_path / "html" / "quickstart.html").exists()
