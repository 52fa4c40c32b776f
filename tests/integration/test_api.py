"""The API against a real HTCondor VM pool (tests/sandbox): launch an instance that boots, destroy it (domain and
overlay gone), plain HTTP and the PyPI `deltacloud` client, two users isolated, headless Chromium.

The sandbox runs in its own network namespace; the API server runs chrooted in the sandbox root as the account
condor-cloud-api, and every client here talks to it from a thread that has joined that namespace (setns), so no
traffic leaves the namespace's loopback.

Needs: root, tests/sandbox/build-root, tests/images/build-image (sleep variant). Optional: `requests` and
`deltacloud` (PyPI) for the client test, `selenium` + Debian's `chromium` and `chromium-driver` for the browser
test; each test skips with a reason when its tool is missing.
"""

import base64
import glob
import json
import os
import sys
import time

import pytest

from helpers import BASE, PASSWORDS, http, in_netns, start_api, stop_api, wait_state

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "sandbox"))

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root")


# -- fixtures ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pool(sandbox, test_images):
    """The session's real pool (tests/integration/conftest.py) with the API started in it."""
    sandbox.put_image("sleep.qcow2", test_images["sleep"])
    start_api(sandbox)
    yield sandbox
    stop_api(sandbox)


def image_id(pool):
    status, _, body = http(pool, "GET", "/api/images", "alice")
    assert status == 200, body
    (img,) = [i for i in json.loads(body)["images"] if i["name"] == "sleep.qcow2"]
    return img["id"]


# -- tests ---------------------------------------------------------------------------------------------------
def test_launch_boots_and_destroy_cleans_up(pool):
    status, headers, body = http(pool, "POST", "/api/instances", "alice",
                                 data={"image_id": image_id(pool), "hwp_id": "small", "name": "boot-test"})
    assert status == 201, body
    inst = json.loads(body)["instance"]
    assert headers["Location"] == inst["href"]
    cluster = int(inst["id"].split("_")[-2].split(".")[0])
    ad = pool.job_ad(cluster)
    assert ad["CloudOwner"] == '"alice"' and ad["CloudProfile"] == '"small"' and ad["CloudName"] == '"boot-test"'
    assert ad["JobUniverse"] == "13" and ad["VMPARAM_vm_Disk"].startswith('"sleep.qcow2:vda:w')
    assert wait_state(pool, "alice", inst["id"], ("RUNNING",)) == "RUNNING"
    # The guest really boots: its console log (CLOUD_CONSOLE_DIR) says so.
    end = time.time() + 120
    logs = []
    while time.time() < end:
        logs = glob.glob(pool.path("/var/log/condor-cloud/consoles/%d.0-*.log" % cluster))
        if logs and "CONDOR-CLOUD-GUEST-BOOTED" in open(logs[0], errors="replace").read():
            break
        time.sleep(2)
    else:
        raise AssertionError("no boot message in %s" % logs)
    assert "_%d.0" % cluster in pool.virsh("list", "--name")
    # Its owner reads the same console through the API (condor_tail as the API's account); others cannot.
    status, headers, body = http(pool, "GET", "/api/instances/%s/console" % inst["id"], "alice")
    assert status == 200 and headers["Content-Type"] == "text/plain; charset=utf-8", body
    assert b"CONDOR-CLOUD-GUEST-BOOTED variant=sleep" in body
    assert http(pool, "GET", "/api/instances/%s/console" % inst["id"], "bob")[0] == 404
    status, _, _ = http(pool, "DELETE", "/api/instances/" + inst["id"], "alice")
    assert status == 204
    wait_state(pool, "alice", inst["id"], ("gone",), timeout=180)
    end = time.time() + 120
    while time.time() < end:
        domains = pool.virsh("list", "--all", "--name")
        dirs = glob.glob(pool.path("/var/lib/condor-cloud/instances/%d.0-*" % cluster))
        if "_%d.0" % cluster not in domains and not dirs:
            break
        time.sleep(2)
    else:
        raise AssertionError("domain or instance directory left: %s %s" % (domains, dirs))


def test_two_users_are_isolated(pool):
    status, _, body = http(pool, "POST", "/api/instances", "alice", data={"image_id": image_id(pool)})
    assert status == 201, body
    inst = json.loads(body)["instance"]
    try:
        ids = lambda user: [i["id"] for i in json.loads(http(pool, "GET", "/api/instances", user)[2])["instances"]]
        assert inst["id"] in ids("alice")
        assert inst["id"] not in ids("bob")
        assert inst["id"] in ids("ops")
        assert http(pool, "GET", "/api/instances/" + inst["id"], "bob")[0] == 404
        assert http(pool, "DELETE", "/api/instances/" + inst["id"], "bob")[0] == 404
        assert http(pool, "POST", "/api/instances/%s/destroy" % inst["id"], "bob")[0] == 403
        assert wait_state(pool, "alice", inst["id"], ("PENDING", "RUNNING"), timeout=10)
        assert http(pool, "GET", "/api/instances", "alice", password="wrong-password")[0] == 401
    finally:
        assert http(pool, "DELETE", "/api/instances/" + inst["id"], "ops")[0] == 204


