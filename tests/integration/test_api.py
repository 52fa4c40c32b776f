"""The API against a real HTCondor VM pool (tests/sandbox): launch an instance that boots, destroy it (domain and
overlay gone), plain requests and the PyPI `deltacloud` client, two users isolated, headless Chromium; all over
HTTPS with the certificate `condor-cloud api-cert create` made (plain HTTP and other certificates fail).

The sandbox runs in its own network namespace; the API server runs chrooted in the sandbox root as the account
condor-cloud-api, and every client here talks to it from a thread that has joined that namespace (setns), so no
traffic leaves the namespace's loopback.

Needs: root, tests/sandbox/build-root, tests/images/build-image (sleep variant). Optional: `requests` and
`deltacloud` (PyPI) for the client test, `selenium` + Debian's `chromium` and `chromium-driver` for the browser
test; each test skips with a reason when its tool is missing.
"""

import glob
import json
import os
import sys
import time

import pytest

from helpers import (BASE, BOOTED, PASSWORDS, api_console, by_hand, ca_file, console, http, in_netns, start_api,
                     stop_api, wait_state)
from wait import wait_for

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
    wait_for("the boot message in the console log", lambda: BOOTED in console(pool, cluster), 120, interval=2,
             explain=lambda: pool.diagnose(cluster))
    assert "_%d.0" % cluster in pool.virsh("list", "--name")
    # Its owner reads the same console through the API (condor_tail as the API's account); others cannot.
    status, headers, body = api_console(pool, "alice", inst["id"])
    assert status == 200 and headers["Content-Type"] == "text/plain; charset=utf-8", body
    assert b"CONDOR-CLOUD-GUEST-BOOTED variant=sleep" in body
    assert http(pool, "GET", "/api/instances/%s/console" % inst["id"], "bob")[0] == 404
    status, _, _ = http(pool, "DELETE", "/api/instances/" + inst["id"], "alice")
    assert status == 204
    wait_state(pool, "alice", inst["id"], ("gone",), timeout=180)

    def left():   # the job's domain and instance directory on the node
        return ([n for n in pool.virsh("list", "--all", "--name").split() if n.endswith("_%d.0" % cluster)],
                glob.glob(pool.path("/var/lib/condor-cloud/instances/%d.0-*" % cluster)))

    wait_for("the domain and the instance directory to go", left, 120, interval=2, accept=lambda v: v == ([], []))


def test_an_instance_no_node_has_room_for_is_pending_with_the_reason(pool):
    # By hand, far more memory than the node has: the negotiator finds no node ("no match found"), and the API says so.
    cluster = pool.submit(by_hand("sleep.qcow2", extra=["vm_memory = 900000"]), user="alice")
    try:
        def shown():
            listed = json.loads(http(pool, "GET", "/api/instances", "alice")[2])["instances"]
            return [i for i in listed if i["id"].split("_")[-2] == "%d.0" % cluster]

        [inst] = wait_for("the API to say why", shown, 60, interval=1,
                          accept=lambda found: found and found[0].get("state_reason"),
                          explain=lambda: pool.diagnose(cluster))
        assert inst["state"] == "PENDING" and inst["state_reason"].startswith("no node has room for it now"), inst
        assert "no match found" in inst["state_reason"]
    finally:
        pool.run(["condor_rm", str(cluster)], user="alice", check=False)


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


