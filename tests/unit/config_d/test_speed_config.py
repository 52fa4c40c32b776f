"""Launch speed and placement (issue 13): the negotiation, claim, startd and starter knobs of the shipped snippets,
read by HTCondor's own configuration parser (htcondor2) from config.d, master and node together as on a
single-host cloud. Each test's docstring gives the reason, with the place in HTCondor 23.9.6's source that sets the
default; docs/DESIGN.txt, "Launch speed: the knobs and the floors", says the same. The negotiator's offer ranking
is evaluated with classad2 as the negotiator does it (Matchmaker::calculateRanks, then the lexicographic order in
Matchmaker::MatchListType::sort_compare). tests/integration/test_placement.py checks the placement on a real pool:
N instances launched at once of an image cached on one node all run there while it has room.
"""

import os
import re

import classad2
import pytest

from support import REPO

# HTCondor 23.9.6's NEGOTIATOR_PRE_JOB_RANK (src/condor_utils/param_info.in), for contrast.
HTCONDOR_PRE_JOB_RANK = "(10000000 * My.Rank) + (1000000 * (RemoteOwner =?= UNDEFINED)) - (100000 * Cpus) - Memory"


@pytest.fixture
def knobs(shipped_config):
    return shipped_config


def _bool(text):
    value = classad2.ExprTree(text).eval()
    assert isinstance(value, bool), text
    return value


# -- a submit reaches a negotiation cycle within about a second ------------------------------------------------
def test_the_schedd_passes_a_reschedule_on_at_once(knobs):
    """SCHEDD_MIN_INTERVAL = 0: the schedd sends the negotiator the reschedule of a submit from Scheduler::timeout,
    which runs at most every SCHEDD_MIN_INTERVAL s (default 5; SchedDInterval.setMinInterval, schedd.cpp)."""
    assert int(knobs["SCHEDD_MIN_INTERVAL"]) == 0


def test_a_requested_cycle_waits_two_seconds_at_most(knobs):
    """NEGOTIATOR_CYCLE_DELAY = 2: Matchmaker::negotiationTime (matchmaker.cpp) holds a requested cycle until
    NEGOTIATOR_CYCLE_DELAY s (default 20) after the last one ended, so that the startds can report what it gave
    them; a node sends its ad about 1 s after a claim (ResMgr::rip_update_needed, 1 s timer), so 2 s keep that
    safety and a cycle never re-offers a claim in use. NEGOTIATOR_MIN_INTERVAL = 0: its hold after the last cycle's
    start (default 5 s) would add more and protects nothing the delay does not."""
    assert int(knobs["NEGOTIATOR_CYCLE_DELAY"]) == 2
    assert int(knobs["NEGOTIATOR_MIN_INTERVAL"]) == 0


def test_a_periodic_cycle_stays_as_the_safety_net(knobs):
    """NEGOTIATOR_INTERVAL = 20 (HTCondor: 60): idle jobs that no submit announces (a refused claim, a node that
    comes back) wait at most one periodic cycle."""
    assert int(knobs["NEGOTIATOR_INTERVAL"]) == 20


# -- the cache-aware Rank is not outranked by HTCondor's packing preference ---------------------------------------
def _job_rank(knobs):
    """The Rank the CloudRank transform sets on every VM job."""
    transform = knobs["JOB_TRANSFORM_CloudRank"]
    [rank] = re.findall(r"^\s*SET\s+Rank\s+(.+)$", transform, re.M)
    return classad2.ExprTree(rank)


def _offer_key(knobs, machine, job, pre_job_rank=None):
    """What the negotiator sorts a job's offers by, best = largest: (pre-job rank, job Rank, post-job rank)."""
    pre = classad2.ExprTree(pre_job_rank or knobs["NEGOTIATOR_PRE_JOB_RANK"]).eval(machine, job)
    post = classad2.ExprTree(knobs["NEGOTIATOR_POST_JOB_RANK"]).eval(machine, job)
    return (pre, _job_rank(knobs).eval(job, machine), post)


def _machine(cpus, memory, cached="", **extra):
    ad = classad2.ClassAd({"Cpus": cpus, "Memory": memory, "Rank": 0.0, "CloudCachedImages": cached})
    for k, v in extra.items():
        ad[k] = v
    return ad


JOB = classad2.ClassAd({"CloudImage": "demo.qcow2", "CloudUserRank": 0})


