"""Every action through a real boto3 client (botocore's serializer, signer, parser, waiters and paginators), on the
fake schedd: what is submitted, what each user sees, the errors clients act on, DryRun, and isolation."""

import base64
import hashlib

import pytest

from condor_cloud.master.ec2 import model

from support import ED25519

from .conftest import call, error_code

ClientError = pytest.importorskip("botocore.exceptions").ClientError


def code_of(exc_info):
    return exc_info.value.response["Error"]["Code"]


def status_of(exc_info):
    return exc_info.value.response["ResponseMetadata"]["HTTPStatusCode"]


def ami(client, name="demo.qcow2"):
    (image,) = client.describe_images(Filters=[{"Name": "name", "Values": [name]}])["Images"]
    return image["ImageId"]


def launch(client, **kw):
    kw.setdefault("ImageId", ami(client))
    kw.setdefault("MinCount", 1)
    kw.setdefault("MaxCount", 1)
    kw.setdefault("InstanceType", "small")
    return client.run_instances(**kw)


def one(client, instance_id):
    (res,) = client.describe_instances(InstanceIds=[instance_id])["Reservations"]
    (inst,) = res["Instances"]
    return inst


# -- RunInstances ------------------------------------------------------------------------------------------------
def test_run_instances_submits_the_same_job_as_the_deltacloud_api(env, ec2):
    c = ec2()
    env.keys.add("alice", "laptop", ED25519)
    r = launch(c, InstanceType="medium", UserData="#cloud-config\nruncmd: [true]\n", KeyName="laptop",
               TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web1"},
                                                                       {"Key": "env", "Value": "test"}]}])
    (inst,) = r["Instances"]
    assert r["OwnerId"] == "alice" and r["ReservationId"].startswith("r-")
    assert inst["State"] == {"Code": 0, "Name": "pending"} and model.INSTANCE_ID_RE.fullmatch(inst["InstanceId"])
    assert inst["InstanceType"] == "medium" and inst["KeyName"] == "laptop" and inst["ImageId"] == ami(c)
    assert {t["Key"]: t["Value"] for t in inst["Tags"]} == {"Name": "web1", "env": "test"}
    (sub,) = env.schedd.submitted
    assert sub["vm_memory"] == "1024" and sub["vm_vcpus"] == "2" and sub["vm_disk"] == "demo.qcow2:vda:w"
    assert sub["executable"] == "web1" and sub["MY.CloudOwner"] == '"alice"' and sub["MY.CloudName"] == '"web1"'
    assert sub["MY.CloudTags"] == '{"Name","web1","env","test"}'
    assert sub["MY.CloudReservation"] == '"%s"' % r["ReservationId"]
    # user data and key are spooled input files, never attributes (as with the Deltacloud API)
    (spooled,) = env.schedd.spooled
    assert spooled["files"]["user-data"] == b"#cloud-config\nruncmd: [true]\n"
    assert spooled["files"]["ssh-authorized-keys"] == (ED25519 + "\n").encode()
    assert not any("cloud-config" in str(v) for v in sub.values())


def test_instances_launched_elsewhere_show_their_name_as_a_name_tag(env, ec2):
    from condor_cloud.master.config import parse_profiles

    env.jobs.submit("alice", "demo.qcow2", parse_profiles("small:512:1")[0], "from-deltacloud")
    (res,) = ec2().describe_instances()["Reservations"]
    assert res["Instances"][0]["Tags"] == [{"Key": "Name", "Value": "from-deltacloud"}]


