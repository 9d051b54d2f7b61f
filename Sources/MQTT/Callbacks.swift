import CMosquitto
import Logging

// libmosquitto's callbacks. They are plain C function pointers registered from nonisolated code
// (a closure written inside an actor-isolated method inherits its isolation, and the runtime check kills
// the process with SIGILL when C calls it from another thread),
// and they run on libmosquitto's network thread. on_message only copies; nothing here waits.

/// Calls libmosquitto once per process, before the first client: `mosquitto_lib_init` is not thread-safe,
/// and a global `let` is initialised exactly once.
let mosquittoLibrary: Void = {
    mosquitto_lib_init()
}()

private func core(_ userdata: UnsafeMutableRawPointer?) -> ClientCore {
    Unmanaged<ClientCore>.fromOpaque(userdata!).takeUnretainedValue()
}

private let onConnect: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, Int32, Int32, OpaquePointer?) -> Void =
    {
        mosq, userdata, rc, _, _ in
        let core = core(userdata)
        // A broker refusing MQTT 5 by reason code (0x84) or by a 3.1.1 CONNACK (1: unacceptable protocol version).
        if rc == 0x84 || rc == 1, core.protocolVersion == .v5, let mosq, core.fallBackToV311(mosq) {
            core.logger.notice(
                "the MQTT broker refused MQTT 5; speaking MQTT 3.1.1 from now on",
                metadata: ["broker": "\(core.brokerDescription)"])
            return
        }
        guard rc == 0 else {
            let reason =
                core.protocolVersion == .v5
                ? String(cString: mosquitto_reason_string(rc)) : String(cString: mosquitto_connack_string(rc))
            core.logger.error(
                "MQTT broker refused the connection",
                metadata: ["broker": "\(core.brokerDescription)", "reason": "\(reason)"])
            return
        }
        let (subscriptions, count, afterTakeover) = core.state.withLock { state in
            state.connected = true
            state.connectCount += 1
            state.connectedAt = .now
            return (state.renewed, state.connectCount, state.takeovers > 0)
        }
        // A takeover's long pause is over: later connection losses get the usual backoff again.
        if afterTakeover { _ = core.restoreReconnectDelay(mosq!) }
        // Renew every configured subscription: with a clean session the broker has forgotten them.
        for subscription in subscriptions {
            var mid: Int32 = 0
            let rc = subscribe(
                mosq!, &mid, subscription.filter, options: subscription.qos, version: core.protocolVersion)
            if rc == MOSQ_ERR_SUCCESS.rawValue {
                core.state.withLock { $0.renewals[mid] = subscription.filter }
            } else {
                core.logger.error(
                    "cannot subscribe",
                    metadata: [
                        "filter": "\(subscription.filter)",
                        "error": "\(MQTTError.mosquitto(rc, "mosquitto_subscribe"))",
                    ])
            }
        }
        core.logger.info(
            count == 1 ? "connected to the MQTT broker" : "reconnected to the MQTT broker",
            metadata: [
                "broker": "\(core.brokerDescription)", "subscriptions": "\(subscriptions.count)",
                "connects": "\(count)", "protocol": "\(core.protocolVersion.rawValue)",
            ])
        core.eventSink.yield(.connected)
    }

/// MQTT 5 DISCONNECT reason "Session taken over": another client connected with our client id.
let sessionTakenOver: Int32 = 0x8E

