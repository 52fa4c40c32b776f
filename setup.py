"""Builds only the Python package and its entry points; config, hooks, libexec programs and templates are
installed by the Makefile (see docs/DESIGN.txt)."""

import re

from setuptools import setup


def spec_version():
    # One version source: Version: in condor-cloud.spec.
    with open("condor-cloud.spec") as f:
        return re.search(r"^Version:\s*(\S+)", f.read(), re.M).group(1)


setup(
    name="condor-cloud",
    version=spec_version(),
    description="A private IaaS cloud on HTCondor's VM universe",
    license="Apache-2.0",
    packages=["condor_cloud"],
    python_requires=">=3.9",
    install_requires=["jinja2"],
)
