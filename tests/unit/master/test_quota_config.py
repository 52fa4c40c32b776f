"""The shipped quota configuration (config.d/22condor_cloud_quotas.config), read by HTCondor's own parser
(htcondor2) after the master and API snippets, as on a master. htcondor2 has no transform evaluator, so the
CloudQuota transform's EVALSET expression is evaluated by classad2 on job ads with MY bound to the job (as the
schedd evaluates it), and the submit requirements with MY = the schedd's ad and TARGET = the job. What the
negotiator does with the limits is emulated from HTCondor v23.9.6's source: ParseConcurrencyLimit
(NegotiationUtils.cpp) and Accountant::GetLimitMax."""

import os
import re

import classad2
import pytest

from condor_cloud.master import quotas

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SNIPPETS = ("20condor_cloud_master.config", "25condor_cloud_api.config", "22condor_cloud_quotas.config")
API = "condor-cloud-api"


@pytest.fixture
def master(tmp_path, monkeypatch):
    """htcondor2.param over the master's snippets; call it with config text read before / after 22...config."""
    import htcondor2

    config = tmp_path / "condor_config"
    monkeypatch.setenv("CONDOR_CONFIG", str(config))

    def load(before="", after="", host_file=False):
        text = "".join(open(os.path.join(REPO, "config.d", n)).read() + "\n" for n in SNIPPETS[:2])
        text += before + "\n" + open(os.path.join(REPO, "config.d", SNIPPETS[2])).read() + "\n" + after + "\n"
        # keep the overrides file of the host out of it unless a test names one
        if "CLOUD_QUOTA_FILE" not in before and not host_file:
            text = "CLOUD_QUOTA_FILE = %s\n" % (tmp_path / "no-quotas.config") + text
        config.write_text(text)
        htcondor2.reload_config()
        return htcondor2.param

    yield load
    config.write_text("")
    htcondor2.reload_config()


def transform_steps(param, name):
    """[(keyword, attr, expr)] of a native transform's lines, and its REQUIREMENTS expression."""
    steps, requirements = [], None
    for line in param["JOB_TRANSFORM_" + name].splitlines():
        words = line.split(None, 2)
        if not words:
            continue
        if words[0] == "REQUIREMENTS":
            requirements = line.split(None, 1)[1]
        elif words[0] in ("SET", "EVALSET"):
            steps.append(tuple(words))
        else:
            steps.append((line.strip(), None, None))
    return requirements, steps


def evaluate(expr, ad):
    """expr evaluated with MY bound to ad (a transform's or a job's own expression)."""
    return classad2.ExprTree(expr).eval(ad, classad2.ClassAd())


def submit(param, job):
    """The job ad after the schedd's transforms of 22...config (the quota ones), as condor_submit would leave it."""
    ad = classad2.ClassAd(dict(job))
    for attr, value in job.items():
        if isinstance(value, classad2.ExprTree):
            ad[attr] = value
    for name in ("CloudQuota", "CloudQuotaNames"):
        requirements, steps = transform_steps(param, name)
        if evaluate(requirements, ad) is not True:
            continue
        for keyword, attr, expr in steps:
            if keyword == "EVALSET":    # (a SET would keep the expression: the test would have to say so)
                ad[attr] = evaluate(expr, ad)
            elif keyword.startswith("if defined MY."):
                if keyword[len("if defined MY."):] not in ad:
                    break        # the only if-block holds the rest of the transform
            elif keyword != "endif":
                raise AssertionError("transform step the test does not know: %r" % (keyword,))
    return ad


def accepted(param, name, ad):
    value = classad2.ExprTree(param["SUBMIT_REQUIREMENT_" + name]).eval(classad2.ClassAd({"MyType": "Scheduler"}), ad)
    assert value in (True, False), "a submit requirement that is not a boolean refuses with no reason: %r" % (value,)
    return value