private let onDisconnect: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, Int32, OpaquePointer?) -> Void = {
    mosq, userdata, rc, _ in
    let core = core(userdata)
    // On MQTT 5, `rc` of a broker's DISCONNECT is its reason code; otherwise a libmosquitto error number.
    let announced = core.protocolVersion == .v5 && rc == sessionTakenOver
    let reason =
        rc == 0
        ? "disconnected by the client"
        : announced ? String(cString: mosquitto_reason_string(rc)) : String(cString: mosquitto_strerror(rc))
    // libmosquitto speaking 5 to a 3.1.1-only broker: that broker's 2-byte CONNACK (return code 1) is a protocol
    // error before any on_connect.
    let neverConnected = core.state.withLock { $0.connectedAt == nil }
    if rc == MOSQ_ERR_PROTOCOL.rawValue, neverConnected, core.requestedVersion == .auto, let mosq {
        if core.fallBackToV311(mosq) {
            core.logger.notice(
                "the MQTT broker refused MQTT 5; speaking MQTT 3.1.1 from now on",
                metadata: ["broker": "\(core.brokerDescription)"])
        }
        // libmosquitto's network thread ends on a protocol error: start connecting again.
        core.restartAfterFallback.withLock { $0 }?()
    }
    let wasConnected = core.connectionLost(reason: reason)
    let (stopping, takeovers, takenOver) = core.state.withLock { state in
        // Without the reason code: the broker closing connection after connection right after accepting it.
        let quick = state.connectedAt.map { .now - $0 < ClientCore.quickDropWindow } ?? false
        state.quickDrops = rc == MOSQ_ERR_CONN_LOST.rawValue && quick ? state.quickDrops + 1 : 0
        state.connectedAt = nil
        let takenOver = announced || state.quickDrops >= ClientCore.quickDropsForTakeover
        state.takeovers = takenOver ? state.takeovers + 1 : 0
        if takenOver { state.quickDrops = 0 }
        return (state.stopped, state.takeovers, takenOver)
    }
    if takenOver, !stopping, let mosq {
        // Not a network fault: reconnecting at once would only throw the other client off in turn.
        let pause = ClientCore.takeoverPause(takeovers)
        mosquitto_reconnect_delay_set(mosq, pause, pause, false)
        let metadata: Logger.Metadata = [
            "broker": "\(core.brokerDescription)", "clientid": "\(core.clientID)", "reason": "\(reason)",
            "retryInSeconds": "\(pause)",
            "evidence": announced
                ? "MQTT 5 reason 0x8E"
                : "the broker closed \(ClientCore.quickDropsForTakeover) connections in a row right after accepting them"
                ,
        ]
        if takeovers == 1 {
            core.logger.error(
                "MQTT session taken over: another client connected with this client id; give each instance its own [mqtt] clientid",
                metadata: metadata)
        } else {
            core.logger.debug("MQTT session taken over again", metadata: metadata)
        }
    } else if let mosq, !takenOver {
        _ = core.restoreReconnectDelay(mosq)
    }
    if wasConnected {
        if !stopping && !takenOver {
            core.logger.warning(
                "lost the connection to the MQTT broker; reconnecting with backoff",
                metadata: ["broker": "\(core.brokerDescription)", "reason": "\(reason)"])
        }
        core.eventSink.yield(.disconnected(reason: reason))
    }
}

private let onPublish: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, Int32, Int32, OpaquePointer?) -> Void =
    {
        _, userdata, mid, reasonCode, _ in
        // MQTT 5 PUBACK/PUBREC reason codes of 0x80 and above are failures (e.g. not authorized).
        let result: Result<Void, MQTTError> =
            reasonCode < 0x80
            ? .success(())
            : .failure(
                MQTTError.rejected.with(
                    "publish rejected by the broker: \(String(cString: mosquitto_reason_string(reasonCode)))"))
        core(userdata).acknowledge(.publish, mid: mid, result: result)
    }

private let onSubscribe:
    @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, Int32, Int32, UnsafePointer<Int32>?, OpaquePointer?) ->
        Void = {
            _, userdata, mid, count, granted, _ in
            let core = core(userdata)
            let grants = granted.map { Array(UnsafeBufferPointer(start: $0, count: Int(count))) } ?? []
            // A granted QoS of 0x80 (or any MQTT 5 reason code ≥ 0x80) is a refusal.
            let refused = grants.contains { $0 >= 0x80 }
            if let filter = core.state.withLock({ $0.renewals.removeValue(forKey: mid) }) {
                if refused {
                    core.logger.error("the MQTT broker refused a subscription", metadata: ["filter": "\(filter)"])
                }
                return
            }
            core.acknowledge(
                .subscribe, mid: mid,
                result: refused
                    ? .failure(MQTTError.rejected.with("the broker refused the subscription (SUBACK \(grants))"))
                    : .success(()))
        }

private let onMessage:
    @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, UnsafePointer<mosquitto_message>?, OpaquePointer?) -> Void =
        {
            _, userdata, message, _ in
            guard let message = message?.pointee, let topic = message.topic else { return }
            // The buffers belong to libmosquitto and die when we return; payload is nil at length 0.
            let payload =
                message.payloadlen > 0 && message.payload != nil
                ? [UInt8](UnsafeRawBufferPointer(start: message.payload, count: Int(message.payloadlen))) : []
            core(userdata).messages.append(
                MQTTMessage(
                    topic: String(cString: topic), payload: payload, qos: UInt8(truncatingIfNeeded: message.qos),
                    retain: message.retain))
        }

private let onLog: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, Int32, UnsafePointer<CChar>?) -> Void = {
    _, userdata, level, text in
    guard let text else { return }
    core(userdata).logger.trace("libmosquitto: \(String(cString: text))", metadata: ["level": "\(level)"])
}

/// Registers the callbacks; the log callback only when tracing, because libmosquitto formats every
/// packet's log line only when a log callback is set.
func registerCallbacks(_ mosq: OpaquePointer, trace: Bool) {
    mosquitto_connect_v5_callback_set(mosq, onConnect)
    mosquitto_disconnect_v5_callback_set(mosq, onDisconnect)
    mosquitto_publish_v5_callback_set(mosq, onPublish)
    mosquitto_subscribe_v5_callback_set(mosq, onSubscribe)
    mosquitto_message_v5_callback_set(mosq, onMessage)
    if trace {
        mosquitto_log_callback_set(mosq, onLog)
    }
}
