"""The EC2 server's settings (condor_cloud/master/ec2/config.py)."""

import pytest

from condor_cloud.core.errors import CloudError


# -- settings and the server ---------------------------------------------------------------------------------
def test_ec2_knobs(cloud):
    from condor_cloud.master.ec2.config import load_ec2_settings

    s = load_ec2_settings(reload=True)
    assert (s.listen, s.workers, s.region, s.access_keys, s.terminated_seconds, s.max_count) == (
        ("0.0.0.0", 8773), 2, "condor-cloud", "/var/lib/condor-cloud/ec2/access-keys", 3600, 10)
    cloud.write_config("CLOUD_EC2_LISTEN = 127.0.0.1:9999\nCLOUD_EC2_REGION = lab-1\n")
    s = load_ec2_settings(reload=True)
    assert s.listen == ("127.0.0.1", 9999) and s.region == "lab-1"
    for bad, why in (("CLOUD_EC2_LISTEN = 8773", "CLOUD_EC2_LISTEN must be ADDRESS:PORT"),
                     ("CLOUD_EC2_REGION = Not_A_Region", "CLOUD_EC2_REGION"),
                     ("CLOUD_EC2_TERMINATED_SECONDS = 60", "at least 3600"),
                     ("CLOUD_EC2_MAX_COUNT = 0", "at least 1")):
        cloud.write_config(bad + "\n")
        with pytest.raises(CloudError, match=why):
            load_ec2_settings(reload=True)