def test_a_name_outside_the_instance_name_alphabet_stays_a_tag(env, ec2):
    r = launch(ec2(), TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web one"}]}])
    assert env.schedd.submitted[0]["executable"] == r["ReservationId"]
    assert r["Instances"][0]["Tags"] == [{"Key": "Name", "Value": "web one"}]


@pytest.mark.parametrize("kw, code", [
    ({"ImageId": "ami-00000000000000000"}, "InvalidAMIID.NotFound"),
    ({"ImageId": "demo.qcow2"}, "InvalidAMIID.Malformed"),
    ({"InstanceType": "t2.micro"}, "InvalidParameterValue"),
    ({"KeyName": "nokey"}, "InvalidKeyPair.NotFound"),
    ({"UserData": "\0binary"}, "InvalidParameterValue"),
    ({"MinCount": 2, "MaxCount": 1}, "InvalidParameterValue"),
    ({"MinCount": 4, "MaxCount": 4}, "InstanceLimitExceeded"),
    ({"SecurityGroupIds": ["sg-1"]}, "Unsupported"),
    ({"DisableApiTermination": True}, "Unsupported"),
    ({"InstanceInitiatedShutdownBehavior": "stop"}, "Unsupported"),
    ({"SubnetId": "subnet-00000000000000000"}, "InvalidSubnetID.NotFound"),
    ({"Placement": {"AvailabilityZone": "us-east-1a"}}, "InvalidParameterValue"),
    ({"BlockDeviceMappings": [{"DeviceName": "/dev/sdb", "Ebs": {"VolumeSize": 1}}]}, "UnknownParameter"),
    ({"TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "a", "Value": 'x"; Owner="bob'}]}]},
     "InvalidParameterValue"),
    ({"TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "aws:x", "Value": "1"}]}]},
     "InvalidParameterValue"),
    ({"TagSpecifications": [{"ResourceType": "image", "Tags": [{"Key": "a", "Value": "1"}]}]},
     "InvalidParameterValue"),
    ({"ClientToken": "$(x)"}, "InvalidParameterValue"),
    ({"NetworkInterfaces": [{"DeviceIndex": 0}, {"DeviceIndex": 1}]}, "Unsupported"),
    ({"NetworkInterfaces": [{"DeviceIndex": 1}]}, "Unsupported"),
    ({"NetworkInterfaces": [{"DeviceIndex": 0, "NetworkInterfaceId": "eni-1"}]}, "Unsupported"),
])
def test_run_instances_refusals_launch_nothing(env, ec2, kw, code):
    with pytest.raises(ClientError) as exc:
        launch(ec2(), **kw)
    assert code_of(exc) == code and status_of(exc) == 400
    assert env.schedd.submitted == []


def test_missing_counts(env):
    status, _, body = call(env, "RunInstances", ImageId="ami-0", MaxCount="1")
    assert error_code(body)[0] in ("MissingParameter", "InvalidAMIID.Malformed")
    status, _, body = call(env, "RunInstances", ImageId=model.image_ec2_id("demo.qcow2"), MaxCount="1")
    assert error_code(body)[0] == "MissingParameter"


def test_dry_run_launches_nothing(env, ec2):
    with pytest.raises(ClientError) as exc:
        launch(ec2(), DryRun=True)
    assert code_of(exc) == "DryRunOperation" and status_of(exc) == 412
    assert env.schedd.submitted == []
    with pytest.raises(ClientError) as exc:     # a dry run still checks the request
        launch(ec2(), DryRun=True, InstanceType="huge")
    assert code_of(exc) == "InvalidParameterValue"


def test_dry_run_of_every_changing_action(env, ec2):
    c = ec2()
    iid = launch(c)["Instances"][0]["InstanceId"]
    env.schedd.submitted.clear()
    for fn, kw in ((c.terminate_instances, {"InstanceIds": [iid]}),
                   (c.create_tags, {"Resources": [iid], "Tags": [{"Key": "a", "Value": "b"}]}),
                   (c.import_key_pair, {"KeyName": "k", "PublicKeyMaterial": ED25519.encode()}),
                   (c.create_key_pair, {"KeyName": "k2"}), (c.delete_key_pair, {"KeyName": "k"}),
                   (c.describe_instances, {})):
        with pytest.raises(ClientError) as exc:
            fn(DryRun=True, **kw)
        assert code_of(exc) == "DryRunOperation", fn
    assert env.schedd.acts == [] and env.schedd.edits == [] and env.keys.list("alice") == []


def test_min_max_count_and_one_reservation(env, ec2):
    r = launch(ec2(), MinCount=2, MaxCount=5)         # CLOUD_EC2_MAX_COUNT is 3 here
    assert len(r["Instances"]) == 3 and len(env.schedd.submitted) == 3
    (res,) = ec2().describe_instances()["Reservations"]
    assert res["ReservationId"] == r["ReservationId"] and len(res["Instances"]) == 3


def test_client_token_is_idempotent(env, ec2):
    c = ec2()
    first = launch(c, ClientToken="once-only")
    again = launch(c, ClientToken="once-only")
    assert len(env.schedd.submitted) == 1
    assert again["Instances"][0]["InstanceId"] == first["Instances"][0]["InstanceId"]
    assert again["ReservationId"] == first["ReservationId"]
    launch(ec2("bob"), ClientToken="once-only")       # another user's token is another launch
    assert len(env.schedd.submitted) == 2


def test_boto3_fills_in_a_client_token(env, ec2):
    launch(ec2())
    assert env.schedd.submitted[0]["MY.CloudClientToken"].strip('"')


# -- DescribeInstances, states, terminated instances ---------------------------------------------------------------
def test_states_and_the_waiters(env, ec2):
    c = ec2()
    iid = launch(c)["Instances"][0]["InstanceId"]
    cluster = env.schedd.jobs[-1]["ClusterId"]
    env.schedd.set_status(cluster, 2)
    c.get_waiter("instance_running").wait(InstanceIds=[iid], WaiterConfig={"Delay": 0, "MaxAttempts": 2})
    assert one(c, iid)["State"] == {"Code": 16, "Name": "running"}
    r = c.terminate_instances(InstanceIds=[iid])
    assert r["TerminatingInstances"] == [{"InstanceId": iid, "CurrentState": {"Code": 32, "Name": "shutting-down"},
                                          "PreviousState": {"Code": 16, "Name": "running"}}]
    assert env.schedd.acts[-1][1] == "%d.0" % cluster
    assert one(c, iid)["State"]["Name"] == "shutting-down"
    env.schedd.finish(cluster)
    c.get_waiter("instance_terminated").wait(InstanceIds=[iid], WaiterConfig={"Delay": 0, "MaxAttempts": 2})
    inst = one(c, iid)
    assert inst["State"] == {"Code": 48, "Name": "terminated"}
    assert inst["StateReason"]["Code"] == "Client.UserInitiatedShutdown"
    # terminating it again changes nothing
    r = c.terminate_instances(InstanceIds=[iid])
    assert r["TerminatingInstances"][0]["CurrentState"]["Name"] == "terminated"
    assert len(env.schedd.acts) == 1


def test_terminated_instances_are_listed_for_the_configured_window(env, ec2):
    c = ec2()
    iids = [launch(c)["Instances"][0]["InstanceId"] for _ in range(2)]
    clusters = [ad["ClusterId"] for ad in env.schedd.jobs]
    env.schedd.finish(clusters[0], status=4, ago=3500)       # ended within the hour
    env.schedd.finish(clusters[1], status=3, ago=3700)       # over an hour ago
    listed = [i["InstanceId"] for r in c.describe_instances()["Reservations"] for i in r["Instances"]]
    assert listed == iids[:1]
    assert one(c, iids[0])["StateReason"]["Code"] == "Client.InstanceInitiatedShutdown"
    with pytest.raises(ClientError) as exc:
        one(c, iids[1])
    assert code_of(exc) == "InvalidInstanceID.NotFound"
    constraint, _, _, since = env.schedd.history_calls[-1]
    assert "EnteredCurrentStatus >=" in constraint and str(since).startswith("EnteredCurrentStatus <")
    assert type(since).__name__ == "ExprTree"     # htcondor2 23.9 takes a string only as a job id


def test_held_instances_are_pending_with_the_reason(env, ec2):
    c = ec2()
    iid = launch(c)["Instances"][0]["InstanceId"]
    env.schedd.jobs[-1]["JobStatus"] = 5
    env.schedd.jobs[-1]["HoldReason"] = "image 'demo.qcow2' not found"
    inst = one(c, iid)
    assert inst["State"]["Name"] == "pending" and "not found" in inst["StateReason"]["Message"]


def test_an_instance_no_node_has_room_for_is_pending_with_the_reason(env, ec2):
    """Issue 13: PENDING says why when the negotiator found no node for it (LastRejMatchReason, set by the schedd on
    one job of an autocluster), and no longer once a match came after that."""
    c = ec2()
    first, second = (launch(c)["Instances"][0]["InstanceId"] for _ in range(2))
    a, b = env.schedd.jobs[-2:]
    a.update({"AutoClusterId": 7, "LastRejMatchReason": "no match found ", "LastRejMatchTime": 1700000100})
    b.update({"AutoClusterId": 7})                       # the same request: the negotiator's answer stands for it
    for iid in (first, second):
        inst = one(c, iid)
        assert inst["State"]["Name"] == "pending"
        assert inst["StateReason"]["Code"] == "Server.InsufficientInstanceCapacity"
        assert "no node has room" in inst["StateReason"]["Message"] and "no match found" in inst["StateReason"]["Message"]
    a["LastMatchTime"] = 1700000200                       # matched since: the rejection is stale
    assert "StateReason" not in one(c, first) and "StateReason" not in one(c, second)
    # a quota's concurrency limit is no lack of room (and this user's quota, unlimited, has room)
    a.update({"LastRejMatchReason": "concurrency limit cloud_inst.alice reached", "LastRejMatchTime": 1700000300})
    assert "StateReason" not in one(c, first)


def test_filters(env, ec2):
    c = ec2()
    a = launch(c, TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web-1"}]}])
    b = launch(c, ImageId=ami(c, "other.img"), InstanceType="large",
               TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "db-1"}]}])
    env.schedd.set_status(env.schedd.jobs[0]["ClusterId"], 2)
    ia, ib = a["Instances"][0]["InstanceId"], b["Instances"][0]["InstanceId"]

    def ids(*filters):
        return sorted(i["InstanceId"] for r in c.describe_instances(Filters=list(filters))["Reservations"]
                      for i in r["Instances"])

    assert ids({"Name": "tag:Name", "Values": ["web-1"]}) == [ia]
    assert ids({"Name": "tag:Name", "Values": ["*-1"]}) == sorted([ia, ib])
    assert ids({"Name": "instance-state-name", "Values": ["running"]}) == [ia]
    assert ids({"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
               {"Name": "image-id", "Values": [ami(c, "other.img")]}) == [ib]
    assert ids({"Name": "instance-id", "Values": [ib, "i-00000000"]}) == [ib]
    assert ids({"Name": "instance-type", "Values": ["large"]}) == [ib]
    subnet = c.describe_subnets()["Subnets"][0]["SubnetId"]
    assert ids({"Name": "subnet-id", "Values": [subnet]}) == sorted([ia, ib])
    assert ids({"Name": "tag-key", "Values": ["Nope"]}) == []
    with pytest.raises(ClientError) as exc:
        ids({"Name": "frobnication", "Values": ["x"]})
    assert code_of(exc) == "InvalidParameterValue"


def test_pagination_and_the_paginator(env, ec2):
    c = ec2()
    iids = []     # three requests of 3 (CLOUD_EC2_MAX_COUNT is 3 here)
    for _ in range(3):
        iids += [i["InstanceId"] for i in launch(c, MinCount=3, MaxCount=3)["Instances"]]
    page = c.describe_instances(MaxResults=5)
    assert sum(len(r["Instances"]) for r in page["Reservations"]) == 5 and page["NextToken"]
    pages = list(c.get_paginator("describe_instances").paginate(PaginationConfig={"PageSize": 5}))
    assert len(pages) == 2
    seen = [i["InstanceId"] for p in pages for r in p["Reservations"] for i in r["Instances"]]
    assert sorted(seen) == sorted(iids) and len(seen) == 9
    with pytest.raises(ClientError) as exc:
        c.describe_instances(MaxResults=5, NextToken="garbage")
    assert code_of(exc) == "InvalidParameterValue"
    with pytest.raises(ClientError) as exc:
        c.describe_instances(MaxResults=5, InstanceIds=iids[:1])
    assert code_of(exc) == "InvalidParameterCombination"
    with pytest.raises(ClientError) as exc:
        c.describe_instances(MaxResults=2)
    assert code_of(exc) == "InvalidParameterValue"


def test_instance_ids(env, ec2):
    c = ec2()
    with pytest.raises(ClientError) as exc:
        c.describe_instances(InstanceIds=["master.example.org_1.0_1"])
    assert code_of(exc) == "InvalidInstanceID.Malformed"
    with pytest.raises(ClientError) as exc:
        c.terminate_instances(InstanceIds=["i-0123456789abcdef0"])
    assert code_of(exc) == "InvalidInstanceID.NotFound"


def test_instance_status(env, ec2):
    c = ec2()
    iid = launch(c)["Instances"][0]["InstanceId"]
    assert c.describe_instance_status()["InstanceStatuses"] == []
    (st,) = c.describe_instance_status(InstanceIds=[iid], IncludeAllInstances=True)["InstanceStatuses"]
    assert st["InstanceState"]["Name"] == "pending" and st["InstanceStatus"]["Status"] == "initializing"
    env.schedd.set_status(env.schedd.jobs[-1]["ClusterId"], 2)
    c.get_waiter("instance_status_ok").wait(InstanceIds=[iid], WaiterConfig={"Delay": 0, "MaxAttempts": 1})


def test_instance_attributes(env, ec2, monkeypatch, tmp_path):
    c = ec2()
    iid = launch(c, InstanceType="large", UserData="hello")["Instances"][0]["InstanceId"]
    assert c.describe_instance_attribute(InstanceId=iid, Attribute="instanceType")["InstanceType"] == {
        "Value": "large"}
    spool = tmp_path / "spool"
    cluster = env.schedd.jobs[-1]["ClusterId"]
    d = spool / str(cluster) / "0" / ("cluster%d.proc0.subproc0" % cluster)
    d.mkdir(parents=True)
    (d / "user-data").write_bytes(b"hello")
    import htcondor2

    monkeypatch.setattr(htcondor2, "param", {"SPOOL": str(spool)})
    r = c.describe_instance_attribute(InstanceId=iid, Attribute="userData")
    assert base64.b64decode(r["UserData"]["Value"]) == b"hello"
    assert c.describe_instance_attribute(InstanceId=iid, Attribute="disableApiTermination")[
        "DisableApiTermination"] == {"Value": False}
    with pytest.raises(ClientError) as exc:
        c.describe_instance_attribute(InstanceId=iid, Attribute="kernelx")
    assert code_of(exc) == "InvalidParameterValue"


def test_user_data_of_a_file_that_is_not_regular_is_empty(env, ec2, monkeypatch, tmp_path):
    c = ec2()
    iid = launch(c)["Instances"][0]["InstanceId"]
    cluster = env.schedd.jobs[-1]["ClusterId"]
    d = tmp_path / "spool" / str(cluster) / "0" / ("cluster%d.proc0.subproc0" % cluster)
    d.mkdir(parents=True)
    (tmp_path / "secret").write_text("not yours")
    (d / "user-data").symlink_to(tmp_path / "secret")
    import htcondor2

    monkeypatch.setattr(htcondor2, "param", {"SPOOL": str(tmp_path / "spool")})
    assert "Value" not in c.describe_instance_attribute(InstanceId=iid, Attribute="userData").get("UserData", {})


def test_console_output(env, ec2):
    c = ec2()
    iid = launch(c)["Instances"][0]["InstanceId"]
    cluster = env.schedd.jobs[-1]["ClusterId"]
    env.console[cluster] = "CONDOR-CLOUD-GUEST-BOOTED\n"
    assert "Output" not in c.get_console_output(InstanceId=iid)      # not running yet: no output, no error
    env.schedd.set_status(cluster, 2)
    assert c.get_console_output(InstanceId=iid)["Output"] == "CONDOR-CLOUD-GUEST-BOOTED\n"


def test_console_output_never_holds_a_worker_while_the_node_is_busy(env, ec2):
    """Issue 13: condor_tail waits as long as the starter sleeps after starting a domain (30 s); GetConsoleOutput
    gives it a few seconds only, then answers no output yet (as EC2 does before a console exists)."""
    from condor_cloud.core import errors
    from condor_cloud.core.errors import CloudError

    c = ec2()
    iid = launch(c)["Instances"][0]["InstanceId"]
    cluster = env.schedd.jobs[-1]["ClusterId"]
    env.schedd.set_status(cluster, 2)
    env.console[cluster] = CloudError("condor_tail did not answer within 5 s", errors.TIMEOUT)
    answer = c.get_console_output(InstanceId=iid)
    assert answer["InstanceId"] == iid and "Output" not in answer
    assert env.console_timeouts and all(t <= 5 for t in env.console_timeouts)


# -- images, types, regions, zones, VPCs, subnets ----------------------------------------------------------------
def test_images_and_types(env, ec2):
    c = ec2()
    images = c.describe_images()["Images"]
    assert sorted(i["Name"] for i in images) == ["demo.qcow2", "other.img"]
    assert all(model.IMAGE_ID_RE.fullmatch(i["ImageId"]) for i in images)
    assert c.describe_images(ImageIds=[ami(c)])["Images"][0]["Name"] == "demo.qcow2"
    with pytest.raises(ClientError) as exc:
        c.describe_images(ImageIds=["ami-00000000000000000"])
    assert code_of(exc) == "InvalidAMIID.NotFound"
    assert c.describe_images(Owners=["amazon"])["Images"] == []
    types = {t["InstanceType"]: t for t in c.describe_instance_types()["InstanceTypes"]}
    assert list(types) == ["small", "medium", "large"]
    assert types["medium"]["VCpuInfo"]["DefaultVCpus"] == 2 and types["medium"]["MemoryInfo"]["SizeInMiB"] == 1024
    assert types["large"]["InstanceStorageInfo"]["TotalSizeInGB"] == 20
    with pytest.raises(ClientError) as exc:
        c.describe_instance_types(InstanceTypes=["t2.micro"])
    assert code_of(exc) == "InvalidInstanceType"


def test_regions_zones_and_the_default_vpc_and_subnet_ansible_asks_for(env, ec2):
    c = ec2()
    assert [r["RegionName"] for r in c.describe_regions()["Regions"]] == ["condor-cloud"]
    (zone,) = c.describe_availability_zones()["AvailabilityZones"]
    assert zone["ZoneName"] == "default" and zone["State"] == "available" and zone["RegionName"] == "condor-cloud"
    (vpc,) = c.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    assert vpc["IsDefault"] is True
    (subnet,) = c.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]},
                                            {"Name": "state", "Values": ["available"]},
                                            {"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    assert subnet["AvailabilityZone"] == "default" and subnet["DefaultForAz"] is True
    # what ec2_instance then sends: one new interface in that subnet
    launch(c, NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet["SubnetId"], "DeleteOnTermination": True}])
    assert len(env.schedd.submitted) == 1
    assert c.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["false"]}])["Vpcs"] == []
    with pytest.raises(ClientError) as exc:
        c.describe_subnets(SubnetIds=["subnet-00000000000000000"])
    assert code_of(exc) == "InvalidSubnetID.NotFound"


