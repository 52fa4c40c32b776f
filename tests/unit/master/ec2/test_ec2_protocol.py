"""The EC2 Query protocol: decoding botocore's serializations (its own protocol test cases), the refusals of
malformed parameters, the XML documents (success and the EC2 error shape), and no 500 for any request."""

import json
import os
import random
import xml.etree.ElementTree as ET

import pytest

from condor_cloud.master.ec2 import query
from condor_cloud.master.ec2.query import Ec2Error, Items, Params

from .conftest import call, error_code, raw, send, sign

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
NS = "{http://ec2.amazonaws.com/doc/2016-11-15/}"

with open(os.path.join(DATA, "botocore_ec2_input_bodies.json")) as f:
    BOTOCORE_CASES = {c["id"]: c for c in json.load(f)}


@pytest.mark.parametrize("case_id", sorted(BOTOCORE_CASES))
def test_every_botocore_ec2_serialization_decodes(case_id):
    body = BOTOCORE_CASES[case_id]["body"]
    flat = query.decode("", body)
    assert flat["Action"] and flat["Version"] == "2020-01-08"


def test_botocore_lists_and_structures():
    p = Params(query.decode("", BOTOCORE_CASES["Ec2Lists"]["body"]))
    assert p.list("ListArg") == ["foo", "bar", "baz"]
    assert [s.str("Hi") for s in p.structs("ComplexListArg")] == ["hello", "hola"]
    nested = Params(query.decode("", BOTOCORE_CASES["Ec2ListNestedStructWithList"]["body"]))
    assert nested.list("NestedWithList.ListArg") == ["A", "B"]
    deep = Params(query.decode("", BOTOCORE_CASES["Ec2NestedStructures"]["body"]))
    assert deep.str("Nested.RecursiveArg.StringArg") == "baz" and deep.bool("Nested.OtherArg") is True
    simple = Params(query.decode("", BOTOCORE_CASES["Ec2SimpleInputParamsInteger"]["body"]))
    assert simple.int("Bam") == 10
    blob = Params(query.decode("", BOTOCORE_CASES["Ec2SimpleInputParamsBlob"]["body"]))
    assert blob.str("Qux") == "dmFsdWU="


def test_lists_are_in_index_order_not_text_order():
    p = Params(query.decode("", "Id.10=j&Id.2=b&Id.1=a"))
    assert p.list("Id") == ["a", "b", "j"]


@pytest.mark.parametrize("text", ["Id.0=x", "Id.1001=x", "Id.01=x", "Id.x=y", "Id.-1=x", "Id.1.2=x"])
def test_bad_indexes_are_refused(text):
    with pytest.raises(Ec2Error) as exc:
        Params(query.decode("", text)).list("Id")
    assert exc.value.code == "InvalidParameterValue"


def test_a_name_given_twice_is_refused():
    with pytest.raises(Ec2Error) as exc:
        query.decode("Action=A", "Action=B")
    assert exc.value.code == "InvalidParameterCombination"
    with pytest.raises(Ec2Error):
        query.decode("", "X=1&X=1")


@pytest.mark.parametrize("body, why", [
    ("A=%ff", "UTF-8"), ("&".join("P%d=1" % i for i in range(1001)), "too many"),
    ("%00bad=1", "name"), ("A=" + "x" * (query.MAX_VALUE + 1), "longer"), ("x" * 200 + "=1", "name")])
def test_malformed_parameters_are_refused(body, why):
    with pytest.raises(Ec2Error, match=why) as exc:
        query.decode("", body)
    assert exc.value.status == 400


def test_typed_values():
    p = Params(query.decode("", "B=TRUE&N=12&Bad=maybe&Big=99999999999"))
    assert p.bool("B") is True and p.int("N", low=1, high=20) == 12 and p.bool("Missing", True) is True
    with pytest.raises(Ec2Error, match="true or false"):
        p.bool("Bad")
    with pytest.raises(Ec2Error, match="whole number"):
        p.int("Big")
    with pytest.raises(Ec2Error) as exc:
        p.str("Needed", required=True)
    assert exc.value.code == "MissingParameter"


def test_unread_parameters_are_reported():
    p = Params(query.decode("", "Action=X&Version=1&Used=1&Filter.1.Name=a&Filter.1.Value.1=b&Extra=2"))
    p.str("Used")
    for f in p.structs("Filter"):
        f.str("Name")
        f.list("Value")
    assert p.unknown() == ["Extra"]