def test_the_node_with_the_image_cached_wins_over_a_fuller_or_smaller_one(knobs):
    """NEGOTIATOR_PRE_JOB_RANK keeps only HTCondor's machine-Rank and unclaimed terms: the negotiator compares
    NEGOTIATOR_PRE_JOB_RANK before the job's Rank (Matchmaker::MatchListType::sort_compare), and HTCondor's default
    there (- 100000 * Cpus - Memory) puts a node with fewer free cores or less free memory first, so the cache
    Rank counted only between identical nodes."""
    cached = _machine(32, 64000, "other.qcow2,demo.qcow2")
    small = _machine(2, 1000)
    assert _offer_key(knobs, cached, JOB) > _offer_key(knobs, small, JOB)
    # with HTCondor's default the smaller node would win: the knob is what makes the cache count
    assert _offer_key(knobs, small, JOB, HTCONDOR_PRE_JOB_RANK) > _offer_key(knobs, cached, JOB,
                                                                               HTCONDOR_PRE_JOB_RANK)


def test_among_nodes_the_job_ranks_equally_the_fullest_fills_first(knobs):
    """NEGOTIATOR_POST_JOB_RANK takes HTCondor's packing terms after the job's Rank: among nodes that both have (or
    both lack) the image, the one with fewer free cores, then less free memory, is filled first (so an image's
    instances gather where it is cached); an offline node comes last."""
    for images in ("demo.qcow2", ""):
        fuller, emptier = _machine(4, 8000, images), _machine(8, 8000, images)
        assert _offer_key(knobs, fuller, JOB) > _offer_key(knobs, emptier, JOB)
        less_memory = _machine(8, 4000, images)
        assert _offer_key(knobs, less_memory, JOB) > _offer_key(knobs, emptier, JOB)
        offline = _machine(4, 8000, images, Offline=True)
        assert _offer_key(knobs, emptier, JOB) > _offer_key(knobs, offline, JOB)


# -- instances launched at once all get the node with their image, while it has room ------------------------------
def _on(value):
    """A boolean knob as HTCondor reads it (htcondor2.param gives bool for bool knobs, the text for string ones)."""
    return value if isinstance(value, bool) else _bool(value)


def test_one_cycle_may_match_a_node_once_per_instance(knobs):
    """CONSUMPTION_POLICY = True on the node's partitionable slot: after a match the negotiator takes the job's
    Cpus, Memory and Disk off that slot's ad (cp_deduct_assets, matchmaker.cpp:5238) and leaves it among the offers
    (matchmaker.cpp:4210), so the next instance in the same cycle may get the same node; without it the matched slot
    leaves the offers (matchmaker.cpp:4234), and N instances queued at once spread one per node whatever their Rank.
    Read when the slot is built (Resource.cpp:268)."""
    assert _on(knobs["CONSUMPTION_POLICY"]) is True


def test_every_request_ranks_the_nodes_afresh(knobs):
    """NEGOTIATOR_MATCHLIST_CACHING = False: with the cache (matchmaker.cpp:812, 4559) the next request of the same
    autocluster pops the head of a best-first list (4492-4504), and a node matched under a consumption policy is put
    back by MatchListType::insert_candidate, whose insertion test is inverted (matchmaker.cpp:5664: it moves the node
    down past every node it beats; sort_compare is true when its first argument is the better, 5903): on the real pool
    `queue 3` went to the cached node, then twice to the other. Without the cache every request scans the offers as
    the cycle's matches left them (matchmaker.cpp:4651-4677)."""
    assert _on(knobs["NEGOTIATOR_MATCHLIST_CACHING"]) is False


def test_the_schedd_starts_no_instance_on_leftovers(knobs):
    """CLAIM_PARTITIONABLE_LEFTOVERS = False: the schedd asks the startd for a claimed partitionable slot's leftovers
    (_condor_SEND_LEFTOVERS, dc_startd.cpp:129; with a consumption policy the startd sends them whenever asked,
    command.cpp:1089) and starts its owner's first idle job that fits there, without the negotiator and so without
    the job's Rank (schedd.cpp:8665-8722, FindRunnableJob, qmgmt.cpp:9488)."""
    assert _on(knobs["CLAIM_PARTITIONABLE_LEFTOVERS"]) is False


VM_JOBS = [  # by hand (condor_submit: RequestMemory = MY.JobVMMemory, RequestCpus 1) and through the API (profiles)
    classad2.ClassAd({"JobVMMemory": 256, "RequestMemory": 256, "RequestCpus": 1, "JobVM_VCPUS": 1, "RequestDisk": 1}),
    classad2.ClassAd({"JobVMMemory": 300, "RequestMemory": 300, "RequestCpus": 2, "JobVM_VCPUS": 2,
                      "RequestDisk": 5000}),
]