# -- key pairs -----------------------------------------------------------------------------------------------------
def test_import_describe_delete_key_pairs(env, ec2):
    c = ec2()
    with pytest.raises(ClientError) as exc:
        c.describe_key_pairs(KeyNames=["laptop"])
    assert code_of(exc) == "InvalidKeyPair.NotFound"
    r = c.import_key_pair(KeyName="laptop", PublicKeyMaterial=ED25519.encode())
    assert r["KeyName"] == "laptop" and r["KeyPairId"].startswith("key-")
    assert env.keys.get("alice", "laptop").public_key == ED25519
    again = c.import_key_pair  # the same material always gives the same fingerprint (ec2_key compares them)
    with pytest.raises(ClientError) as exc:
        again(KeyName="laptop", PublicKeyMaterial=ED25519.encode())
    assert code_of(exc) == "InvalidKeyPair.Duplicate"
    r2 = c.import_key_pair(KeyName="laptop-copy", PublicKeyMaterial=ED25519.encode())
    assert r2["KeyFingerprint"] == r["KeyFingerprint"]
    (kp,) = c.describe_key_pairs(KeyNames=["laptop"])["KeyPairs"]
    assert kp["KeyFingerprint"] == r["KeyFingerprint"] and kp["KeyType"] == "ed25519"
    assert c.describe_key_pairs(KeyNames=["laptop"], IncludePublicKey=True)["KeyPairs"][0]["PublicKey"] == ED25519
    assert c.describe_key_pairs(Filters=[{"Name": "fingerprint", "Values": [r["KeyFingerprint"]]}])["KeyPairs"]
    c.delete_key_pair(KeyName="laptop")
    c.delete_key_pair(KeyName="laptop")      # gone already: still a success, as in EC2
    assert [k.name for k in env.keys.list("alice")] == ["laptop-copy"]
    with pytest.raises(ClientError) as exc:
        c.import_key_pair(KeyName="bad", PublicKeyMaterial=b"ssh-ed25519 AAAA not-a-key")
    assert code_of(exc) == "InvalidParameterValue"
    with pytest.raises(ClientError) as exc:
        c.import_key_pair(KeyName="bad name!", PublicKeyMaterial=ED25519.encode())
    assert code_of(exc) == "InvalidParameterValue"


