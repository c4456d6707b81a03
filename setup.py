"""Package layout only; all metadata lives in pyproject.toml.

rails/ and kernels/ live at the repository root but install as ``workbench.rails`` and
``workbench.kernels``: bare ``rails``/``kernels`` would collide with PyPI packages
(DESIGN §1). A test builds the wheel and checks they land there.
"""

from setuptools import find_packages, setup

ROOTS = {"workbench": "workbench", "workbench.rails": "rails", "workbench.kernels": "kernels"}


def _packages() -> list[str]:
    found = find_packages(include=["workbench", "workbench.*"])
    for installed, folder in ROOTS.items():
        if installed == "workbench":
            continue
        found += [installed + p[len(folder) :] for p in find_packages(include=[folder, folder + ".*"])]
    return sorted(set(found))


setup(packages=_packages(), package_dir=ROOTS)
