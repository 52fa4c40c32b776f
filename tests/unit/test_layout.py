"""The package's layout by role (docs/DESIGN.txt "Layout"): condor_cloud/core is shared, condor_cloud/node runs on
execute nodes, condor_cloud/master on the master, and neither role imports the other, so each role's RPM carries
only its own modules (tests/unit/test_packaging.py checks the RPMs' file lists).

Read statically (ast) from every module and every executable, so a lazy import inside a function counts too."""

import ast
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# package -> the condor_cloud packages its modules may import
ALLOWED = {
    "condor_cloud.core": ("condor_cloud.core",),
    "condor_cloud.node": ("condor_cloud.core", "condor_cloud.node"),
    "condor_cloud.master": ("condor_cloud.core", "condor_cloud.master"),
}
# executable -> the role it belongs to (and so may import)
EXECUTABLES = {
    "hooks/prepare": "condor_cloud.node", "hooks/update": "condor_cloud.node", "hooks/exit": "condor_cloud.node",
    "hooks/cleanup": "condor_cloud.node", "libexec/libvirt-xml": "condor_cloud.node",
    "bin/condor-cloud": "condor_cloud.core", "bin/condor-cloud-api": "condor_cloud.master",
    "bin/condor-cloud-ec2": "condor_cloud.master",
}


def imported_modules(source, filename="<source>"):
    """Every module an import statement in source names (relative imports as '.name')."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            found += [base] if node.level else [base] + [base + "." + a.name for a in node.names]
    return found


def violations(source, allowed, filename="<source>"):
    """The imports of source that break the rule: relative imports, and condor_cloud packages not in allowed."""
    bad = []
    for name in imported_modules(source, filename):
        if name.startswith("."):
            bad.append(name + " (relative: use the absolute name)")
        elif (name.startswith("condor_cloud.") and name.split(".")[1] in ("core", "node", "master")
              and not any(name == a or name.startswith(a + ".") for a in allowed)):
            bad.append(name)
    return bad


def package_of(path):
    rel = os.path.relpath(path, REPO).replace(os.sep, ".")
    return ".".join(rel.split(".")[:2])


def modules():
    for dirpath, dirnames, filenames in os.walk(os.path.join(REPO, "condor_cloud")):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in filenames:
            if name.endswith(".py"):
                yield os.path.join(dirpath, name)


def test_every_module_is_in_a_role():
    top = sorted(os.path.relpath(p, REPO) for p in modules() if os.path.dirname(p) == os.path.join(REPO, "condor_cloud"))
    assert top == ["condor_cloud/__init__.py"], "put new modules in core/, node/ or master/, not at the top"


@pytest.mark.parametrize("path", sorted(os.path.relpath(p, REPO) for p in modules()
                                        if os.path.dirname(p) != os.path.join(REPO, "condor_cloud")))
def test_no_role_imports_the_other(path):
    with open(os.path.join(REPO, path)) as f:
        source = f.read()
    assert violations(source, ALLOWED[package_of(os.path.join(REPO, path))], path) == []


@pytest.mark.parametrize("path, role", sorted(EXECUTABLES.items()))
def test_executables_import_their_role_only(path, role):
    with open(os.path.join(REPO, path)) as f:
        source = f.read()
    assert violations(source, (role,), path) == []
    assert any(m.startswith(role + ".") for m in imported_modules(source, path)), "imports nothing of " + role


def test_the_rule_catches_what_it_forbids():
    """The checker itself: each kind of breach is reported (a lazy import in a function included)."""
    node = ALLOWED["condor_cloud.node"]
    assert violations("from condor_cloud.master.keys import KeyStore\n", node) == ["condor_cloud.master.keys",
                                                                                   "condor_cloud.master.keys.KeyStore"]
    assert violations("def f():\n    import condor_cloud.master.api\n", node) == ["condor_cloud.master.api"]
    assert violations("from condor_cloud import master\n", node) == ["condor_cloud.master"]
    assert violations("from .cache import ImageCache\n", node) == [".cache (relative: use the absolute name)"]
    assert violations("from condor_cloud.node import cache\n", ALLOWED["condor_cloud.core"]) == [
        "condor_cloud.node", "condor_cloud.node.cache"]
    assert violations("from condor_cloud.core import errors\nimport os\n", node) == []


CONTRACT_FIELDS = ("arguments:", "standard input:", "standard output:", "user:", "exit status:")


@pytest.mark.parametrize("path", sorted(EXECUTABLES))
def test_each_executable_states_its_contract_once_in_the_fixed_shape(path):
    """docs/DESIGN.txt points at these docstrings instead of repeating them."""
    with open(os.path.join(REPO, path)) as f:
        doc = ast.get_docstring(ast.parse(f.read()))
    starts = [line.split(":")[0] + ":" for line in doc.splitlines() if line and not line.startswith(" ")
              and line.split(":")[0] + ":" in CONTRACT_FIELDS]
    assert tuple(starts) == CONTRACT_FIELDS, path
    with open(os.path.join(REPO, "docs", "DESIGN.txt")) as f:
        design = f.read()
    assert "standard input:" not in design, "DESIGN.txt points at the executables' contracts, it does not copy them"