def test_rsa_fingerprint_is_the_md5_of_the_der_public_key(env, ec2):
    serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    line = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    r = ec2().import_key_pair(KeyName="rsa", PublicKeyMaterial=line)
    assert r["KeyFingerprint"] == ":".join("%02x" % b for b in hashlib.md5(der).digest())


@pytest.mark.parametrize("key_type, header", [("rsa", "-----BEGIN RSA PRIVATE KEY-----"),
                                              ("ed25519", "-----BEGIN OPENSSH PRIVATE KEY-----")])
def test_create_key_pair_returns_the_private_key_once(env, ec2, key_type, header, tmp_path):
    pytest.importorskip("cryptography")
    c = ec2()
    r = c.create_key_pair(KeyName="made", KeyType=key_type)
    assert r["KeyMaterial"].startswith(header)
    stored = env.keys.get("alice", "made")
    assert stored.public_key.startswith("ssh-%s " % key_type)
    # never stored: no file anywhere under the test's directories holds the private key
    body = r["KeyMaterial"].splitlines()[1]
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert body.encode() not in path.read_bytes(), path
    (kp,) = c.describe_key_pairs(KeyNames=["made"])["KeyPairs"]
    assert kp["KeyFingerprint"] == r["KeyFingerprint"] and "KeyMaterial" not in kp
    with pytest.raises(ClientError) as exc:
        c.create_key_pair(KeyName="ppk", KeyFormat="ppk")
    assert code_of(exc) == "Unsupported"