# -- documents -----------------------------------------------------------------------------------------------
def test_response_document():
    body = query.response("DescribeThings", "rid-1", {"thingSet": Items([[("a", 1), ("b", True)], "x"]),
                                                      "skipped": None, "text": "<&>\x01"})
    root = ET.fromstring(body)
    assert root.tag == NS + "DescribeThingsResponse"
    assert [c.tag for c in root] == [NS + "requestId", NS + "thingSet", NS + "text"]
    assert root.find(NS + "requestId").text == "rid-1"
    items = root.findall(NS + "thingSet/" + NS + "item")
    assert items[0].find(NS + "b").text == "true" and items[1].text == "x"
    assert root.find(NS + "text").text == "<&>\ufffd"      # markup escaped, control characters replaced


def test_error_document_is_the_ec2_error_shape():
    root = ET.fromstring(query.error_document("InvalidX", "bad <thing>", "rid"))
    assert root.tag == "Response" and [c.tag for c in root] == ["Errors", "RequestID"]
    assert root.find("Errors/Error/Code").text == "InvalidX"
    assert root.find("Errors/Error/Message").text == "bad <thing>"
    assert root.find("RequestID").text == "rid"


def test_botocore_reads_our_errors(env, ec2):
    client_error = pytest.importorskip("botocore.exceptions").ClientError
    client = ec2()
    with pytest.raises(client_error) as exc:
        client.describe_instances(InstanceIds=["i-0123456789abcdef0"])
    err = exc.value.response["Error"]
    assert err["Code"] == "InvalidInstanceID.NotFound" and "i-0123456789abcdef0" in err["Message"]
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert exc.value.response["ResponseMetadata"]["RequestId"]


# -- the endpoint ----------------------------------------------------------------------------------------------
def test_unknown_and_missing_actions(env):
    assert error_code(call(env, "DescribeUnicorns")[2])[0] == "InvalidAction"
    status, _, body = call(env, "StopInstances")
    assert status == 400 and error_code(body)[0] == "Unsupported"
    status, _, body = raw(env, {"Version": "2016-11-15"})
    assert error_code(body)[0] == "MissingAction"
    status, _, body = raw(env, {"Action": "DescribeRegions"})
    assert error_code(body)[0] == "MissingParameter"
    status, _, body = raw(env, {"Action": "DescribeRegions", "Version": "latest"})
    assert error_code(body)[0] == "InvalidParameterValue"


def test_an_unknown_parameter_is_refused_not_ignored(env):
    status, _, body = call(env, "DescribeRegions", Frobnicate="1")
    code, message, _ = error_code(body)
    assert status == 400 and code == "UnknownParameter" and "Frobnicate" in message


def test_other_paths_and_methods(env):
    url, headers, data = sign(env, {"Action": "DescribeRegions", "Version": "2016-11-15"})
    status, _, body = send(env, "PUT", url, headers, data)
    assert status == 405 and error_code(body)[0] == "MethodNotAllowed"
    status, _, body = send(env, "POST", url + "api/instances", headers, data)
    assert status == 400 and error_code(body)[0] == "InvalidAction"


def test_a_huge_body_is_refused(env):
    status, _, body = send(env, "POST", "https://ec2.test:8773/", {"Content-Type": "application/x-www-form-urlencoded"},
                           b"A=" + b"x" * (2 << 20))
    assert status == 413 and error_code(body)[0] == "RequestEntityTooLarge"


def test_signed_garbage_bodies_are_client_errors(env):
    rng = random.Random(14)
    bodies = [b"\xff\xfe\x00garbage", b"<xml/>", b"&&&===", b"Action=%zz", b"=" * 50, b"Action",
              b"Action=RunInstances&Version=2016-11-15&MinCount=1&MaxCount=1&ImageId=" + b"a" * 60000]
    bodies += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))) for _ in range(30)]
    for data in bodies:
        status, _, body = raw(env, {}, body=data)
        assert 400 <= status < 500, (data, body)
        assert error_code(body)[0]


def test_no_500_for_fuzzed_parameters_of_every_action(env):
    from condor_cloud.master.ec2.actions import ACTIONS

    rng = random.Random(1414)
    values = ["", "x", "-1", "0", "1", "true", "i-0123456789abcdef0", "ami-00000000", "\u2603", "a" * 5000, "*",
              "tag:Name", "1.5", "%00"]
    names = ["InstanceId.1", "ImageId", "MinCount", "MaxCount", "InstanceType", "KeyName", "UserData", "Filter.1.Name",
             "Filter.1.Value.1", "MaxResults", "NextToken", "Attribute", "ResourceId.1", "Tag.1.Key", "Tag.1.Value",
             "PublicKeyMaterial", "KeyType", "DryRun", "TagSpecification.1.ResourceType",
             "TagSpecification.1.Tag.1.Key", "ClientToken", "IncludeAllInstances", "SubnetId"]
    for action in sorted(ACTIONS):
        for _ in range(12):
            params = {n: rng.choice(values) for n in rng.sample(names, rng.randrange(0, 6))}
            status, _, body = call(env, action, **params)
            assert status < 500, (action, params, body)
