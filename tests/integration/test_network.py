"""Instance addresses on the real pool (issue 6, "networking with known addresses"): a guest on the node's libvirt
network `default` gets an address from libvirt's dnsmasq, the node's update hook finds it in the network's DHCP
leases and publishes it with condor_chirp, and `condor_q` shows it; a guest on a plain bridge (a second node with
CLOUD_NETWORK = bridge:br0 and a DHCP server that is not libvirt's) is found in the node's neighbour table.

A sandbox of its own ("net", CLOUD_NETWORK = network:default): the libvirt network (bridge virbr0,
192.168.122.0/24, dnsmasq) exists only inside that sandbox's network namespace, which has no uplink, and dies
with it (see Sandbox.start_network for why it is an 'open' network rather than NAT or isolated).  The guest is
tests/images/build-image's `dhcp` variant: it asks for a lease, prints CONDOR-CLOUD-GUEST-IP <address> on its
console and talks to nothing else.
"""

import base64
import hashlib
import json
import os
import re
import subprocess

import pytest

from helpers import by_hand, console, http, job_attr, start_api, stop_api
from host import alive, pids_in_root
from sandbox import Sandbox
from wait import wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
GUEST_IP = re.compile(r"CONDOR-CLOUD-GUEST-IP (\d+\.\d+\.\d+\.\d+)")
NAME = "net"


def host_links():
    return sorted(line.split(":")[1].strip().split("@")[0]
                  for line in subprocess.run(["ip", "-o", "link", "show"], stdout=subprocess.PIPE,
                                             universal_newlines=True, check=True).stdout.splitlines())


def host_ip_forward():
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        return f.read().strip()


@pytest.fixture(scope="module")
def net_pool():
    if os.geteuid() != 0:
        pytest.skip("the integration sandbox needs root (mounts, chroot, network namespace)")
    image = subprocess.run([os.path.join(REPO, "tests", "images", "build-image"), "dhcp"], stdout=subprocess.PIPE,
                           check=True, universal_newlines=True).stdout.strip()
    links_before, forward_before = host_links(), host_ip_forward()
    # STARTER_UPDATE_INTERVAL is 5 s in every sandbox; SHADOW_QUEUE_UPDATE_INTERVAL is the shipped 15 s
    # (config.d/20condor_cloud_master.config), so this also proves that setting.
    sb = Sandbox(NAME, extra_config="CLOUD_NETWORK = network:default\n")
    try:
        sb.up()
        sb.network = sb.start_network("default")
        sb.put_image("dhcp.qcow2", image)
        sb.host_before = (links_before, forward_before)
        yield sb
    finally:
        sb.stop(keep_logs=os.environ.get("CLOUD_SANDBOX_KEEP_LOGS"))