def test_an_instance_consumes_what_its_dynamic_slot_gets(knobs):
    """The consumption policy's CONSUMPTION_CPUS/MEMORY/DISK (HTCondor's defaults, not set in config.d) deduct from
    the node's slot what the startd gives the instance's dynamic slot (MODIFY_REQUEST_EXPR_REQUEST*), at least the
    VM's memory; SLOT_WEIGHT = Cpus makes a match cost its cores (cp_deduct_assets), not the whole node's weight.
    Cpus and Memory are what bounds a node on HTCondor 23.9.6, whose startd counts only the last VM against
    VM_MEMORY (Claim::spawnStarter returns TRUE, not the starter's pid: claim.cpp:1478; docs/DESIGN.txt)."""
    machine = _machine(8, 16000)
    for job in VM_JOBS:
        for asset in ("Cpus", "Memory", "Disk"):
            consumed = classad2.ExprTree(knobs["CONSUMPTION_" + asset.upper()]).eval(machine, job)
            given = classad2.ExprTree(knobs["MODIFY_REQUEST_EXPR_REQUEST" + asset.upper()]).eval(job)
            assert consumed == given, (asset, consumed, given)
        assert classad2.ExprTree(knobs["CONSUMPTION_MEMORY"]).eval(machine, job) >= job["JobVMMemory"]
    assert knobs["SLOT_WEIGHT"] == "Cpus"


# -- vm-gahp and the VM starter ----------------------------------------------------------------------------------
def _sent_to_vm_gahp(name):
    """vm-gahp's filter with VM_GAHP_SEND_ALL_CLASSAD = False (VMGahpServer::publishVMClassAd,
    vm_gahp_server.cpp, HTCondor 23.9.6): case-insensitive name prefixes."""
    prefixes = ("JobVM", "VMPARAM", "ClusterId", "ProcId", "User", "OrigIwd", "Args", "Arguments",
                "TransferIntermediate", "TransferInput")
    return any(name.lower().startswith(p.lower()) for p in prefixes)


def _attributes_the_xml_script_reads():
    with open(os.path.join(REPO, "condor_cloud", "node", "as_root", "xml_script.py")) as f:
        return set(re.findall(r"jobad\.get\(\s*ad\s*,\s*\"([A-Za-z_][A-Za-z0-9_]*)\"", f.read()))


def test_vm_gahp_gets_only_the_attributes_it_and_the_xml_script_read(knobs):
    """VM_GAHP_SEND_ALL_CLASSAD = False: the starter sleeps 1 s per 2 KB of job ad it writes to vm-gahp
    (VMGahpServer::publishVMClassAd); with False it writes only the attributes above, which hold all vm-gahp reads
    (JobVMType, JobVMMemory, JobVM_VCPUS, JobVMNetworking*, JobVM_MACADDR, JobVMCheckpoint, JobVMHardwareVT,
    VMPARAM_vm_Disk, VMPARAM_No_Output_VM, ClusterId/ProcId/User for the domain name, TransferInput*) and all our
    LIBVIRT_XML_SCRIPT reads from its stdin (it finds the instance by its working directory)."""
    assert _bool(knobs["VM_GAHP_SEND_ALL_CLASSAD"]) is False
    read = _attributes_the_xml_script_reads()
    assert {"VMPARAM_VM_NAME", "JobVMMemory", "JobVM_VCPUS", "JobVMVNCConsole"} <= read  # the scan works
    assert [name for name in sorted(read) if not _sent_to_vm_gahp(name)] == []
    assert not _sent_to_vm_gahp("CloudInstanceId") and not _sent_to_vm_gahp("Owner")  # the filter is a filter


def test_a_guests_power_off_is_polled_as_often_as_htcondor_allows(knobs):
    """VM_STATUS_INTERVAL = 30: the VM starter learns of a guest's power-off only by polling vm-gahp; VMProc
    clamps the interval to at least VM_MIN_STATUS_INTERVAL = 30 s (vm_proc.cpp, vm_proc.h; default 60)."""
    assert int(knobs["VM_STATUS_INTERVAL"]) == 30


def test_the_console_and_the_address_follow_the_starters_fixed_wait_at_once(knobs):
    """STARTER_INITIAL_UPDATE_INTERVAL = 0: condor_tail (the console) gets the starter's address from the startd,
    which learns it only from the starter's job updates (Starter.cpp:790); the first is sent
    STARTER_INITIAL_UPDATE_INTERVAL s (default 8) after the starter's fixed 30 s wait at the domain's start
    (JobInfoCommunicator::startUpdateTimer, job_info_communicator.cpp:929), and with it the update hook publishes the
    address. Seen on the sandbox pool: the console answered 9-10 s after that wait with the default."""
    assert int(knobs["STARTER_INITIAL_UPDATE_INTERVAL"]) == 0
    assert int(knobs["STARTER_INITIAL_UPDATE_INTERVAL"]) < int(knobs["STARTER_UPDATE_INTERVAL"])
