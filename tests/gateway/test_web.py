"""The web run browser: token login (cookie session), isolation, files, live events; a real headless Chromium."""

from __future__ import annotations

import base64
import io
import os
import shutil
import time
import zipfile
from pathlib import Path

import pytest
from gw_support import ALICE, BOB, TOKENS, tiny_spec
from starlette.testclient import TestClient

from spiker_api.v1 import gateway_pb2
from spiker_gateway.auth import TokenAuth
from spiker_gateway.client import GatewayClient
from spiker_gateway.web import start_web
from spiker_gateway.web.app import create_app

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def _login(client: TestClient, token: str) -> None:
    r = client.post("/login", data={"token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/runs", r.text


def test_login_sessions_and_isolation(offline_gateway, tmp_path) -> None:  # noqa: ANN001
    with GatewayClient(offline_gateway.target, ALICE) as alice:
        run_id = alice.submit(tiny_spec()).run_id  # fails fast (no services), but it is alice's run
        alice.wait(run_id, timeout=60)
    token_file = tmp_path / "tokens"
    token_file.write_text("".join(f"{token} {user}\n" for token, user in TOKENS.items()))
    auth = TokenAuth(TOKENS, token_file, env={})
    app = create_app(offline_gateway.manager, auth, offline_gateway.manager.store)
    with TestClient(app, base_url="http://127.0.0.1") as anon:
        r = anon.get("/runs", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login"
        assert anon.get(f"/api/runs/{run_id}/events").status_code == 401
        r = anon.post("/login", data={"token": "tok-nobody-0123456789-0123456789-xx"})
        assert r.status_code == 401 and "unknown token" in r.text
        assert "spiker_session" not in anon.cookies
    with TestClient(app, base_url="http://127.0.0.1") as web:
        _login(web, ALICE)
        cookie = web.cookies["spiker_session"]
        payload = base64.b64decode(cookie.split(".")[0] + "==").decode()
        assert "sid" in payload and ALICE not in payload  # the cookie carries a session id, not the token
        page = web.get("/runs")
        assert page.status_code == 200 and run_id in page.text and "failed" in page.text
        page = web.get(f"/runs/{run_id}")
        assert page.status_code == 200 and "Progress log" in page.text
        events = web.get(f"/api/runs/{run_id}/events").json()
        assert events["final"] and events["state"] == "failed" and any("queued" in ln for ln in events["lines"])
        assert web.get(f"/api/runs/{run_id}/events?after={events['next']}").json()["lines"] == []
        assert web.get(f"/runs/{run_id}/files/record").json()["owner"] == "alice"
        assert web.get(f"/runs/{run_id}/files/tokens").status_code == 404
        assert web.get(f"/runs/{run_id}/files/..%2F..%2Fetc%2Fpasswd").status_code == 404
        r = web.post(f"/runs/{run_id}/cancel", follow_redirects=False)  # already final: nothing to stop
        assert r.status_code == 303 and r.headers["location"] == f"/runs/{run_id}"
        web.post("/logout")
        assert web.get("/runs", follow_redirects=False).status_code == 303
        web.cookies.set("spiker_session", cookie)  # the old cookie after logout: no session
        assert web.get("/runs", follow_redirects=False).status_code == 303
    with TestClient(app, base_url="http://127.0.0.1") as bob:
        _login(bob, BOB)
        assert run_id not in bob.get("/runs").text
        for path in (f"/runs/{run_id}", f"/runs/{run_id}/files/record", f"/runs/{run_id}/vhdl.zip",
                     f"/api/runs/{run_id}/events"):
            assert bob.get(path).status_code == 404, path
        assert bob.post(f"/runs/{run_id}/cancel").status_code == 404
    with TestClient(app, base_url="http://127.0.0.1") as revoked:
        _login(revoked, ALICE)
        assert revoked.get("/runs", follow_redirects=False).status_code == 200
        token_file.write_text(f"{BOB} bob\n")  # alice's token is revoked, the gateway re-reads the file
        assert auth.reload()
        r = revoked.get("/runs", follow_redirects=False)  # the same app and session: logged out
        assert r.status_code == 303 and r.headers["location"] == "/login"


def _finished_download(folder: Path, pattern: str, timeout: float) -> Path:
    """The one file matching `pattern` once Chromium has finished writing it.

    Chromium reserves the final name with an empty file while it writes to a
    ``.crdownload`` beside it, so the name alone does not mean the bytes are there.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list(folder.glob(pattern))
        if len(found) == 1 and not list(folder.glob("*.crdownload")) and zipfile.is_zipfile(found[0]):
            return found[0]
        time.sleep(0.2)
    left = sorted(p.name for p in folder.iterdir())
    raise AssertionError(f"no finished download matching {pattern} in {timeout:.0f} s: {left}")


@pytest.mark.slow
@pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver (setup.sh)")
def test_browser_login_run_page_plot_and_vhdl_zip(finished_runs, session_store, tmp_path: Path) -> None:  # noqa: ANN001
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    gw, alice_run, bob_run = finished_runs
    web = start_web(gw.manager, TokenAuth(TOKENS), session_store, port=0)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,1700", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        driver.set_page_load_timeout(60)
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
        wait = WebDriverWait(driver, 30)
        driver.get(f"{web.url}/runs")
        wait.until(ec.presence_of_element_located((By.ID, "token"))).send_keys(ALICE)
        driver.find_element(By.ID, "login").click()
        table = wait.until(ec.presence_of_element_located((By.ID, "runs")))
        assert alice_run in table.text and bob_run not in table.text and "succeeded" in table.text
        driver.find_element(By.LINK_TEXT, alice_run).click()
        wait.until(ec.presence_of_element_located((By.ID, "report")))
        plot = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "img.plot")))
        wait.until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", plot))
        assert driver.execute_script("return arguments[0].naturalWidth", plot) > 0
        wait.until(lambda d: "succeeded" in d.find_element(By.ID, "progress").get_attribute("textContent"))  # polled
        assert "mismatches" in driver.find_element(By.ID, "report").text
        sweep = driver.find_element(By.ID, "sweep")
        assert "weights_bw" in sweep.text and len(sweep.find_elements(By.CSS_SELECTOR, "tbody tr")) >= 2
        assert len(driver.find_elements(By.CSS_SELECTOR, "img.plot")) == 2  # training and pareto
        shot = Path(os.environ.get("SPIKER_WEB_SCREENSHOT", tmp_path / "run-page.png"))
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        driver.find_element(By.ID, "vhdl-zip").click()
        archive = _finished_download(downloads, "*.zip", timeout=30)
        with zipfile.ZipFile(io.BytesIO(archive.read_bytes())) as zf:
            names = zf.namelist()
            order = zf.read(f"{alice_run}/vhdl/files.txt").decode().split()
        assert order and all(f"{alice_run}/vhdl/{n}" in names for n in order)
        driver.find_element(By.LINK_TEXT, order[-1]).click()  # browse one VHDL file
        assert "entity" in wait.until(ec.presence_of_element_located((By.ID, "code"))).text.lower()
        driver.get(f"{web.url}/runs/{bob_run}")
        assert "no such run" in driver.page_source
    finally:
        driver.quit()
        web.stop()


@pytest.mark.slow
def test_cancel_a_running_run_from_the_page(finished_runs, session_store) -> None:  # noqa: ANN001
    from gw_support import tiny_npz, wait_for

    gw = finished_runs[0]
    with GatewayClient(gw.target, ALICE) as alice:
        ref = alice.upload_bytes(tiny_npz(), "tiny.npz")
        run_id = alice.submit(tiny_spec(ref.sha256, name="long", train={"epochs": 1000}), no_cache=True).run_id
        app = create_app(gw.manager, TokenAuth(TOKENS), session_store)
        with TestClient(app, base_url="http://127.0.0.1") as web:
            _login(web, ALICE)
            wait_for(lambda: "epoch" in " ".join(web.get(f"/api/runs/{run_id}/events").json()["lines"]), 120,
                     "training to report epochs")
            assert 'id="cancel"' in web.get(f"/runs/{run_id}").text
            r = web.post(f"/runs/{run_id}/cancel", follow_redirects=False)
            assert r.status_code == 303
            events = web.get(f"/api/runs/{run_id}/events").json()
            assert events["state"] == "cancelled" and events["final"], events["state"]
            assert 'id="cancel"' not in web.get(f"/runs/{run_id}").text
        assert alice.get(run_id).state == gateway_pb2.RUN_STATE_CANCELLED  # seen through gRPC too


def test_the_browser_serves_https_with_a_secure_cookie_given_the_gateway_pair(offline_gateway, tmp_path) -> None:  # noqa: ANN001
    """With the gateway's TLS pair the browser is HTTPS and its session cookie is Secure."""
    import shutil
    import ssl
    import subprocess
    import urllib.parse
    import urllib.request

    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    web = start_web(offline_gateway.manager, TokenAuth(TOKENS), offline_gateway.manager.store, port=0,
                    certfile=str(cert), keyfile=str(key))
    try:
        assert web.url.startswith("https://")
        ctx = ssl.create_default_context(cafile=str(cert))
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx),
                                             type("NoRedirect", (urllib.request.HTTPRedirectHandler,),
                                                  {"redirect_request": lambda *a, **k: None}))
        data = urllib.parse.urlencode({"token": ALICE}).encode()
        try:
            resp = opener.open(f"{web.url}/login", data=data, timeout=30)
        except urllib.error.HTTPError as exc:  # the 303 after login
            resp = exc
        cookie = resp.headers.get("set-cookie", "")
        assert "spiker_session=" in cookie and "secure" in cookie.lower()
    finally:
        web.stop()
