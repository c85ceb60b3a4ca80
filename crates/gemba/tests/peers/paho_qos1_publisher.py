"""A device publishing QoS 1 as fast as it can with paho-mqtt (an independent MQTT client).

Usage: paho_qos1_publisher.py PORT TOPIC FIRST_INDEX OUT_FILE [INFLIGHT]

Publishes {"ts": BASE + i, "value": i} for i = FIRST_INDEX, FIRST_INDEX + 1, ... to TOPIC on
127.0.0.1:PORT, keeping at most INFLIGHT (default 200) messages unacknowledged, until the
connection is lost (the test kills the broker's process) or 120 s pass. Every index whose PUBACK
arrived is written to OUT_FILE, one per line, when the script ends; the last line is
"done <acked> <published>".
"""

import json
import sys
import threading
import time

import paho.mqtt.client as mqtt

BASE_TS = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a fixed origin so reruns overlap nothing


def main() -> int:
    port, topic, first, out = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
    inflight = int(sys.argv[5]) if len(sys.argv) > 5 else 200
    # (index, MQTTMessageInfo): is_published() turns true when the PUBACK arrived (QoS 1). No lock
    # of ours is taken in a callback: paho calls on_publish holding its own message lock.
    sent: list[tuple[int, mqtt.MQTTMessageInfo]] = []
    window = threading.Semaphore(inflight)
    connected = threading.Event()
    lost = threading.Event()

    def on_connect(client, userdata, flags, reason_code, properties):
        if reason_code == 0:
            connected.set()
        else:
            lost.set()

    def on_disconnect(client, userdata, flags, reason_code, properties):
        lost.set()
        # Unblock the publishing loop: what is in flight now is never acknowledged.
        for _ in range(inflight):
            window.release()

    def on_publish(client, userdata, mid, reason_code, properties):
        window.release()

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"paho-qos1-{first}",
        protocol=mqtt.MQTTv311,
        reconnect_on_failure=False,
    )
    client.max_inflight_messages_set(inflight)
    client.max_queued_messages_set(0)
    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_publish = on_publish
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    if not connected.wait(10):
        print("no CONNACK within 10 s", file=sys.stderr)
        return 2
    published = 0
    i = first
    deadline = time.monotonic() + 120
    while not lost.is_set() and time.monotonic() < deadline:
        window.acquire()
        if lost.is_set():
            break
        payload = json.dumps({"ts": BASE_TS + i, "value": i})
        info = client.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            break
        sent.append((i, info))
        published += 1
        i += 1
    client.loop_stop()
    lines = [str(i) for i, info in sent if info.is_published() and info.rc == 0]
    with open(out, "w", encoding="ascii") as f:
        f.write("\n".join(lines + [f"done {len(lines)} {published}"]) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
