"""Builds the Python package of the master RPM's build (condor-cloud.spec): condor_cloud with core/ (shared, into
python3-condor-cloud) and master/ (into condor-cloud). node/ is installed by condor-cloud-node.spec
(`make install-pylib-node`), so that each role's RPM ships its own modules. Config, hooks, libexec programs and
templates are installed by the Makefile (see docs/DESIGN.txt)."""

import os
import re

from setuptools import find_packages, setup


def spec_version():
    # One version source: Version: in condor-cloud.spec.
    with open("condor-cloud.spec") as f:
        return re.search(r"^Version:\s*(\S+)", f.read(), re.M).group(1)


def package_data(top="condor_cloud/master"):
    # Every non-Python file under the package tree (e.g. condor_cloud/api/templates/) belongs to the nearest
    # enclosing package, so the wheel (and so the RPM) carries it.
    data = {}
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        pkg = dirpath
        while not os.path.exists(os.path.join(pkg, "__init__.py")):
            pkg = os.path.dirname(pkg)
        for name in filenames:
            if not name.endswith((".py", ".pyc")):
                data.setdefault(pkg.replace(os.sep, "."), []).append(
                    os.path.relpath(os.path.join(dirpath, name), pkg))
    return data


setup(
    name="condor-cloud",
    version=spec_version(),
    description="A private IaaS cloud on HTCondor's VM universe",
    license="Apache-2.0",
    packages=find_packages(include=["condor_cloud", "condor_cloud.core", "condor_cloud.master",
                                    "condor_cloud.master.*"]),
    package_data=package_data(),
    python_requires=">=3.9",
    install_requires=["jinja2", "click"],
)