def test_https_only_with_the_hosts_certificate(pool, tmp_path):
    import socket
    import ssl
    import urllib.error

    from condor_cloud.master import tls

    # The certificate the API serves is the one `condor-cloud api-cert create` made and showed (pinnable).
    def served():
        with socket.create_connection(("127.0.0.1", 3002)) as sock:
            context = ssl.create_default_context(cafile=ca_file(pool))
            with context.wrap_socket(sock, server_hostname="localhost") as conn:
                return tls.fingerprint(conn.getpeercert(binary_form=True)), conn.version()

    fingerprint, version = in_netns(pool, served)
    assert fingerprint == pool.state["api"]["sha256"] and version in ("TLSv1.2", "TLSv1.3")
    shown = json.loads(pool.run(["condor-cloud", "api-cert", "show", "--json"]).stdout)
    assert shown["sha256_fingerprint"] == fingerprint and "127.0.0.1" in shown["addresses"]
    # Plain HTTP on the API's port gets no HTTP answer at all (no password is ever read in clear).
    with pytest.raises((urllib.error.URLError, ConnectionError)) as exc:
        http(pool, "GET", "/api/instances", "alice", base=BASE.replace("https://", "http://"))
    assert not isinstance(exc.value, urllib.error.HTTPError)
    # A client that trusts another certificate, or only the system's CAs, refuses the server before it sends
    # anything (the password included).
    other = tls.create(str(tmp_path / "other.crt"), str(tmp_path / "other.key"), ["localhost"], ["127.0.0.1"],
                       group=None)
    for context in (ssl.create_default_context(cafile=other.path), ssl.create_default_context()):
        with pytest.raises(urllib.error.URLError) as exc:
            http(pool, "GET", "/api/instances", "alice", context=context)
        assert isinstance(exc.value.reason, ssl.SSLCertVerificationError)


def test_schedd_error_is_502_not_500(pool):
    """While the schedd is down, the API answers 502 Bad Gateway (HTCondor failed, not the API) naming the schedd;
    once it is back, the same request is a 200 again."""
    # No instance may be running while the schedd is off (the earlier tests' instances leave first), so that
    # stopping it disturbs nothing the other tests look at; the schedd is started again whatever happens.
    wait_for("the queue to be empty", lambda: pool.run(["condor_q", "-allusers", "-af", "ClusterId"]).stdout.split(),
             240, interval=2, accept=lambda jobs: jobs == [], explain=pool.starter_log)
    with pool.schedd_off():
        status, headers, body = http(pool, "GET", "/api/instances", "alice")
    assert status == 502 and headers["Content-Type"].startswith("application/json"), (status, body)
    error = json.loads(body)
    assert error["code"] == 502 and error["error"] == "Bad Gateway" and "schedd" in error["message"], error
    assert http(pool, "GET", "/api/instances", "alice")[0] == 200


def test_pypi_deltacloud_client(pool, monkeypatch):
    pytest.importorskip("requests")
    deltacloud = pytest.importorskip("deltacloud", reason="pip install deltacloud (the PyPI JSON client)")
    # The client is unchanged: requests finds the API's certificate the way any requests user tells it.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_file(pool))

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


