"""A real mosquitto, a real devstatusd and a headless Chromium, for the dashboard's browser tests and benchmark.

Everything runs on 127.0.0.1 on free ports, in a temporary directory removed at the end; every process started here
is stopped here (by its own pid). Needs Debian's mosquitto, mosquitto-clients, chromium, chromium-driver and
python3-selenium (`make browser-deps`).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout, what, interval=0.02):
    """Polls `condition` until it returns something true; fails naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class Broker:
    """mosquitto on a free port: `listener PORT 127.0.0.1`, anonymous, polled until it accepts."""

    def __init__(self, directory):
        for _attempt in range(5):
            self.port = free_port()
            config = os.path.join(directory, f"mosquitto-{self.port}.conf")
            with open(config, "w") as f:
                f.write(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n")
                # As root, mosquitto would drop to the `mosquitto` user and could not read the temporary directory.
                if os.geteuid() == 0:
                    f.write("user root\n")
                # The benchmark's bursts are QoS 0: let the broker queue them for a busy subscriber.
                f.write("max_queued_messages 100000\n")
            self.log = open(os.path.join(directory, f"mosquitto-{self.port}.log"), "w")
            self.process = subprocess.Popen(
                ["mosquitto", "-c", config], stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                wait_until(self._accepts, 10, f"mosquitto on port {self.port}")
                return
            except AssertionError:
                self.stop()  # the port was taken meanwhile: another one
        raise AssertionError("mosquitto did not start")

    def _accepts(self):
        if self.process.poll() is not None:
            raise AssertionError("mosquitto exited")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    @property
    def url(self):
        return f"tcp://127.0.0.1:{self.port}"

    def publish(self, topic, payload, retain=False):
        arguments = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.port), "-q", "1", "-t", topic]
        arguments += ["-n"] if payload == "" else ["-m", payload]
        if retain:
            arguments.append("-r")
        subprocess.run(arguments, check=True, timeout=10)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


class Daemon:
    """devstatusd with `config` on a free port (or `port`), its data in `directory`/data."""

    def __init__(self, binary, directory, broker_url, config, port=None, name="daemon"):
        self.binary = binary
        self.directory = directory
        self.broker_url = broker_url
        self.port = port or free_port()
        self.config_path = os.path.join(directory, "config.toml")
        with open(self.config_path, "w") as f:
            f.write(config)
        self.log_path = os.path.join(directory, f"{name}.log")
        self.start()

    def start(self, wait_ready=True):
        self.log = open(self.log_path, "a")
        environment = dict(os.environ, STATE_DIRECTORY="")
        self.process = subprocess.Popen(
            [self.binary, "--config", self.config_path, "--port", str(self.port), "--broker", self.broker_url,
             "--data-dir", os.path.join(self.directory, "data"), "--log-level", "info"],
            stdout=self.log, stderr=subprocess.STDOUT, env=environment, start_new_session=True)
        if wait_ready:
            wait_until(lambda: self._status("/readyz") == 200, 60, f"devstatusd ready on port {self.port}", 0.05)

    def _status(self, path):
        if self.process.poll() is not None:
            raise AssertionError(f"devstatusd exited with {self.process.returncode}; log:\n" + self.read_log())
        try:
            with urllib.request.urlopen(self.url(path), timeout=2) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return None

    def read_log(self):
        with open(self.log_path) as f:
            return f.read()[-4000:]

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def json(self, path):
        request = urllib.request.Request(self.url(path), headers={"Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def browser(width=1280, height=900):
    """Headless Chromium through Debian's chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     f"--window-size={width},{height}", "--hide-scrollbars", "--lang=en-US",
                     "--disable-background-timer-throttling", "--disable-renderer-backgrounding"]:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def emulate(driver, width=None, height=None, dark=None):
    """Viewport size and `prefers-color-scheme` through the DevTools protocol (as a phone or a dark desktop)."""
    if width:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": width, "height": height or 900, "deviceScaleFactor": 1, "mobile": False})
    if dark is not None:
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia",
                               {"features": [{"name": "prefers-color-scheme", "value": "dark" if dark else "light"}]})


def temporary_directory(prefix):
    return tempfile.mkdtemp(prefix=prefix)