def test_key_pair_tags_are_unsupported(env, ec2):
    with pytest.raises(ClientError) as exc:
        ec2().import_key_pair(KeyName="k", PublicKeyMaterial=ED25519.encode(),
                              TagSpecifications=[{"ResourceType": "key-pair", "Tags": [{"Key": "a", "Value": "b"}]}])
    assert code_of(exc) == "Unsupported" and env.keys.list("alice") == []


# -- tags --------------------------------------------------------------------------------------------------------
def test_create_describe_delete_tags(env, ec2):
    c = ec2()
    iid = launch(c, TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "a"}]}])[
        "Instances"][0]["InstanceId"]
    c.create_tags(Resources=[iid], Tags=[{"Key": "env", "Value": "prod"}, {"Key": "Name", "Value": "b"}])
    assert env.schedd.edits[-1] == ("%d.0" % env.schedd.jobs[-1]["ClusterId"], "CloudTags",
                                    '{"Name","b","env","prod"}')
    tags = c.describe_tags(Filters=[{"Name": "resource-id", "Values": [iid]}])["Tags"]
    assert [(t["Key"], t["Value"], t["ResourceType"]) for t in tags] == [("Name", "b", "instance"),
                                                                         ("env", "prod", "instance")]
    assert {t["Key"] for t in one(c, iid)["Tags"]} == {"Name", "env"}
    c.delete_tags(Resources=[iid], Tags=[{"Key": "env"}])
    c.delete_tags(Resources=[iid], Tags=[{"Key": "Name", "Value": "not-b"}])     # value differs: kept
    assert one(c, iid)["Tags"] == [{"Key": "Name", "Value": "b"}]
    with pytest.raises(ClientError) as exc:
        c.create_tags(Resources=[iid], Tags=[{"Key": "x", "Value": "a\\b"}])
    assert code_of(exc) == "InvalidParameterValue"
    with pytest.raises(ClientError) as exc:
        c.create_tags(Resources=[iid], Tags=[{"Key": "k%d" % i, "Value": ""} for i in range(50)])
    assert code_of(exc) == "TagLimitExceeded"
    with pytest.raises(ClientError) as exc:
        c.create_tags(Resources=[ami(c)], Tags=[{"Key": "x", "Value": "y"}])
    assert code_of(exc) == "Unsupported"


