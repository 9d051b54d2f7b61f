#!/usr/bin/python3
"""The dashboard in a real browser: headless Chromium against a real devstatusd and a real mosquitto.

    /usr/bin/python3 Tests/Browser/dashboard_test.py PATH/TO/devstatusd [--screenshots DIR]

Each check waits for what it expects (a row, a text, an event), never for a fixed time. The screenshots the README
shows (docs/dashboard*.png) are taken here. Exit status 1 when a check fails.
"""

import datetime
import os
import shutil
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import wait_until  # noqa: E402

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

CONFIG = """
[device_esp04]
watchTimeOut = 300
watchTopics = "home/esp04/#"

[agent_sleeper]
exec = "sleep 600"
watchTopics = "home/agents/sleeper/#"

[[presence]]
preset = "tasmota"

[[presence]]
preset = "zigbee2mqtt"
type = "z2m"
"""

SCRIPT_ID = "<script>alert(1)"
IMG_ID = "<img src=x onerror=window.pwned=1>"


def ago(minutes):
    """RFC 3339 time `minutes` before now."""
    moment = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=minutes)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def mon(action, time_text, type_, id_):
    return ('{"ClientAddr":"10.0.0.7","Protocol":"mqtt4","Secure":false,"Durable":false,'
            f'"ClientID":"d:org1:{type_}:{id_}","Time":"{time_text}","Action":"{action}"'
            + (',"CloseCode":91,"Reason":"The connection was closed by the client."' if action == "Disconnect" else "")
            + "}")


# type, id, action, minute of its Time: every status-topic device of the fleet.
MON_DEVICES = [
    ("meter", "m01", "Connect", 1), ("meter", "m02", "Connect", 2), ("meter", "m03", "Connect", 3),
    ("meter", "m04", "Connect", 4), ("meter", "m05", "Disconnect", 5), ("meter", "m06", "Disconnect", 6),
    ("valve", "v01", "Connect", 7), ("valve", "v02", "Disconnect", 8),
    ("meter", SCRIPT_ID, "Connect", 9), ("meter", IMG_ID, "Connect", 10),
]


class Fixture:
    def __init__(self, binary, screenshots):
        self.screenshots = screenshots
        self.directory = harness.temporary_directory("devstatusd-browser.")
        self.broker = harness.Broker(self.directory)
        for type_, id_, action, minute in MON_DEVICES:
            self.broker.publish(f"iot-2/type/{type_}/id/{id_}/mon", mon(action, ago(60 - minute), type_, id_),
                                retain=True)
        self.broker.publish("tele/plug1/LWT", "Online", retain=True)
        self.broker.publish("tele/plug2/LWT", "Offline", retain=True)
        self.broker.publish("zigbee2mqtt/living room/lamp/availability", '{"state":"online"}', retain=True)
        self.daemon = harness.Daemon(binary, self.directory, self.broker.url, CONFIG)
        self.broker.publish("home/esp04/sensors/temperature", "21.5")
        self.agent_pid = None
        self.driver = harness.browser()

    def close(self, keep=False):
        try:
            self.driver.quit()
        finally:
            # The agent outlives the daemon by design (a restarted daemon adopts it): stop the one this test started.
            pid = self.agent_pid
            try:
                view = self.daemon.json("/devices/agent/sleeper")
                pid = (view.get("agent") or {}).get("pid") or pid
            except Exception:
                pass
            self.daemon.stop()
            self.broker.stop()
            if pid:
                try:
                    os.killpg(pid, 15)
                except ProcessLookupError:
                    pass
            if not keep:
                shutil.rmtree(self.directory, ignore_errors=True)

    # ---- page helpers ----

    def open(self):
        self.driver.get(self.daemon.url("/"))
        wait_until(lambda: self.rows(), 10, "the first rows")

    def rows(self):
        """The table's rows as (type/id, status, source)."""
        return self.driver.execute_script("""
            return Array.from(document.querySelectorAll('#rows tr')).map(tr => [
              tr.querySelector('th .type').textContent + '/' + tr.querySelector('th .id').textContent,
              tr.querySelector('.status').textContent, tr.children[2].textContent]);""")

    def keys(self):
        return [row[0] for row in self.rows()]

    def counts(self):
        return self.driver.execute_script("""
            const counts = {};
            for (const b of document.querySelectorAll('#counts button')) {
              if (b.dataset.status) counts[b.dataset.status] = Number(b.querySelector('.number').textContent.replace(/,/g, ''));
            }
            return counts;""")

    def api_counts(self, query=""):
        return self.daemon.json("/devices?limit=1" + query)["counts"]

    def api_keys(self, query):
        page = self.daemon.json("/devices?limit=100&" + query)
        return [d["type"] + "/" + d["id"] for d in page["devices"]]

    def screenshot(self, name):
        if self.screenshots:
            os.makedirs(self.screenshots, exist_ok=True)
            self.driver.save_screenshot(os.path.join(self.screenshots, name))

    def set_filter(self, element_id, value):
        Select(self.driver.find_element(By.ID, element_id)).select_by_value(value)

    def search(self, text):
        box = self.driver.find_element(By.ID, "q")
        box.clear()
        if text:
            box.send_keys(text)
        else:  # clear() sends no input event
            self.driver.execute_script("const q = document.getElementById('q'); q.dispatchEvent(new Event('input'));")


