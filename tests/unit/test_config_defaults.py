"""Each knob's default is defined once, in code (condor_cloud/core/config.py DEFAULTS for the node's knobs,
condor_cloud/master/config.py DEFAULTS for the API's and EC2's); the shipped snippets and docs/DESIGN.txt's
settings table show the same values, and this test fails when they drift."""

import os
import re

import pytest

from condor_cloud.core import config
from condor_cloud.master import config as api_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read(path):
    with open(os.path.join(REPO, path)) as f:
        return f.read()


def snippet_knobs(text, prefix):
    """NAME -> value of every `NAME = value` line of a config snippet whose name starts with prefix."""
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"^(%s\w+)[ \t]*=[ \t]*(.*?)[ \t]*$" % prefix, text,
                                                                re.M)}


def design_table():
    """NAME -> default of docs/DESIGN.txt's settings table (`  NAME   default   what`)."""
    text = read("docs/DESIGN.txt")
    table = text.split("Settings (HTCondor configuration knobs", 1)[1].split("\n\n", 1)[0]
    return {m.group(1): m.group(2) for m in re.finditer(r"^  (CLOUD_\w+)\s+(\S+)", table, re.M)}


@pytest.mark.parametrize("defaults, snippet", [
    (config.DEFAULTS, "config.d/30condor_cloud_node.config"),
    (api_config.DEFAULTS, "config.d/25condor_cloud_api.config"),
])
def test_each_snippet_shows_every_default_of_its_role(defaults, snippet):
    shown = snippet_knobs(read(snippet), "CLOUD_(?!HOOK_|CLEANUP_PERIOD)")
    assert shown == defaults


def test_design_table_shows_the_node_defaults():
    # plus CLOUD_CLEANUP_PERIOD, which only the snippet reads (the cleanup cron's period)
    period = snippet_knobs(read("config.d/30condor_cloud_node.config"), "CLOUD_")["CLOUD_CLEANUP_PERIOD"]
    assert design_table() == dict(config.DEFAULTS, CLOUD_CLEANUP_PERIOD=period)


def test_drift_is_caught():
    """The comparison itself: a changed value or a missing knob is a difference."""
    text = read("config.d/30condor_cloud_node.config").replace("CLOUD_CACHE_MAX_SIZE = 20G", "CLOUD_CACHE_MAX_SIZE = 30G")
    assert snippet_knobs(text, "CLOUD_(?!HOOK_|CLEANUP_PERIOD)")["CLOUD_CACHE_MAX_SIZE"] != config.DEFAULTS[
        "CLOUD_CACHE_MAX_SIZE"]
    assert "CLOUD_QEMU_IMG" not in snippet_knobs("CLOUD_NETWORK = user\n", "CLOUD_")