def vm_job(owner="alice", vcpus=2, memory=2048, **more):
    job = {"JobUniverse": 13, "JobVMType": "kvm", "Owner": owner, "JobVM_VCPUS": vcpus, "JobVMMemory": memory,
           "RequestCpus": vcpus, "RequestMemory": classad2.ExprTree("MY.JobVMMemory")}
    job.update(more)
    return job


def parse_concurrency_limit(limit):
    """(name, increment, valid) as HTCondor's ParseConcurrencyLimit: weight after ':', <= 0 -> 1; the name and
    the part after its first '.' must be attribute names."""
    name, _, weight = limit.partition(":")
    try:
        increment = float(weight) if weight else 1.0
    except ValueError:
        increment = 0.0
    increment = increment if increment > 0 else 1.0
    attr = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
    head, dot, tail = name.partition(".")
    valid = bool(attr.match(head)) and (not dot or bool(attr.match(tail)))
    return name.lower(), increment, valid


def limit_max(param, name):
    """Accountant::GetLimitMax: NAME_LIMIT, else CONCURRENCY_LIMIT_DEFAULT_<prefix before the last '.'>, else
    CONCURRENCY_LIMIT_DEFAULT (2308032)."""
    default = float(param.get("CONCURRENCY_LIMIT_DEFAULT", 2308032))
    if "." in name:
        default = float(param.get("CONCURRENCY_LIMIT_DEFAULT_" + name.rsplit(".", 1)[0], default))
    return float(param.get(name + "_LIMIT", default))


# --- Defaults and the negotiator's limits ----------------------------------------------------------------------

def test_quotas_are_unlimited_until_an_administrator_sets_them(master):
    param = master()
    assert quotas.defaults_from_params(param) == quotas.Quota(None, None, None)
    assert int(param["CLOUD_QUOTA_UNLIMITED"]) == quotas.UNLIMITED_VALUE
    for name in quotas.limit_names_for("alice").values():
        assert limit_max(param, name) == quotas.UNLIMITED_VALUE


def test_a_site_wide_concurrency_limit_default_does_not_apply_to_quotas(master):
    param = master(after="CONCURRENCY_LIMIT_DEFAULT = 1")
    assert limit_max(param, "cloud_inst.alice") == quotas.UNLIMITED_VALUE


def test_pool_wide_defaults_become_each_users_limits(master):
    param = master(after="CLOUD_QUOTA_INSTANCES = 2\nCLOUD_QUOTA_CPUS = 8\nCLOUD_QUOTA_MEMORY = 16384")
    assert quotas.defaults_from_params(param) == quotas.Quota(2, 8, 16384)
    names = quotas.limit_names_for("bob")
    assert [limit_max(param, names[f]) for f in quotas.FIELDS] == [2, 8, 16384]


def test_a_users_override_from_the_file_wins_over_the_default_and_touches_nobody_else(master, tmp_path):
    path = tmp_path / "quotas.config"
    quotas.save(str(path), quotas.set_user(quotas.QuotaFile({}, {}), "john.doe", instances=5, memory_mib=None))
    param = master(before="CLOUD_QUOTA_FILE = %s" % path, after="CLOUD_QUOTA_INSTANCES = 2\nCLOUD_QUOTA_MEMORY = 4096")
    mine, other = quotas.limit_names_for("john.doe"), quotas.limit_names_for("john_doe")
    assert limit_max(param, mine["instances"]) == 5
    assert limit_max(param, mine["memory_mib"]) == quotas.UNLIMITED_VALUE
    assert limit_max(param, other["instances"]) == 2 and limit_max(param, other["memory_mib"]) == 4096


def test_the_file_defaults_override_the_knobs_set_before_it(master, tmp_path):
    path = tmp_path / "quotas.config"
    quotas.save(str(path), quotas.QuotaFile({"instances": 3}, {}))
    param = master(before="CLOUD_QUOTA_FILE = %s\nCLOUD_QUOTA_INSTANCES = 9" % path)
    assert quotas.defaults_from_params(param).instances == 3


def test_the_overrides_file_is_where_the_tools_write_it_by_default(master):
    assert master(host_file=True)["CLOUD_QUOTA_FILE"] == quotas.DEFAULT_FILE


