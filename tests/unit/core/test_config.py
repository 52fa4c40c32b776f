"""Settings from HTCondor configuration (condor_cloud/core/config.py)."""

import pytest

from condor_cloud.core import config
from condor_cloud.core.errors import CloudError


def test_settings_come_from_condor_config(cloud):
    cloud.write_config("CLOUD_CACHE_MAX_SIZE = 3G\nCLOUD_NETWORK = network:default\n")
    s = config.load_settings()
    assert s.image_store == str(cloud.store) and s.image_cache == str(cloud.cache)
    assert s.cache_max_size == 3 << 30 and s.network == "network:default" and s.domain_type == "qemu"


def test_defaults_when_unset(cloud):
    cloud.config.write_text("")
    import htcondor2
    htcondor2.reload_config()
    s = config.load_settings()
    assert s.image_store == "/var/lib/condor-cloud/shared_images"
    assert s.image_cache == "/var/lib/condor-cloud/local_cache"
    assert s.domain_type == "auto" and s.network == "bridge:br0"


def test_bad_setting_is_a_clear_error(cloud):
    cloud.write_config("CLOUD_DOMAIN_TYPE = xen\n")
    with pytest.raises(CloudError) as exc:
        config.load_settings()
    assert "CLOUD_DOMAIN_TYPE" in exc.value.message


@pytest.mark.parametrize("text,size", [("0", 0), ("512", 512), ("20G", 20 << 30), ("100MiB", 100 << 20), ("1t", 1 << 40)])
def test_parse_size(text, size):
    assert config.parse_size(text) == size
