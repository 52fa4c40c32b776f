"""`condor-cloud`: the administrator's command line, on a master, a node or both. Each role's package adds its
commands to main_group (condor_cloud/master/cli.py: image, instance, user, api-cert; condor_cloud/node/cli.py:
node); main() loads whichever roles are installed here, so a node-only host has `condor-cloud node ...`.

Exit status: 0 success; 1 an error (message on standard error); 2 bad usage.
"""

import contextlib
import importlib
import json
import sys

import click

from condor_cloud.core.errors import CloudError

ROLE_COMMANDS = ("condor_cloud.master.cli", "condor_cloud.node.cli")


def fail(message):
    raise click.ClickException(message)


@contextlib.contextmanager
def cloud_errors():
    try:
        yield
    except CloudError as exc:
        fail(str(exc))


def print_json(value):
    click.echo(json.dumps(value, indent=2, sort_keys=True))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main_group():
    """Condor Cloud: a private IaaS cloud on HTCondor's VM universe."""


def load_roles():
    """Import the command modules of the roles installed on this host (each registers its groups)."""
    for name in ROLE_COMMANDS:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if not name.startswith((exc.name or "") + "."):   # the role is not installed (not a missing dependency)
                raise


def main(argv=None):
    load_roles()
    try:
        main_group.main(args=argv, prog_name="condor-cloud", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