def contrast_failures(driver):
    """Text whose colour against the page background is below WCAG AA (4.5:1), as [selector, ratio]."""
    return driver.execute_script("""
        function rgb(text) { return text.match(/[\\d.]+/g).slice(0, 3).map(Number); }
        function luminance([r, g, b]) {
          const c = [r, g, b].map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
          return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
        }
        const background = luminance(rgb(getComputedStyle(document.body).backgroundColor));
        const failures = [];
        for (const selector of ['body', 'h1', '.scope', '#caption', 'thead th', 'button.device', '.device .type',
                                '.status.online', '.status.offline', '.status.unknown', 'time', '.pill',
                                '.count-online .number', '.count-offline .number', '.count-unknown .number',
                                '.filters label']) {
          for (const node of document.querySelectorAll(selector)) {
            const l = luminance(rgb(getComputedStyle(node).color));
            const ratio = (Math.max(l, background) + 0.05) / (Math.min(l, background) + 0.05);
            if (ratio < 4.5) failures.push([selector, Math.round(ratio * 100) / 100]);
            break;
          }
        }
        return failures;""")


# ---- checks ----

def shows_every_source_with_the_fleets_counts(f):
    f.open()
    # The status topics' source is named `mon`.
    mon_source = "mon"
    expected = {
        "meter/m01": ("online", mon_source), "meter/m05": ("offline", mon_source),
        "valve/v02": ("offline", mon_source),
        "device/esp04": ("online", "watchdog"), "agent/sleeper": ("unknown", "watchdog"),
        "tasmota/plug1": ("online", "tasmota"), "tasmota/plug2": ("offline", "tasmota"),
        "z2m/living room/lamp": ("online", "zigbee2mqtt"),
    }

    def all_there():
        rows = {key: (status, source) for key, status, source in f.rows()}
        return all(rows.get(key) == value for key, value in expected.items()) and rows

    rows = wait_until(all_there, 10, f"rows {expected}")
    assert len(rows) == len(MON_DEVICES) + 5, rows
    wait_until(lambda: f.counts() == f.api_counts(), 5, "the counts the daemon gives")
    counts = f.counts()
    assert counts["online"] == 10 and counts["offline"] == 4 and counts["unknown"] == 1, counts
    f.screenshot("dashboard.png")


def renders_an_id_holding_markup_as_text(f):
    keys = f.keys()
    assert "meter/" + SCRIPT_ID in keys and "meter/" + IMG_ID in keys, keys
    assert f.driver.execute_script("return document.querySelectorAll('#rows img, #rows script').length") == 0
    assert f.driver.execute_script("return window.pwned === undefined")
    ids = f.driver.execute_script("return Array.from(document.querySelectorAll('#rows .id')).map(e => e.textContent)")
    assert SCRIPT_ID in ids and IMG_ID in ids


def searches_type_slash_id(f):
    f.search("M0")
    wait_until(lambda: f.keys() == f.api_keys("q=M0") and len(f.keys()) == 6, 5, "the rows of q=M0")
    f.search("r/<scr")
    wait_until(lambda: f.keys() == ["meter/" + SCRIPT_ID], 5, "the row of q=r/<scr")
    f.search("")
    wait_until(lambda: len(f.keys()) == len(MON_DEVICES) + 5, 5, "every row again")