def test_claims_are_never_reused_across_different_limits(master):
    # also where a site's earlier file turned it off: a reused claim would start an instance the negotiator never saw
    assert str(master(before="CLAIM_RECYCLING_CONSIDER_LIMITS = False")["CLAIM_RECYCLING_CONSIDER_LIMITS"]).lower() \
        == "true"


# --- The transform --------------------------------------------------------------------------------------------

def test_the_transform_runs_after_the_others_on_every_vm_job(master):
    param = master()
    names = param["JOB_TRANSFORM_NAMES"].split()
    assert names[-2:] == ["CloudQuota", "CloudQuotaNames"] and "CloudLease" in names
    requirements, _ = transform_steps(param, "CloudQuota")
    assert evaluate(requirements, classad2.ClassAd(vm_job())) is True
    assert evaluate(requirements, classad2.ClassAd({"JobUniverse": 5})) is False


def test_a_by_hand_job_is_charged_to_its_owner_for_its_size(master):
    ad = submit(master(), vm_job("alice", vcpus=2, memory=2048))
    assert ad["ConcurrencyLimits"] == "cloud_inst.alice,cloud_cpu.alice:2,cloud_mem.alice:2048"
    assert quotas.size_of(ad) == (2, 2048)


def test_an_api_launch_is_charged_to_the_cloud_user_it_is_for(master):
    ad = submit(master(), vm_job(API, CloudOwner="john.doe-x", vcpus=1, memory=512))
    names = quotas.limit_names_for("john.doe-x")
    assert ad["ConcurrencyLimits"] == "%s,%s:1,%s:512" % (names["instances"], names["cpus"], names["memory_mib"])


def test_an_api_job_without_a_cloud_user_is_charged_to_the_api_account(master):
    for job in (vm_job(API), vm_job(API, CloudOwner="")):
        assert submit(master(), job)["ConcurrencyLimits"].startswith("cloud_inst.condor_hcloud_hapi,")


def test_a_cloud_owner_on_anybody_elses_job_does_not_move_the_charge(master):
    # (the schedd refuses such a job anyway: SUBMIT_REQUIREMENT CloudAttributes)
    assert submit(master(), vm_job("mallory", CloudOwner="alice"))["ConcurrencyLimits"].startswith(
        "cloud_inst.mallory,")


def test_the_larger_of_the_vm_and_the_slot_is_charged(master):
    ad = submit(master(), vm_job("alice", vcpus=1, memory=1024, RequestCpus=8, RequestMemory=4096))
    assert ad["ConcurrencyLimits"] == "cloud_inst.alice,cloud_cpu.alice:8,cloud_mem.alice:4096"
    ad = submit(master(), vm_job("alice", vcpus=4, memory=1024, RequestCpus=1))
    assert ad["ConcurrencyLimits"].endswith("cloud_cpu.alice:4,cloud_mem.alice:1024")


def test_a_vm_jobs_own_limits_are_replaced(master):
    ad = submit(master(), vm_job("mallory", ConcurrencyLimits="cloud_inst.alice:1000"))
    assert "alice" not in ad["ConcurrencyLimits"]


@pytest.mark.parametrize("owner", ["alice", "_svc", "john.doe", "mary-ann", "a_b", "a__b", "a-b.c_d", "x9"])
def test_the_config_encodes_user_names_as_the_code_does(master, owner):
    ad = submit(master(), vm_job(owner))
    assert ad["ConcurrencyLimits"].split(",")[0] == quotas.limit_names_for(owner)["instances"]


@pytest.mark.parametrize("owner", ["alice", "john.doe", "mary-ann", "a_b", "_x"])
def test_every_limit_is_one_the_negotiator_counts(master, owner):
    # an invalid name is ignored by the negotiator ("Ignoring invalid concurrency limit"): unlimited
    ad = submit(master(), vm_job(owner))
    assert accepted(master(), "CloudQuota", ad)
    for limit in ad["ConcurrencyLimits"].split(","):
        assert parse_concurrency_limit(limit)[2], limit