def test_tags_of_by_hand_jobs_are_not_trusted_and_cannot_be_set(env, ec2):
    import classad2

    ad = classad2.ClassAd({"ClusterId": 7, "ProcId": 0, "JobUniverse": 13, "JobStatus": 1, "Owner": "alice",
                           "GlobalJobId": "master.example.org#7.0#1700000000", "QDate": 1700000000,
                           "VMPARAM_vm_Disk": "demo.qcow2:vda:w", "Cmd": "mine", "CloudName": "forged",
                           "CloudTags": ["Name", "forged"], "CloudClientToken": "t", "CloudReservation": "r-1"})
    env.schedd.jobs.append(ad)
    c = ec2()
    (inst,) = c.describe_instances()["Reservations"][0]["Instances"]
    assert "Tags" not in inst and "ClientToken" not in inst
    with pytest.raises(ClientError) as exc:
        c.create_tags(Resources=[inst["InstanceId"]], Tags=[{"Key": "a", "Value": "b"}])
    assert code_of(exc) == "UnauthorizedOperation" and env.schedd.edits == []
    with pytest.raises(ClientError) as exc:
        c.terminate_instances(InstanceIds=[inst["InstanceId"]])
    assert code_of(exc) == "UnauthorizedOperation" and env.schedd.acts == []


