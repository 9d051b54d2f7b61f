#!/usr/bin/python3
"""The dashboard with a large fleet, in headless Chromium: first render, and responsiveness under a stream of changes.

    scripts/bench-dashboard.py [--devices 100000] [--rate 1000] [--seconds 10] [--bin DIR]

1. Seeds DEVICES status-topic devices into a data directory (devstatusd-bench seed), starts mosquitto and devstatusd
   (release build) on free ports, and waits until the fleet index answers.
2. Opens the dashboard: first render = when the first page of rows is in the document, in milliseconds since the
   page was requested (the page's own `performance.now()`, whose origin is the navigation start), over RUNS loads.
3. Publishes RATE status changes per second (Connect/Disconnect alternating, each a transition) for SECONDS, over
   5,000 devices including the 100 on screen, through a raw MQTT 3.1.1 connection paced every millisecond, while the
   page measures: long tasks (PerformanceObserver `longtask`, > 50 ms), timer lag (a 20 ms interval's lateness: how
   long input would wait), event-to-DOM latency (the event's daemon time to the moment its row or counts were
   updated), and events received. A click on a device during the stream measures how soon its panel opens.

Needs mosquitto, chromium, chromium-driver and python3-selenium (`make test-deps`), and `swift build -c release`.
"""

import argparse
import os
import socket
import statistics
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Browser"))
import harness  # noqa: E402
from harness import wait_until  # noqa: E402

from selenium.webdriver.common.by import By  # noqa: E402


class RawPublisher:
    """Just enough MQTT 3.1.1 to publish QoS 0 messages fast: CONNECT, then PUBLISH packets."""

    def __init__(self, port):
        self.socket = socket.create_connection(("127.0.0.1", port))
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client = b"bench-dashboard"
        variable = b"\x00\x04MQTT\x04\x02\x00\x3c" + struct.pack("!H", len(client)) + client
        self.socket.sendall(b"\x10" + self.length(len(variable)) + variable)
        connack = self.socket.recv(4)
        assert connack[:1] == b"\x20" and connack[3:4] == b"\x00", connack

    @staticmethod
    def length(n):
        out = b""
        while True:
            byte = n % 128
            n //= 128
            out += bytes([byte | (0x80 if n else 0)])
            if not n:
                return out

    def packet(self, topic, payload):
        topic = topic.encode()
        body = struct.pack("!H", len(topic)) + topic + payload.encode()
        return b"\x30" + self.length(len(body)) + body

    def send(self, data):
        self.socket.sendall(data)

    def close(self):
        self.socket.sendall(b"\xe0\x00")
        self.socket.close()