def test_network_lives_only_in_the_sandbox_namespace(net_pool):
    sb = net_pool
    assert "virbr0" in sb.run(["ip", "-o", "link", "show"]).stdout
    assert "192.168.122.1/24" in sb.run(["ip", "-o", "addr", "show", "dev", "virbr0"]).stdout
    links_before, forward_before = sb.host_before
    assert host_links() == links_before and "virbr0" not in host_links()
    assert host_ip_forward() == forward_before
    # The netns forwards nothing and libvirt made no NAT: a guest can reach only the bridge's own address.
    assert sb.run(["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "0"
    ruleset = sb.run(["nft", "list", "ruleset"]).stdout
    assert "masquerade" not in ruleset and "snat" not in ruleset.replace("srcnat", "")
    assert [line for line in sb.run(["ip", "route"]).stdout.splitlines() if line.startswith("default")] == []
    pid = sb.network["dnsmasq_pid"]
    assert pid in pids_in_root(sb.root)
    assert os.stat("/proc/%d/ns/net" % pid).st_ino == os.stat("/run/netns/" + sb.netns).st_ino


def assert_clean_traffic(sb, live_xml, ip):
    """The running domain's NIC carries libvirt's clean-traffic filter, libvirt's nwfilter driver has a binding for
    its tap device, and the filter learned the guest's DHCP address: the guest may send from that address only."""
    assert "<filterref filter='clean-traffic'>" in live_xml, live_xml
    assert "<parameter name='CTRL_IP_LEARNING' value='dhcp'/>" in live_xml
    tap = re.search(r"<target dev='([^']+)'/>\s*<model type='virtio'/>", live_xml).group(1)
    bindings = sb.virsh("nwfilter-binding-list")
    assert re.search(r"^\s*%s\s+clean-traffic\s*$" % re.escape(tap), bindings, re.M), bindings
    wait_for("the filter to learn %s on %s" % (ip, tap), lambda: "ip saddr %s " % ip in sb.run(
        ["nft", "list", "table", "bridge", "nat"]).stdout, 60)


def test_published_address_is_the_dhcp_lease(net_pool):
    sb = net_pool
    cluster = sb.submit(by_hand("dhcp.qcow2"))
    jid = "%d.0" % cluster
    ip = wait_for("the guest's DHCP address on its console", lambda: (GUEST_IP.findall(console(sb, cluster)) or
                                                                       [None])[-1], 300,
                                                                       explain=lambda: sb.diagnose(cluster))
    # The MAC is made from the job id (02, proc, cluster: condor_cloud/node/macs.py) and the domain XML uses it.
    mac = "02:00:" + ":".join("%02x" % b for b in cluster.to_bytes(4, "big"))
    [domain] = [n for n in sb.virsh("list", "--name").split() if n.endswith("_" + jid)]
    xml = sb.virsh("dumpxml", domain)
    assert "<mac address='%s'/>" % mac in xml
    assert "<source network='default'" in xml
    assert_clean_traffic(sb, xml, ip)
    # libvirt's lease for that MAC is the address the guest configured
    leases = [lease for lease in sb.network_leases("default") if lease["mac"] == mac]
    assert [lease["ip"] for lease in leases] == [ip]
    # ... and the update hook published it into the job ad (starter -> shadow -> schedd)
    published = wait_for("ChirpCloudAddress in condor_q", lambda: (lambda out: out if out != "undefined" else None)(
        sb.run(["condor_q", jid, "-af", "ChirpCloudAddress"]).stdout.strip()), 180,
        explain=lambda: sb.diagnose(cluster))
    assert published == ip
    assert sb.run(["condor_q", jid, "-af", "ChirpCloudAddresses"]).stdout.strip() == ip
    print("\n%s: guest %s, lease %s -> %s, condor_q ChirpCloudAddress %s" % (jid, ip, mac, leases[0]["ip"],
                                                                              published))
    sb.run(["condor_rm", jid], user="alice")
    sb.wait_job(cluster, ("removed",), timeout=120)


def test_api_launch_with_user_data_and_key_shows_the_address(net_pool):
    """The issue's "done when", through the API: a user adds an SSH key, launches with user data and that key; the
    guest reads both from its seed, gets an address, and the API's public_addresses and condor_q show it."""
    sb = net_pool
    start_api(sb)
    try:
        blob = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + hashlib.sha256(b"alice's laptop").digest()
        key = "ssh-ed25519 %s alice@laptop" % base64.b64encode(blob).decode()
        status, _, body = http(sb, "POST", "/api/keys", "alice", data={"name": "laptop", "public_key": key})
        assert status == 201, body
        images = json.loads(http(sb, "GET", "/api/images", "alice")[2])["images"]
        [image] = [i["id"] for i in images if i["name"] == "dhcp.qcow2"]
        user_data = "#cloud-config\nruncmd:\n - echo launched through the API\n"
        status, _, body = http(sb, "POST", "/api/instances", "alice", data={
            "image_id": image, "hwp_id": "small", "name": "api-web", "keyname": "laptop",
            "user_data": base64.b64encode(user_data.encode()).decode()})
        assert status == 201, body
        inst = json.loads(body)["instance"]
        cluster = int(inst["id"].split("_")[-2].split(".")[0])
        ip = wait_for("the guest's DHCP address on its console", lambda: (GUEST_IP.findall(console(sb, cluster)) or
                                                                           [None])[-1], 300,
                                                                           explain=lambda: sb.diagnose(cluster))
        text = console(sb, cluster)
        seen_user_data = text.split("CONDOR-CLOUD-SEED-USER-DATA-BEGIN\n", 1)[1].split(
            "CONDOR-CLOUD-SEED-USER-DATA-END", 1)[0]
        assert seen_user_data.strip() == user_data.strip()
        meta = text.split("CONDOR-CLOUD-SEED-META-DATA-BEGIN", 1)[1].split("CONDOR-CLOUD-SEED-META-DATA-END", 1)[0]
        assert '"%s"' % key in meta and 'local-hostname: "api-web"' in meta
        shown = wait_for("the address in the API's public_addresses", lambda: json.loads(http(
            sb, "GET", "/api/instances/" + inst["id"], "alice")[2])["instance"]["public_addresses"], 180,
            explain=lambda: sb.diagnose(cluster))
        assert shown == [{"address": ip, "type": "ipv4"}]
        assert job_attr(sb, "%d.0" % cluster, "ChirpCloudAddress") == ip
        print("\napi-web (%d.0): user data and key seen by the guest; address %s in the API and condor_q" % (cluster,
                                                                                                           ip))
        assert http(sb, "DELETE", "/api/instances/" + inst["id"], "alice")[0] == 204
        sb.wait_job(cluster, ("removed",), timeout=120)
    finally:
        stop_api(sb)


def test_bridged_instance_address_comes_from_the_neighbour_table(net_pool):
    """CLOUD_NETWORK = bridge:br0 (the install guide's default) on a real Linux bridge: a second node, a DHCP
    server of the site's (dnsmasq, not libvirt's), and the node learns the guest's address only by talking to it
    (its neighbour table), which is what the update hook reads."""
    sb = net_pool
    sb.bridge = sb.start_bridge("br0", "10.77.0")
    sb.add_node("brnode", extra_env={"_CONDOR_CLOUD_NETWORK": "bridge:br0"})
    cluster = sb.submit(by_hand("dhcp.qcow2", extra=['requirements = regexp("@brnode@", Name)']))
    jid = "%d.0" % cluster
    ip = wait_for("the guest's DHCP address on its console", lambda: (GUEST_IP.findall(console(sb, cluster)) or
                                                                       [None])[-1], 300,
                                                                       explain=lambda: sb.diagnose(cluster))
    assert ip.startswith("10.77.0.")
    assert "@brnode@" in sb.run(["condor_q", jid, "-af", "RemoteHost"]).stdout
    [domain] = [n for n in sb.virsh("list", "--name").split() if n.endswith("_" + jid)]
    xml = sb.virsh("dumpxml", domain)
    assert "<interface type='bridge'>" in xml and "<source bridge='br0'/>" in xml
    mac = re.search(r"<mac address='([0-9a-f:]+)'/>", xml).group(1)
    assert mac == "02:00:" + ":".join("%02x" % b for b in cluster.to_bytes(4, "big"))
    assert_clean_traffic(sb, xml, ip)
    neighbours = sb.run(["ip", "neigh", "show", "dev", "br0"]).stdout
    assert re.search(r"^%s lladdr %s " % (re.escape(ip), mac), neighbours, re.M), neighbours
    published = wait_for("ChirpCloudAddress in condor_q", lambda: (lambda out: out if out != "undefined" else None)(
        sb.run(["condor_q", jid, "-af", "ChirpCloudAddress"]).stdout.strip()), 180,
        explain=lambda: sb.diagnose(cluster))
    assert published == ip
    assert "br0" not in host_links()
    print("\n%s on br0: guest %s, neighbour %s -> condor_q ChirpCloudAddress %s" % (jid, ip, mac, published))
    sb.run(["condor_rm", jid], user="alice")
    sb.wait_job(cluster, ("removed",), timeout=120)


def test_stop_removes_dnsmasq_bridge_and_namespace(net_pool):
    sb = net_pool
    dnsmasq = [p for p in pids_in_root(sb.root) if open("/proc/%d/comm" % p).read().strip() == "dnsmasq"]
    assert sb.network["dnsmasq_pid"] in dnsmasq
    if getattr(sb, "bridge", None):
        assert sb.bridge["dnsmasq_pid"] in dnsmasq
    sb.stop()
    assert [p for p in dnsmasq if alive(p)] == []
    assert not os.path.exists("/run/netns/" + sb.netns)
    assert "virbr0" not in host_links() and "br0" not in host_links()
    assert not os.path.exists(sb.rundir)