def filters_by_status_and_type(f):
    f.set_filter("status", "offline")
    wait_until(lambda: f.rows() and all(status == "offline" for _, status, _ in f.rows())
               and f.keys() == f.api_keys("status=offline"), 5, "offline rows only")
    options = f.driver.execute_script(
        "return Array.from(document.querySelectorAll('#type option')).map(o => o.value)")
    assert options == ["", "agent", "device", "meter", "tasmota", "valve", "z2m"], options
    f.set_filter("type", "valve")
    wait_until(lambda: f.keys() == ["valve/v02"], 5, "offline valves")
    assert "of type valve" in f.driver.find_element(By.ID, "counts-scope").text
    f.set_filter("status", "")
    f.set_filter("type", "")
    wait_until(lambda: len(f.keys()) == len(MON_DEVICES) + 5, 5, "every row again")
    # A count is a filter too.
    f.driver.find_element(By.CSS_SELECTOR, "#counts button[data-status='unknown']").click()
    wait_until(lambda: f.keys() == ["agent/sleeper"], 5, "the unknown device")
    f.driver.find_element(By.CSS_SELECTOR, "#counts button[data-status='unknown']").click()
    wait_until(lambda: len(f.keys()) == len(MON_DEVICES) + 5, 5, "every row again")


def sorts_by_key_last_seen_and_since(f):
    assert f.keys() == f.api_keys("sort=key") == sorted(f.keys(), key=lambda k: k.encode())
    for sort in ["lastSeen", "since"]:
        f.set_filter("sort", sort)
        wait_until(lambda: f.keys() == f.api_keys("sort=" + sort), 5, f"rows by {sort}")
    # Newest first: the watched device and the presence devices spoke just now, the status-topic devices within the
    # last hour.
    assert f.keys()[0] in ("device/esp04", "tasmota/plug1", "tasmota/plug2", "z2m/living room/lamp"), f.keys()
    order = f.keys()
    assert order.index("valve/v02") < order.index("meter/m05") < order.index("meter/m01"), order
    f.set_filter("sort", "key")
    wait_until(lambda: f.keys() == f.api_keys("sort=key"), 5, "rows by key")


def shows_a_status_change_live_within_a_second(f):
    f.driver.execute_script("window.reloadMarker = 'same page';")
    f.driver.execute_script("""
        window.changedAt = null;
        const row = Array.from(document.querySelectorAll('#rows tr')).find(tr => tr.querySelector('th').textContent === 'meter/m02');
        const status = row.querySelector('.status');
        new MutationObserver(() => { if (status.textContent === 'offline' && !window.changedAt) window.changedAt = Date.now(); })
          .observe(status, {childList: true, characterData: true, subtree: true});""")
    online_before = f.counts()["online"]
    sent = time.time()
    f.broker.publish("iot-2/type/meter/id/m02/mon", mon("Disconnect", ago(0), "meter", "m02"),
                     retain=True)
    changed = wait_until(lambda: f.driver.execute_script("return window.changedAt"), 5, "meter/m02 offline on the page")
    latency = changed / 1000 - sent
    print(f"    publish → row changed in the browser: {latency * 1000:.0f} ms")
    assert latency < 1.0, latency
    wait_until(lambda: f.counts()["online"] == online_before - 1 and f.counts() == f.api_counts(), 2,
               "the counts moved")
    assert f.driver.execute_script("return window.reloadMarker") == "same page"


def opens_the_device_panel_with_history(f):
    f.driver.find_element(By.XPATH, "//tr[th[normalize-space()='meter/m02']]//button").click()
    wait_until(lambda: f.driver.execute_script("return document.getElementById('panel').open"), 5, "the panel")
    history = wait_until(lambda: f.driver.execute_script(
        "return Array.from(document.querySelectorAll('#panel-history tr')).map(tr => tr.children[1].textContent)"),
        5, "history rows")
    assert history[0] == "online → offline" and history[-1] == "unknown → online", history
    facts = f.driver.find_element(By.ID, "panel-view").text
    assert "offline" in facts and f.daemon.json("/devices/meter/m02")["source"] in facts, facts
    assert "d:org1:meter:m02" in f.driver.find_element(By.ID, "panel-payload").text
    assert f.driver.find_element(By.ID, "panel-title").text == "meter/m02"
    f.screenshot("dashboard-panel.png")
    f.driver.find_element(By.ID, "panel-close").click()
    wait_until(lambda: not f.driver.execute_script("return document.getElementById('panel').open"), 5, "closed")
    # An id holding "/" is addressed with %2F: its panel reads the right device.
    f.driver.find_element(By.XPATH, "//tr[th[normalize-space()='z2m/living room/lamp']]//button").click()
    wait_until(lambda: "zigbee2mqtt" in f.driver.find_element(By.ID, "panel-view").text, 5, "the lamp's panel")
    f.driver.find_element(By.ID, "panel-close").click()