def mon(action, milliseconds, type_, id_):
    seconds, millis = divmod(milliseconds, 1000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"
    return (f'{{"ClientAddr":"10.0.0.7","Protocol":"mqtt4","Secure":false,"Durable":false,'
            f'"ClientID":"d:bench:{type_}:{id_}","Time":"{stamp}","Action":"{action}"}}')


def percentile(values, fraction):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


MEASURE = """
window.bench = { longTasks: [], lags: [] };
new PerformanceObserver(list => { for (const e of list.getEntries()) window.bench.longTasks.push(e.duration); })
  .observe({ type: 'longtask', buffered: false });
let expected = performance.now() + 20;
window.bench.timer = setInterval(() => {
  const now = performance.now();
  window.bench.lags.push(Math.max(0, now - expected));
  expected = now + 20;
}, 20);
window.dashboardStats.latencies.length = 0;
window.dashboardStats.events = 0;
window.dashboardStats.longestEvent = 0;
window.dashboardStats.longestPage = 0;
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--bin", default=None)
    options = parser.parse_args()
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    binaries = options.bin or subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=root,
                                             capture_output=True, text=True, check=True).stdout.strip()
    directory = harness.temporary_directory("bench-dashboard.")
    broker = daemon = driver = None
    try:
        started = time.monotonic()
        subprocess.run([os.path.join(binaries, "devstatusd-bench"), "seed", os.path.join(directory, "data"),
                        "--devices", str(options.devices), "--http-names"], check=True, stdout=subprocess.DEVNULL)
        print(f"seeded {options.devices} devices in {time.monotonic() - started:.1f} s")
        broker = harness.Broker(directory)
        daemon = harness.Daemon(os.path.join(binaries, "devstatusd"), directory, broker.url, "[http]\nthreads = 1\n")
        started = time.monotonic()
        total = daemon.json("/devices?limit=1")["total"]
        assert total == options.devices, total
        print(f"daemon ready; fleet index answered {time.monotonic() - started:.2f} s after readiness")

        driver = harness.browser()
        renders = []
        for _ in range(options.runs):
            driver.get("about:blank")
            driver.get(daemon.url("/"))
            wait_until(lambda: driver.execute_script("return window.dashboardStats && window.dashboardStats.firstRender"),
                       10, "the first page of rows")
            navigation = driver.execute_script(
                "const n = performance.getEntriesByType('navigation')[0]; return [n.responseEnd, n.domContentLoadedEventEnd];")
            renders.append((driver.execute_script("return window.dashboardStats.firstRender"), *navigation))
        rows = driver.execute_script("return document.querySelectorAll('#rows tr').length")
        print(f"first render of {rows} rows of {options.devices} devices, ms after the page request "
              f"(median of {options.runs}): {statistics.median(r[0] for r in renders):.0f} "
              f"(max {max(r[0] for r in renders):.0f}; HTML received {statistics.median(r[1] for r in renders):.0f}, "
              f"DOM ready {statistics.median(r[2] for r in renders):.0f})   target < 1000")
        wait_until(lambda: "on" in driver.find_element(By.ID, "live").text, 10, "live updates on")

        # The devices on screen, and others, taking turns; each message flips its device (a transition).
        on_screen = [(d["type"], d["id"]) for d in daemon.json("/devices?limit=100")["devices"]]
        rotation = on_screen + [(f"type{n % 10}", f"dev{n}") for n in range(0, options.devices, max(1, options.devices // 4900))]
        rotation = list(dict.fromkeys(rotation))
        flips = {}
        publisher = RawPublisher(broker.port)
        driver.execute_script(MEASURE)
        count = options.rate * options.seconds
        interval = 1.0 / options.rate
        print(f"publishing {count} status changes at {options.rate}/s over {len(rotation)} devices "
              f"({len(on_screen)} on screen)")
        begin = time.monotonic()
        click_latency = None
        for n in range(count):
            type_, id_ = rotation[n % len(rotation)]
            flips[(type_, id_)] = flips.get((type_, id_), 0) + 1
            action = "Connect" if flips[(type_, id_)] % 2 else "Disconnect"
            publisher.send(publisher.packet(f"iot-2/type/{type_}/id/{id_}/mon",
                                            mon(action, int(time.time() * 1000), type_, id_)))
            due = begin + (n + 1) * interval
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            if n == count // 2 and click_latency is None:
                # Halfway: open a device's panel and time it (the page's own clock).
                click_latency = driver.execute_script("""
                    const t0 = performance.now();
                    document.querySelector('#rows tr button.device').click();
                    return new Promise(resolve => {
                      const check = () => document.querySelectorAll('#panel-history tr').length
                        ? resolve(performance.now() - t0) : setTimeout(check, 5);
                      check();
                    });""")
        elapsed = time.monotonic() - begin
        publisher.close()
        wait_until(lambda: driver.execute_script("return window.dashboardStats.events") >= count * 0.999, 30,
                   "the events to arrive")
        results = driver.execute_script(
            "clearInterval(window.bench.timer); return [window.bench.longTasks, window.bench.lags, "
            "window.dashboardStats.latencies, window.dashboardStats.events, window.dashboardStats.longestEvent, "
            "window.dashboardStats.longestPage];")
        long_tasks, lags, latencies, events, longest_event, longest_page = results
        print(f"sent {count} in {elapsed:.2f} s ({count / elapsed:.0f}/s); the page received {events} events")
        print(f"event → DOM latency (daemon's event time to the row and counts updated), ms: "
              f"p50 {percentile(latencies, 0.5):.0f}  p99 {percentile(latencies, 0.99):.0f}  max {max(latencies):.0f}")
        print(f"long tasks (> 50 ms) while streaming: {len(long_tasks)}"
              + (f", longest {max(long_tasks):.0f} ms, {sum(long_tasks):.0f} ms in all" if long_tasks else ""))
        print(f"the dashboard's own work: longest event handled in {longest_event:.1f} ms, longest page shown in "
              f"{longest_page:.1f} ms")
        print(f"timer lag (20 ms interval), ms: p50 {percentile(lags, 0.5):.1f}  p99 {percentile(lags, 0.99):.1f}  "
              f"max {max(lags):.1f}")
        print(f"click on a device → its panel with history shown: {click_latency:.0f} ms")
        counts = driver.execute_script("""
            const c = {}; for (const b of document.querySelectorAll('#counts button')) if (b.dataset.status)
              c[b.dataset.status] = Number(b.querySelector('.number').textContent.replace(/,/g, '')); return c;""")
        wait_until(lambda: driver.execute_script("""
            const c = {}; for (const b of document.querySelectorAll('#counts button')) if (b.dataset.status)
              c[b.dataset.status] = Number(b.querySelector('.number').textContent.replace(/,/g, '')); return c;""")
                   == daemon.json("/devices?limit=1")["counts"], 5, "the counts to settle on the daemon's")
        print(f"counts on the page after the stream equal the daemon's: {counts}")
    finally:
        if driver:
            driver.quit()
        if daemon:
            daemon.stop()
        if broker:
            broker.stop()
        subprocess.run(["rm", "-rf", directory])


if __name__ == "__main__":
    main()
