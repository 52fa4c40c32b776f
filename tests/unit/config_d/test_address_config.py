"""The shipped configuration gets an instance's address into condor_q in minutes (docs/CONTEXTUALIZATION.txt,
"How an address reaches condor_q"): the node runs the update hook with every starter update, and the submit
side's shadows write job ad changes to the schedd often enough (HTCondor's default is every 900 s)."""

import os
import re

from support import REPO



def settings(name):
    with open(os.path.join(REPO, "config.d", name)) as f:
        return dict(re.findall(r"^([A-Z_]+)\s*=\s*(.*?)\s*$", f.read(), re.M))


def test_node_runs_the_update_hook_every_minute():
    node = settings("30condor_cloud_node.config")
    assert node["CLOUD_HOOK_UPDATE_JOB_INFO"] == "$(CLOUD_HOOK_DIR)/update"
    assert node["STARTER_JOB_HOOK_KEYWORD"] == "CLOUD"
    assert 0 < int(node["STARTER_UPDATE_INTERVAL"]) <= 120


def test_shadows_push_chirped_attributes_to_the_schedd_within_minutes():
    master = settings("20condor_cloud_master.config")
    assert 0 < int(master["SHADOW_QUEUE_UPDATE_INTERVAL"]) <= 15