# -- isolation and failures ----------------------------------------------------------------------------------------
def test_users_see_and_act_on_only_their_own(env, ec2):
    alice, bob = ec2("alice"), ec2("bob")
    iid = launch(alice)["Instances"][0]["InstanceId"]
    alice.import_key_pair(KeyName="laptop", PublicKeyMaterial=ED25519.encode())
    assert bob.describe_instances()["Reservations"] == []
    assert bob.describe_key_pairs()["KeyPairs"] == [] and bob.describe_tags()["Tags"] == []
    for fn, kw, code in ((bob.describe_instances, {"InstanceIds": [iid]}, "InvalidInstanceID.NotFound"),
                         (bob.terminate_instances, {"InstanceIds": [iid]}, "InvalidInstanceID.NotFound"),
                         (bob.get_console_output, {"InstanceId": iid}, "InvalidInstanceID.NotFound"),
                         (bob.create_tags, {"Resources": [iid], "Tags": [{"Key": "a", "Value": "b"}]},
                          "InvalidInstanceID.NotFound"),
                         (bob.describe_instance_attribute, {"InstanceId": iid, "Attribute": "userData"},
                          "InvalidInstanceID.NotFound"),
                         (bob.describe_key_pairs, {"KeyNames": ["laptop"]}, "InvalidKeyPair.NotFound")):
        with pytest.raises(ClientError) as exc:
            fn(**kw)
        assert code_of(exc) == code, fn
    bob.delete_key_pair(KeyName="laptop")
    assert env.keys.get("alice", "laptop") and env.schedd.acts == [] and env.schedd.edits == []
    # the same key name is another key for bob, and launching with it uses bob's
    bob.import_key_pair(KeyName="laptop", PublicKeyMaterial=ED25519.encode())
    launch(bob, KeyName="laptop")
    assert env.schedd.submitted[-1]["MY.CloudOwner"] == '"bob"'
    # admins see only their own instances here too
    assert ec2("root_").describe_instances()["Reservations"] == []