# -- browsers -------------------------------------------------------------------------------------------------
def _chromium(pool):
    """A function that starts headless Chromium (trusting the API's certificate only); skip without one."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium")
    chromium = "/usr/bin/chromium"
    driver_path = "/usr/bin/chromedriver"
    if not (os.path.exists(chromium) and os.path.exists(driver_path)):
        pytest.skip("apt-get install chromium chromium-driver")
    from selenium.webdriver.chrome.service import Service

    from helpers import chromium_tls_flags

    def start():
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage"] + \
                chromium_tls_flags(pool):
            options.add_argument(flag)
        return webdriver.Chrome(service=Service(driver_path), options=options)

    return start


def rereader(browser, by, value):
    """A probe for wait_for: the text of the page's element (by, value); every call after the first reloads the
    page first."""
    calls = []

    def probe():
        if calls:
            browser.refresh()
        calls.append(1)
        return browser.find_element(by, value).text

    return probe


def _log_in(browser, user):
    """Log in through the login form (the pages never ask for HTTP Basic)."""
    from selenium.webdriver.common.by import By

    browser.get(BASE + "/api/login")
    browser.find_element(By.ID, "login-username").send_keys(user)
    browser.find_element(By.ID, "login-password").send_keys(PASSWORDS[user])
    browser.find_element(By.ID, "login-submit").click()
    wait_for("the page after the login", lambda: browser.find_elements(By.ID, "username"), 30, interval=0.2,
             explain=lambda: browser.page_source[:2000])
    assert browser.find_element(By.ID, "username").text == user


def test_browser_launch_running_destroy(pool):
    start = _chromium(pool)
    from selenium.webdriver.common.by import By

    def scenario():
        browser = start()
        try:
            # Without a session a page is the login form (and no Basic prompt).
            browser.get(BASE + "/api/images")
            assert browser.find_elements(By.ID, "login-username")
            _log_in(browser, "alice")
            browser.get(BASE + "/api/images")
            assert browser.find_element(By.ID, "username").text == "alice"
            form = [f for f in browser.find_elements(By.CSS_SELECTOR, "form.launch") if "sleep.qcow2" in f.text][0]
            form.find_element(By.NAME, "name").send_keys("browser-test")
            form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
            # The click only starts the navigation: wait for the instance's page before reading it.
            wait_for("the instance's page", lambda: browser.find_elements(By.ID, "state"), 30, interval=0.2)
            wait_for("the page to show RUNNING", rereader(browser, By.ID, "state"), 240, interval=3,
                     accept=lambda state: state == "RUNNING")
            instance_url = browser.current_url
            # The console link shows the guest's serial console as text (get() waits for the page; a click would
            # not, and a refresh could reload the instance's page instead).
            console_url = browser.find_element(By.ID, "console").get_attribute("href")
            assert console_url == instance_url + "/console"
            browser.get(console_url)
            text = wait_for("the console page to show the boot message", rereader(browser, By.TAG_NAME, "body"), 120,
                            interval=3, accept=lambda text: BOOTED in text)
            assert "CONDOR-CLOUD-GUEST-BOOTED variant=sleep" in text
            browser.get(instance_url)
            if os.environ.get("CLOUD_SANDBOX_KEEP_LOGS"):  # for a person to look at, with the pool's logs
                os.makedirs(os.environ["CLOUD_SANDBOX_KEEP_LOGS"], exist_ok=True)
                browser.save_screenshot(os.path.join(os.environ["CLOUD_SANDBOX_KEEP_LOGS"], "api-browser-running.png"))
            browser.find_element(By.CSS_SELECTOR, "button.destroy").click()
            # The click submits a form; the browser follows the redirect to the list a moment later.
            wait_for("the list after the destroy", lambda: browser.current_url.endswith("/api/instances"), 30,
                     interval=0.2, explain=lambda: browser.current_url)
            # Log out: back to the login form, and the pages want a login again.
            browser.find_element(By.ID, "logout").click()
            wait_for("the login form after the logout", lambda: browser.current_url.endswith("/api/login"), 30,
                     interval=0.2, explain=lambda: browser.current_url)
            browser.get(BASE + "/api/instances")
            assert browser.find_elements(By.ID, "login-username") and not browser.find_elements(By.ID, "username")
            return instance_url.rsplit("/", 1)[1]
        finally:
            browser.quit()

    instance_id = in_netns(pool, scenario)
    wait_state(pool, "alice", instance_id, ("gone", "STOPPED"), timeout=120)


class _Site:
    """A web site of somebody else's, inside the sandbox's namespace: fixed pages at (scheme, host, random port),
    plain HTTP, or HTTPS with the given (certificate, key)."""

    def __init__(self, pool, host, pages, tls_files=None):
        import http.server
        import ssl
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = pages.get(self.path.split("?")[0])
                if body is None:
                    self.send_error(404)
                    return
                data = body.encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        def make():  # the listening socket is made inside the namespace (and stays there)
            server = http.server.ThreadingHTTPServer((host, 0), Handler)
            if tls_files:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(*tls_files)
                # Handshakes in the handler threads, not in the accepting one.
                server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
            return server

        self.server = in_netns(pool, make)
        self.url = "%s://%s:%d" % ("https" if tls_files else "http", host, self.server.server_port)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def _auto_post(action, fields):
    """An attacker's page: a form that submits itself to the API as soon as it loads."""
    import html

    inputs = "".join('<input type="hidden" name="%s" value="%s">' % (html.escape(k), html.escape(v))
                     for k, v in fields.items())
    return ('<!DOCTYPE html><html><body onload="document.forms[0].submit()"><form method="post" action="%s">%s'
            '</form></body></html>' % (html.escape(action), inputs))


