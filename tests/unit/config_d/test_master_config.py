"""The master's schedd keeps Condor Cloud's attribute namespace to Condor Cloud (issue 11, item 1): the submit
requirement CloudAttributes refuses every Cloud*/ChirpCloud* attribute the code trusts or publishes from any account
but the API's, and PROTECTED_JOB_ATTRS stops condor_qedit of what the API trusts. The shipped snippets are read by
HTCondor's own configuration parser (htcondor2), and the requirement is evaluated by classad2 against job ads,
with the schedd's ad as MY and the job as TARGET, as the schedd does. The real schedd refuses such jobs in
tests/integration/test_isolation.py."""

import os
import re

import classad2
import pytest

from support import REPO

# Attributes of the machine ad (the cleanup publishes them), and the ones the CloudRank transform overwrites.
NOT_JOB_INPUTS = {"CloudCachedImages", "CloudCacheBytes", "CloudInstances", "CloudImage", "CloudUserRank"}


@pytest.fixture
def master(shipped_config):
    return shipped_config


def _eval(req, my, target):
    """The requirement's value for a job (TARGET) as the schedd evaluates it; MY (the schedd ad) is not used."""
    text = str(req)
    assert "MY." not in text  # MY is the schedd's ad in a submit requirement, never the job
    ad = classad2.ClassAd(dict(target))
    ad["CloudRequirement"] = classad2.ExprTree(text.replace("TARGET.", "MY."))
    return ad.eval("CloudRequirement") is True


def job_attributes_in_the_code():
    """Every Cloud*/ChirpCloud* attribute name the package reads or writes."""
    names = set()
    for directory, _, files in os.walk(os.path.join(REPO, "condor_cloud")):
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(directory, name)) as f:
                    names.update(re.findall(r"[\"'+]((?:Chirp)?Cloud[A-Z][A-Za-z]+)\b", f.read()))
    return names - NOT_JOB_INPUTS


def test_the_requirement_is_registered_with_a_reason_a_person_understands(master):
    assert "CloudAttributes" in master["SUBMIT_REQUIREMENT_NAMES"].split()
    reason = classad2.ExprTree(master["SUBMIT_REQUIREMENT_CloudAttributes_REASON"]).eval()
    assert "remove the +Cloud" in reason and "docs/SUBMIT.txt" in reason


def test_a_plain_by_hand_job_is_accepted(master):
    assert _eval(classad2.ExprTree(master["SUBMIT_REQUIREMENT_CloudAttributes"]), None,
                 classad2.ClassAd({"Owner": "bob", "Cmd": "x", "CloudImage": "demo.qcow2", "CloudUserRank": 0}))


@pytest.mark.parametrize("attr", sorted(job_attributes_in_the_code()))
def test_every_attribute_the_code_trusts_is_refused_from_users_and_allowed_to_the_api(master, attr):
    req = classad2.ExprTree(master["SUBMIT_REQUIREMENT_CloudAttributes"])
    assert not _eval(req, None, classad2.ClassAd({"Owner": "bob", attr: "12.0-0a1b2c3d"}))
    assert _eval(req, None, classad2.ClassAd({"Owner": master["CLOUD_API_ACCOUNT"], attr: "x"}))


def test_the_code_still_uses_the_attributes_the_test_knows():
    # guards the scan above: if it found nothing, every parametrized case would vanish silently
    assert {"CloudOwner", "CloudInstanceId", "ChirpCloudAddresses", "ChirpCloudVNC"} <= job_attributes_in_the_code()


def test_what_the_api_trusts_cannot_be_edited_after_submit(master):
    protected = set(master["PROTECTED_JOB_ATTRS"].split())
    assert {"CloudOwner", "CloudName", "CloudProfile", "CloudKeyName"} <= protected
    # what the nodes publish through the shadow (as the job's owner) must stay writable by it
    assert not protected & {"CloudInstanceId", "CloudInstanceDir", "ChirpCloudAddress", "ChirpCloudAddresses",
                            "ChirpCloudVNC"}


def test_a_user_chosen_mac_is_refused_at_submit(master):
    assert "CloudMac" in master["SUBMIT_REQUIREMENT_NAMES"].split()
    req = classad2.ExprTree(master["SUBMIT_REQUIREMENT_CloudMac"])
    assert not _eval(req, None, classad2.ClassAd({"Owner": "bob", "JobVM_MACADDR": "52:54:00:12:34:56"}))
    assert _eval(req, None, classad2.ClassAd({"Owner": "bob"}))
    assert _eval(req, None, classad2.ClassAd({"Owner": "bob", "JobVM_MACADDR": ""}))
    assert "vm_macaddr is not supported" in classad2.ExprTree(master["SUBMIT_REQUIREMENT_CloudMac_REASON"]).eval()


def test_an_account_named_like_the_api_in_another_case_is_not_the_api(master):
    """ClassAd `==` compares strings without case: the API's exemption must be exact (`=?=`)."""
    req = classad2.ExprTree(master["SUBMIT_REQUIREMENT_CloudAttributes"])
    assert not _eval(req, None, classad2.ClassAd({"Owner": master["CLOUD_API_ACCOUNT"].upper(), "CloudOwner": "x"}))
