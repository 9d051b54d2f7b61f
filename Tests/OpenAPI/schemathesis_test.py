#!/usr/bin/env python3
"""docs/openapi.json against the live daemon: a real mosquitto and a real devstatusd, checked by schemathesis.

    VENV/bin/python Tests/OpenAPI/schemathesis_test.py PATH/TO/devstatusd [extra schemathesis run arguments]

Run with the Python of the environment that has schemathesis and openapi-spec-validator (`make test-openapi` makes
it). The document is validated first. The daemon gets a write token (schemathesis sends it as the bearer scheme, and
its `ignored_auth` check sends requests without it), a watched device, and a few devices known from retained status
messages and presence conventions (one with a `/` in its id), so that the documented examples answer 200 and the
generated requests reach the handlers. Settings and the few exceptions, each with its reason, are in
schemathesis.toml next to this file. Every process started here is stopped here; exit status 1 on any failure.
"""

import os
import shutil
import json
import subprocess
import sys

from openapi_spec_validator import validate

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Browser"))
import harness  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DOCUMENT = os.path.join(ROOT, "docs", "openapi.json")
CONFIG_FILE = os.path.join(ROOT, "Tests", "OpenAPI", "schemathesis.toml")
TOKEN = "schemathesis-token"

CONFIG = f"""
[http]
token = "{TOKEN}"

[status]
org = "org1"

[device_esp04]
watchTimeOut = 300
watchTopics = "home/esp04/#"

[[presence]]
preset = "tasmota"

[[presence]]
preset = "zigbee2mqtt"
"""


def mon(action, time_text, type_, id_):
    return ('{"ClientAddr":"10.0.0.7","Protocol":"mqtt4","Secure":false,"Durable":false,'
            f'"ClientID":"d:org1:{type_}:{id_}","Time":"{time_text}","Action":"{action}"}}')


def main():
    binary, extra = sys.argv[1], sys.argv[2:]
    schemathesis = os.path.join(os.path.dirname(sys.executable), "schemathesis")
    with open(DOCUMENT) as f:
        validate(json.load(f))
    print(f"{DOCUMENT}: a valid OpenAPI document (openapi-spec-validator)", flush=True)
    directory = harness.temporary_directory("devstatusd-openapi.")
    broker = daemon = None
    try:
        broker = harness.Broker(directory)
        broker.publish("iot-2/type/type1/id/ps1/mon", mon("Connect", "2026-01-02T16:51:10.558Z", "type1", "ps1"),
                       retain=True)
        broker.publish("iot-2/type/type1/id/ps2/mon", mon("Disconnect", "2026-01-02T16:52:10.558Z", "type1", "ps2"),
                       retain=True)
        broker.publish("tele/plug1/LWT", "Online", retain=True)
        broker.publish("zigbee2mqtt/kitchen/lamp/availability", '{"state":"online"}', retain=True)
        daemon = harness.Daemon(binary, directory, broker.url, CONFIG)
        broker.publish("home/esp04/sensors/temperature", "21.5")
        # The document's rule for ids with `/`, on the live daemon: `%2F` addresses the Zigbee2MQTT `kitchen/lamp`.
        view = daemon.json("/devices/zigbee2mqtt/kitchen%2Flamp")
        if (view["id"], view["source"]) != ("kitchen/lamp", "zigbee2mqtt"):
            raise AssertionError(f"/devices/zigbee2mqtt/kitchen%2Flamp answered {view}")
        print("ok: /devices/zigbee2mqtt/kitchen%2Flamp is the device kitchen/lamp", flush=True)
        # Hypothesis keeps its files in the temporary directory, not in the working tree.
        environment = dict(os.environ, DEVSTATUSD_TOKEN=TOKEN,
                           HYPOTHESIS_STORAGE_DIRECTORY=os.path.join(directory, "hypothesis"))
        command = [schemathesis, "--config-file", CONFIG_FILE, "run", DOCUMENT, "--url", daemon.url("")] + extra
        print("+", " ".join(command), flush=True)
        result = subprocess.run(command, env=environment)
        if result.returncode != 0:
            print(f"schemathesis failed (exit {result.returncode}); daemon log tail:\n{daemon.read_log()[-2000:]}")
        return result.returncode
    finally:
        if daemon:
            daemon.stop()
        if broker:
            broker.stop()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
