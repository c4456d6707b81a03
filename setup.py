"""Package layout only; all metadata lives in pyproject.toml.

``rails/`` and ``kernels/`` at the repository root hold the rails engine and the Triton
kernels. They are not Python packages there (no ``__init__.py``), so nothing at the root can
shadow the PyPI distributions named ``rails`` and ``kernels``. Each is installed as part of
``workbench``: ``workbench/rails/`` and ``workbench/kernels/`` hold the package initialiser and a
link to every module of the root folder (docs/architecture.md, "Layout"). The build copies the
linked files, so the wheel holds plain files; a test keeps the links complete.
"""

from setuptools import find_packages, setup

setup(packages=find_packages(include=["workbench", "workbench.*"]))