# --- Fail closed ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("owner", ["Bob", "1abc", "bob@example.com", "bob smith", ""])
def test_a_vm_job_that_cannot_be_charged_is_refused_with_a_reason(master, owner):
    param = master()
    ad = submit(param, vm_job(owner))
    assert not accepted(param, "CloudQuota", ad)
    reason = classad2.ExprTree(param["SUBMIT_REQUIREMENT_CloudQuota_REASON"]).eval(classad2.ClassAd(), ad)
    assert "quota" in reason and "owner name" in reason


def test_an_api_launch_for_a_hostile_cloud_user_is_refused(master):
    param = master()
    assert not accepted(param, "CloudQuota", submit(param, vm_job(API, CloudOwner="Alice")))
    assert not accepted(param, "CloudQuota", submit(param, vm_job(API, CloudOwner="a,cloud_inst.b")))


def test_a_vm_job_the_transform_did_not_charge_is_refused(master):
    param = master()
    assert "CloudQuota" in param["SUBMIT_REQUIREMENT_NAMES"].split()
    assert not accepted(param, "CloudQuota", classad2.ClassAd(vm_job()))
    assert not accepted(param, "CloudQuota", classad2.ClassAd(vm_job(ConcurrencyLimits="xsw")))
    assert not accepted(param, "CloudQuota", submit(param, vm_job(JobVMMemory="lots")))


def test_a_charged_vm_job_is_accepted(master):
    param = master()
    assert accepted(param, "CloudQuota", submit(param, vm_job()))


@pytest.mark.parametrize("limits", ["cloud_inst.alice", "CLOUD_MEM.alice:99999", "xsw, cloud_cpu.alice:64",
                                    "xsw,cloud_inst.alice_LIMIT"])
def test_other_jobs_may_not_spend_a_users_quota(master, limits):
    param = master()
    ad = submit(param, {"JobUniverse": 5, "Owner": "mallory", "ConcurrencyLimits": limits})
    assert not accepted(param, "CloudQuotaNames", ad)
    assert "Condor Cloud's quotas" in classad2.ExprTree(param["SUBMIT_REQUIREMENT_CloudQuotaNames_REASON"]).eval()


def test_a_limit_computed_from_the_matched_slot_is_fixed_at_submit(master):
    # concurrency_limits_expr could name a user's quota only once matched: its value at submit is all it keeps
    param = master()
    job = {"JobUniverse": 5, "Owner": "mallory",
           "ConcurrencyLimits": classad2.ExprTree('ifThenElse(TARGET.Cpus is undefined, "xsw", "cloud_inst.alice")')}
    ad = submit(param, job)
    assert accepted(param, "CloudQuotaNames", ad)
    assert ad.lookup("ConcurrencyLimits").eval(classad2.ClassAd(), classad2.ClassAd({"Cpus": 4})) == "xsw"


def test_a_limit_that_is_no_string_at_submit_is_refused_for_other_jobs(master):
    param = master()
    ad = submit(param, {"JobUniverse": 5, "Owner": "mallory", "ConcurrencyLimits": classad2.ExprTree("TARGET.Name")})
    assert not accepted(param, "CloudQuotaNames", ad)


@pytest.mark.parametrize("limits", [None, "xsw", "xsw:2,database", "mycloud_inst.x"])
def test_other_jobs_keep_their_own_limits(master, limits):
    param = master()
    job = {"JobUniverse": 5, "Owner": "bob"}
    if limits is not None:
        job["ConcurrencyLimits"] = limits
    ad = submit(param, job)
    assert accepted(param, "CloudQuotaNames", ad)
    assert ad.get("ConcurrencyLimits") == limits


def test_what_was_charged_cannot_be_edited_after_submit(master):
    protected = set(master()["PROTECTED_JOB_ATTRS"].split())
    assert {"ConcurrencyLimits", "JobVM_VCPUS", "JobVMMemory", "RequestCpus", "RequestMemory"} <= protected
    assert {"CloudOwner", "JobLeaseDuration"} <= protected   # the master's own are kept