def follows_the_dark_colour_scheme(f):
    harness.emulate(f.driver, dark=True)
    background = wait_until(lambda: (lambda c: c if c == "rgb(13, 17, 23)" else None)(
        f.driver.execute_script("return getComputedStyle(document.body).backgroundColor")), 5, "a dark background")
    assert background == "rgb(13, 17, 23)"
    failures = contrast_failures(f.driver)
    assert not failures, f"below 4.5:1 in dark mode: {failures}"
    f.driver.execute_script("window.scrollTo(0, 0)")
    f.screenshot("dashboard-dark.png")
    harness.emulate(f.driver, dark=False)
    failures = contrast_failures(f.driver)
    assert not failures, f"below 4.5:1 in light mode: {failures}"


def fits_400_pixels_without_sideways_scrolling(f):
    harness.emulate(f.driver, width=400, height=860)
    wait_until(lambda: f.driver.execute_script("return window.innerWidth") == 400, 5, "a 400 px viewport")
    f.driver.execute_script("window.scrollTo(0, 0)")
    widths = f.driver.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1], f"scrollWidth {widths[0]} > clientWidth {widths[1]}"
    f.screenshot("dashboard-narrow.png")
    f.driver.find_element(By.XPATH, "//tr[th[normalize-space()='meter/m02']]//button").click()
    wait_until(lambda: f.driver.execute_script("return document.querySelectorAll('#panel-history tr').length"), 5,
               "the panel at 400 px")
    panel = f.driver.execute_script(
        "const p = document.getElementById('panel'); return [p.scrollWidth, p.clientWidth, p.getBoundingClientRect().right]")
    assert panel[0] <= panel[1] and panel[2] <= 400, panel
    f.driver.find_element(By.ID, "panel-close").click()
    f.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def catches_up_after_a_daemon_restart_without_reload(f):
    f.driver.execute_script("window.reloadMarker = 'before restart';")
    f.daemon.stop()
    wait_until(lambda: "reconnecting" in f.driver.find_element(By.ID, "live").text
               or "off" in f.driver.find_element(By.ID, "live").text, 10, "the page to see the daemon gone")
    f.broker.publish("iot-2/type/valve/id/v01/mon", mon("Disconnect", ago(0), "valve", "v01"),
                     retain=True)
    f.daemon.start()
    wait_until(lambda: dict((k, s) for k, s, _ in f.rows()).get("valve/v01") == "offline", 15,
               "valve/v01 offline after the restart")
    wait_until(lambda: f.driver.find_element(By.ID, "live").text == "Live updates: on", 10, "the stream back")
    # The stream works again: a change after the restart arrives live.
    f.broker.publish("iot-2/type/valve/id/v01/mon", mon("Connect", ago(-0.01), "valve", "v01"),
                     retain=True)
    wait_until(lambda: dict((k, s) for k, s, _ in f.rows()).get("valve/v01") == "online", 5, "valve/v01 online")
    assert f.driver.execute_script("return window.reloadMarker") == "before restart"


def loads_nothing_from_elsewhere(f):
    resources = f.driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name).concat([location.href])")
    foreign = [r for r in resources if not r.startswith(f.daemon.url("/"))]
    assert not foreign, foreign
    errors = [entry for entry in f.driver.get_log("browser") if entry["level"] == "SEVERE"
              and "/favicon" not in entry["message"] and "ERR_CONNECTION_REFUSED" not in entry["message"]
              and "net::ERR" not in entry["message"]]
    assert not errors, errors


CHECKS = [
    shows_every_source_with_the_fleets_counts,
    renders_an_id_holding_markup_as_text,
    searches_type_slash_id,
    filters_by_status_and_type,
    sorts_by_key_last_seen_and_since,
    shows_a_status_change_live_within_a_second,
    opens_the_device_panel_with_history,
    follows_the_dark_colour_scheme,
    fits_400_pixels_without_sideways_scrolling,
    catches_up_after_a_daemon_restart_without_reload,
    loads_nothing_from_elsewhere,
]


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    binary = sys.argv[1]
    screenshots = sys.argv[sys.argv.index("--screenshots") + 1] if "--screenshots" in sys.argv else None
    fixture = Fixture(binary, screenshots)
    failed = 0
    try:
        for check in CHECKS:
            started = time.monotonic()
            try:
                check(fixture)
                print(f"✔ {check.__name__} ({time.monotonic() - started:.1f} s)")
            except Exception:
                failed += 1
                print(f"✘ {check.__name__}")
                traceback.print_exc()
                fixture.driver.save_screenshot(os.path.join(fixture.directory, f"failed-{check.__name__}.png"))
    finally:
        if failed:
            print("daemon log (end):\n" + fixture.daemon.read_log())
            print(f"logs and screenshots of the failures kept in {fixture.directory}")
        fixture.close(keep=failed > 0)
    print(f"{len(CHECKS) - failed} of {len(CHECKS)} browser checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