def test_browser_other_sites_cannot_launch_destroy_or_frame(pool):
    """alice is logged in; pages of two other origins auto-submit launch and destroy forms to the API and frame
    its pages: one cross-site (http://127.0.0.2), one same-site (https://127.0.0.1 on another port, which gets
    the SameSite=Strict cookie sent along). Nothing is launched or destroyed, and no frame shows an API page."""
    start = _chromium(pool)
    from selenium.webdriver.common.by import By

    from condor_cloud.master.config import DEFAULTS

    status, _, body = http(pool, "POST", "/api/instances", "alice", data={"image_id": image_id(pool),
                                                                          "name": "csrf-target"})
    assert status == 201, body
    target = json.loads(body)["instance"]["id"]
    pages = {
        "/launch.html": _auto_post(BASE + "/api/instances", {"image_id": image_id(pool), "name": "csrf-launch",
                                                             "csrf_token": "guessed"}),
        "/destroy.html": _auto_post(BASE + "/api/instances/%s/destroy" % target, {"csrf_token": "guessed"}),
        "/delete.html": _auto_post(BASE + "/api/instances/" + target, {"_method": "delete"}),
        "/logout.html": _auto_post(BASE + "/api/logout", {}),
        "/frame.html": ('<!DOCTYPE html><html><body><iframe id="api" src="%s/api/instances/%s" width="900" '
                        'height="500"></iframe><iframe id="own" src="/hello.html"></iframe></body></html>'
                        % (BASE, target)),
        "/hello.html": '<!DOCTYPE html><html><body><p id="hello">a page of this site</p></body></html>',
    }
    tls_files = (pool.path(DEFAULTS["CLOUD_API_TLS_CERT"]), pool.path(DEFAULTS["CLOUD_API_TLS_KEY"]))
    sites = [_Site(pool, "127.0.0.2", pages), _Site(pool, "127.0.0.1", pages, tls_files)]

    def scenario():
        browser = start()
        seen = []
        try:
            _log_in(browser, "alice")
            for site in sites:
                for page in ("/launch.html", "/destroy.html", "/delete.html", "/logout.html"):
                    browser.get(site.url + page)
                    wait_for("%s%s to land on the API" % (site.url, page),
                             lambda: browser.current_url.startswith(BASE), 30, interval=0.2)
                    wait_for("the API's answer to %s%s" % (site.url, page),
                             lambda: browser.find_elements(By.TAG_NAME, "h1"), 10, interval=0.2)
                    text = browser.find_element(By.TAG_NAME, "body").text
                    seen.append((site.url, page, text[:300]))
                    assert "403 Forbidden" in text and "cross-site request refused" in text, seen[-1]
                browser.get(site.url + "/frame.html")
                # The frame of the site's own page loads (so looking into frames works) ...
                browser.switch_to.frame("own")
                wait_for("the site's own page in its frame", lambda: browser.find_elements(By.ID, "hello"), 30,
                         interval=0.2)
                browser.switch_to.default_content()
                # ... the API's page does not render in its frame.
                time.sleep(2)
                browser.switch_to.frame("api")
                shown = browser.find_element(By.TAG_NAME, "html").get_attribute("outerHTML")
                assert not browser.find_elements(By.ID, "state") and not browser.find_elements(
                    By.CSS_SELECTOR, "button.destroy") and "Condor Cloud" not in shown, shown[:2000]
                browser.switch_to.default_content()
            # alice was logged in all along (the attacks even carried her cookie from the same-site origin).
            browser.get(BASE + "/api/instances")
            assert browser.find_element(By.ID, "username").text == "alice"
            assert "csrf-target" in browser.find_element(By.TAG_NAME, "body").text
        finally:
            browser.quit()

    try:
        in_netns(pool, scenario)
    finally:
        for site in sites:
            site.close()
    # Through the API: nothing was launched, the target was not destroyed.
    instances = json.loads(http(pool, "GET", "/api/instances", "alice")[2])["instances"]
    assert [i["name"] for i in instances] == ["csrf-target"], instances
    assert instances[0]["state"] in ("PENDING", "RUNNING")
    jobs = pool.run(["condor_q", "-allusers", "-af", "Cmd"], check=False).stdout
    assert "csrf-launch" not in jobs, jobs
    assert http(pool, "DELETE", "/api/instances/" + target, "alice")[0] == 204