def test_a_stopped_schedd_is_unavailable_503(env, ec2):
    env.schedd.down = True
    c = ec2()
    for fn, kw in ((c.describe_instances, {}), (c.describe_tags, {}),
                   (c.run_instances, {"ImageId": model.image_ec2_id("demo.qcow2"), "MinCount": 1, "MaxCount": 1})):
        with pytest.raises(ClientError) as exc:
            fn(**kw)
        assert code_of(exc) == "Unavailable" and status_of(exc) == 503, fn


def test_a_damaged_access_key_file_is_a_logged_500_not_a_crash(env):
    with open(env.settings.access_keys, "a") as f:
        f.write("garbage line\n")
    status, _, body = call(env, "DescribeRegions")
    assert status == 500 and error_code(body)[0] == "InternalError" and "/" not in error_code(body)[1]


def test_client_token_launches_take_the_lock(env, ec2, monkeypatch):
    from condor_cloud.master.ec2 import actions

    taken = []
    real = actions.fcntl.flock
    monkeypatch.setattr(actions.fcntl, "flock", lambda fd, op: taken.append(op) or real(fd, op))
    launch(ec2(), ClientToken="t1")
    assert taken == [actions.fcntl.LOCK_EX]
    assert (env.lock_dir / "ec2-client-token.lock").exists()


def test_submit_attributes_are_checked_literals_and_only_for_the_api_account(env):
    from condor_cloud.master.config import parse_profiles
    from condor_cloud.core.errors import CloudError
    from condor_cloud.master.jobs import CloudJobs

    profile = parse_profiles("small:512:1")[0]
    for attrs in ({"CloudOwner": "bob"}, {"Owner": "bob"}, {"CloudX;Y": "1"}, {"CloudTags": ['a"b']},
                  {"CloudReservation": "$(ENV)"}):
        with pytest.raises(ValueError):
            env.jobs.submit("alice", "demo.qcow2", profile, "n", attributes=attrs)
    assert env.schedd.submitted == []
    other = CloudJobs(env.factory, submitter="alice")
    with pytest.raises(CloudError, match="only the API's account"):
        other.submit("alice", "demo.qcow2", profile, "n", attributes={"CloudTags": []})
    assert env.schedd.submitted == []


def test_a_full_key_store_is_unavailable_and_nothing_is_half_done(env, ec2, monkeypatch):
    from condor_cloud.core import errors
    from condor_cloud.core.errors import CloudError

    def full(*a, **kw):
        raise CloudError("the key was not saved: the server's key store is full", errors.NO_SPACE)

    monkeypatch.setattr(env.keys, "add", full)
    with pytest.raises(ClientError) as exc:
        ec2().import_key_pair(KeyName="k", PublicKeyMaterial=ED25519.encode())
    assert code_of(exc) == "Unavailable" and status_of(exc) == 503
