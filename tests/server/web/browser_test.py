#!/usr/bin/python3
"""The web pages in a real browser: headless Chromium (chromium-driver, python3-selenium)
against a real mgreg-server holding the real tfx checkpoint of ../shared/testdata/tf.

Loads each page, checks the visible text and the loss plot's points, sees a new step
appear on the events page after a push without a reload, and saves screenshots under
the build folder (BROWSER_SHOTS, default build/tests/server/web/screenshots).

Usage: browser_test.py BIN_DIR   (holds server/mgreg-server and client/mgreg)
Exits 0 on success, 1 on a failed check, 77 (skipped) without test data or browser.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

TFX = "tfx/tfx/components/testdata/trainer/current/Format-Serving/model.ckpt-1000"
LOSSES = {1000: "0.9", 2000: "0.55", 3000: "0.35", 4000: "0.3"}


def fail(message):
    print("FAIL:", message, flush=True)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)
    print("ok:", message, flush=True)


def main():
    bin_dir = os.path.abspath(sys.argv[1])
    testdata = os.environ.get("MGREG_TESTDATA", os.path.join(
        os.path.dirname(__file__), "..", "..", "..", "shared", "testdata", "tf"))
    prefix = os.path.join(testdata, TFX)
    if not os.path.exists(prefix + ".index"):
        print("SKIP: TensorFlow test data not found: set MGREG_TESTDATA")
        return 77
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait
    except ImportError:
        print("SKIP: python3-selenium is not installed (scripts/install-deps.sh test)")
        return 77
    if not shutil.which("chromedriver") or not shutil.which("chromium"):
        print("SKIP: chromium / chromium-driver not installed (scripts/install-deps.sh test)")
        return 77
    shots = os.environ.get("BROWSER_SHOTS", os.path.join(bin_dir, "tests", "web", "screenshots"))
    os.makedirs(shots, exist_ok=True)

    server = subprocess.Popen(
        [os.path.join(bin_dir, "server", "mgreg-server"), "--in-memory",
         "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, text=True)
    driver = None
    try:
        line = server.stdout.readline()
        m = re.search(r"listening on (\S+) .*metrics on http://([^/]+)/metrics", line)
        if not m:
            fail("no ready line from mgreg-server: %r" % line)
        grpc_address, http_address = m.group(1), m.group(2)
        base = "http://" + http_address
        cli = os.path.join(bin_dir, "client", "mgreg")

        def push(model, step, *meta):
            args = [cli, "--server", grpc_address, "push", model, prefix, "--step", str(step)]
            for kv in meta:
                args += ["--meta", kv]
            subprocess.run(args, check=True, stdout=subprocess.DEVNULL)

        for step, loss in sorted(LOSSES.items())[:3]:
            push("team-a/resnet", step, "loss=" + loss, "accuracy=%.2f" % (1 - float(loss) / 2))
        push("team-a/resnet", 3500, "loss=0.33", "note=<script>alert(1)</script>")
        push("team-b/bert", 10, "loss=2.5")
        subprocess.run([cli, "--server", grpc_address, "alias", "set", "team-a/resnet",
                        "production", "2000"], check=True, stdout=subprocess.DEVNULL)

        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium")
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--window-size=1280,1400"):
            options.add_argument(arg)
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")),
                                  options=options)
        driver.set_page_load_timeout(60)
        wait = WebDriverWait(driver, 30)

        def console_errors():
            try:
                return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            except Exception:  # not every driver keeps the log
                return []

        # Models.
        driver.get(base + "/")
        table = driver.find_element(By.ID, "models")
        text = table.text
        check("team-a/resnet" in text and "team-b/bert" in text, "models page lists both models")
        check("production → 2000" in text, "models page shows the alias")
        check("ago" in text and "UTC" in text, "models page shows relative and absolute times")
        driver.save_screenshot(os.path.join(shots, "models.png"))
        driver.find_element(By.NAME, "prefix").send_keys("team-b/")
        driver.find_element(By.CSS_SELECTOR, "form.filter button").click()
        wait.until(lambda d: "prefix=team-b" in d.current_url)
        text = driver.find_element(By.ID, "models").text
        check("team-b/bert" in text and "team-a/resnet" not in text, "prefix filter in the browser")

        # A model: steps newest first, the loss plot's points, escaping.
        driver.get(base + "/model?name=team-a/resnet")
        rows = driver.find_elements(By.CSS_SELECTOR, "#steps tbody tr")
        steps = [int(r.get_attribute("data-step")) for r in rows]
        check(steps == [3500, 3000, 2000, 1000], "model page lists steps newest first: %s" % steps)
        check("<script>alert(1)</script>" in driver.find_element(By.ID, "steps").text,
              "a metadata value with markup is shown as text")
        check(driver.execute_script("return typeof window.alerted") == "undefined" and
              len(driver.find_elements(By.XPATH, "//script[not(@src)]")) == 0,
              "no inline script on the page")
        loss_plot = driver.find_element(By.CSS_SELECTOR, "svg.plot[data-title='loss']")
        points = [(int(c.get_attribute("data-step")), c.get_attribute("data-value"))
                  for c in loss_plot.find_elements(By.CSS_SELECTOR, "circle.pt")]
        expected = [(1000, "0.9"), (2000, "0.55"), (3000, "0.35"), (3500, "0.33")]
        check(points == expected, "loss plot points %s" % points)
        ys = {int(c.get_attribute("data-step")): float(c.get_attribute("cy"))
              for c in loss_plot.find_elements(By.CSS_SELECTOR, "circle.pt")}
        check(ys[1000] < ys[2000] < ys[3000] < ys[3500], "lower loss is drawn lower: %s" % ys)
        check(len(driver.find_elements(By.CSS_SELECTOR, "svg.plot[data-title='accuracy']")) == 1,
              "accuracy is plotted too")
        check(len(driver.find_elements(By.CSS_SELECTOR, "svg.plot[data-title='step size']")) == 1,
              "step size is plotted")
        check("keeps every step" in driver.find_element(By.ID, "retention").text,
              "retention policy shown")
        driver.save_screenshot(os.path.join(shots, "model.png"))

        # A step: files, tensors, graph summary, downloads.
        driver.get(base + "/step?model=team-a/resnet&step=2000")
        check(driver.find_element(By.ID, "step-title").text == "Step 2000", "step page title")
        check("model.ckpt-2000.meta" in driver.find_element(By.ID, "files").text,
              "step page lists the files")
        check(driver.find_element(By.ID, "node-count").text == "2502", "graph summary: 2502 nodes")
        check(len(driver.find_elements(By.CSS_SELECTOR, "#tensors tbody tr")) == 60,
              "60 tensors from the .index")
        check("production" in driver.find_element(By.TAG_NAME, "main").text, "alias shown")
        href = driver.find_element(By.ID, "download-meta").get_attribute("href")
        check("/file?" in href and "name=meta" in href, "download link of the stored .meta")
        driver.save_screenshot(os.path.join(shots, "step.png"))

        # Events: a push appears without a reload.
        driver.get(base + "/events")
        marker = driver.execute_script("window.sameDocument = 42; return window.sameDocument")
        before = driver.find_element(By.ID, "revision").text
        check("team-b/bert" in driver.find_element(By.ID, "events").text, "recent events shown")
        push("team-a/resnet", 4000, "loss=" + LOSSES[4000])
        wait.until(lambda d: any("4000" in r.text
                                 for r in d.find_elements(By.CSS_SELECTOR, "#events tbody tr")))
        check(driver.execute_script("return window.sameDocument") == marker,
              "the new step appeared without a reload")
        check(driver.find_element(By.ID, "revision").text != before, "the revision moved on")
        driver.save_screenshot(os.path.join(shots, "events.png"))

        errors = console_errors()
        check(not errors, "no errors in the browser console (CSP included): %s" % errors)
        print("browser_test: all checks passed; screenshots in", shots)
        return 0
    finally:
        if driver is not None:
            driver.quit()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    sys.exit(main())