def test_plain_http_xml(pool):
    import xml.etree.ElementTree as ET

    status, headers, body = http(pool, "GET", "/api", accept="*/*; q=0.5, application/xml")
    assert status == 200 and headers["Content-Type"] == "application/xml"
    assert headers["Server"] == "Apache-Deltacloud/1.1.3"
    assert ET.fromstring(body).get("driver") == "condor"
    status, _, body = http(pool, "POST", "/api/instances", "bob", data={"image_id": "nope"},
                           accept="application/xml")
    assert status == 400 and ET.fromstring(body).find("code").text == "400"


def test_schedd_error_is_502_not_500(pool):
    # An instance id whose job the schedd has never had is a 404, and a query the schedd answers is a 200;
    # the 502 path (schedd down) is covered by the unit tests, because stopping this pool's schedd would
    # disturb the other tests of this module.
    assert http(pool, "GET", "/api/instances/127.0.0.1_99999.0_1", "alice")[0] == 404


def test_pypi_deltacloud_client(pool):
    pytest.importorskip("requests")
    deltacloud = pytest.importorskip("deltacloud", reason="pip install deltacloud (the PyPI JSON client)")

    def scenario():
        client = deltacloud.Deltacloud(BASE + "/api", "bob", PASSWORDS["bob"])
        assert client.valid_credentials()
        images = [i for i in client.images() if i.name == "sleep.qcow2"]
        assert images and images[0].architecture == "x86_64"
        assert {r.id for r in client.realms()} == {"default"}
        assert {p.id for p in client.hardware_profiles()} >= {"small", "medium", "large"}
        inst = client.create_instance(images[0].id, {"hwp_id": "small", "name": "pypi-client"})
        assert inst.state == "PENDING" and inst.name == "pypi-client"
        assert inst.id in [i.id for i in client.instances()]
        assert "destroy" in inst.actions()
        assert inst.destroy()
        return inst.id

    instance_id = in_netns(pool, scenario)
    wait_state(pool, "bob", instance_id, ("gone", "STOPPED"), timeout=120)


def test_browser_launch_running_destroy(pool):
    webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium")
    chromium = "/usr/bin/chromium"
    driver_path = "/usr/bin/chromedriver"
    if not (os.path.exists(chromium) and os.path.exists(driver_path)):
        pytest.skip("apt-get install chromium chromium-driver")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.chrome.service import Service

    def scenario():
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage"):
            options.add_argument(flag)
        browser = webdriver.Chrome(service=Service(driver_path), options=options)
        try:
            # Log in: HTTP Basic, sent by the browser for every request (CDP sets the header once).
            token = base64.b64encode(("alice:" + PASSWORDS["alice"]).encode()).decode()
            browser.execute_cdp_cmd("Network.enable", {})
            browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": "Basic " + token}})
            browser.get(BASE + "/api/images")
            assert browser.find_element(By.ID, "username").text == "alice"
            form = [f for f in browser.find_elements(By.CSS_SELECTOR, "form.launch") if "sleep.qcow2" in f.text][0]
            form.find_element(By.NAME, "name").send_keys("browser-test")
            form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
            # The click only starts the navigation: wait for the instance's page before reading it.
            end = time.time() + 30
            while time.time() < end and not browser.find_elements(By.ID, "state"):
                time.sleep(0.2)
            end = time.time() + 240
            while time.time() < end:
                state = browser.find_element(By.ID, "state").text
                if state == "RUNNING":
                    break
                time.sleep(3)
                browser.refresh()
            assert browser.find_element(By.ID, "state").text == "RUNNING"
            instance_url = browser.current_url
            # The console link shows the guest's serial console as text (get() waits for the page; a click would
            # not, and a refresh could reload the instance's page instead).
            console_url = browser.find_element(By.ID, "console").get_attribute("href")
            assert console_url == instance_url + "/console"
            browser.get(console_url)
            end = time.time() + 120
            while time.time() < end and "CONDOR-CLOUD-GUEST-BOOTED" not in browser.find_element(By.TAG_NAME,
                                                                                                  "body").text:
                time.sleep(3)
                browser.refresh()
            assert "CONDOR-CLOUD-GUEST-BOOTED variant=sleep" in browser.find_element(By.TAG_NAME, "body").text
            browser.get(instance_url)
            if os.environ.get("CLOUD_SANDBOX_KEEP_LOGS"):  # for a person to look at, with the pool's logs
                os.makedirs(os.environ["CLOUD_SANDBOX_KEEP_LOGS"], exist_ok=True)
                browser.save_screenshot(os.path.join(os.environ["CLOUD_SANDBOX_KEEP_LOGS"], "api-browser-running.png"))
            browser.find_element(By.CSS_SELECTOR, "button.destroy").click()
            # The click submits a form; the browser follows the redirect to the list a moment later.
            end = time.time() + 30
            while time.time() < end and not browser.current_url.endswith("/api/instances"):
                time.sleep(0.2)
            assert browser.current_url.endswith("/api/instances"), browser.current_url
            return instance_url.rsplit("/", 1)[1]
        finally:
            browser.quit()

    instance_id = in_netns(pool, scenario)
    wait_state(pool, "alice", instance_id, ("gone", "STOPPED"), timeout=120)
