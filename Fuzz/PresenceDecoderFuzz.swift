// libfuzzer: -max_len=4096
// libFuzzer entry for the presence decoders (Tasmota, ESPHome, Shelly, Zigbee2MQTT, Homie 3/4 and 5, EMQX,
// Sparkplug B protobuf, the generic lwt with a JSON field): what arrives on a presence topic, from anyone who may
// publish there, and the topic itself.
//
// The first byte picks the decoder (and the retained flag); the bytes up to the first NUL are the topic, the rest
// the payload. Checks, for every input:
// - matching and decoding return a match or nil, an observation, a malformed or an ignored verdict, never trap;
// - an observation names the device the topic named, with the decoder's source;
// - a source time is never more than maxClockSkew ahead of the clock (EMQX `ts`, Sparkplug `timestamp`);
// - a Sparkplug node birth or death carries its bdSeq, a device message none;
// - the status record built from an observation decodes back to the same source, status, time and payload.
// A difference traps, which libFuzzer reports as a crash with the input saved.

import DeviceStatus

/// A fixed clock reading (2026-06-01T00:00:00Z): the harness must be deterministic.
private let context = DecodeContext(now: 1_780_272_000_000_000_000, clockSkew: .default)

private let decoders: [any PresenceDecoder] = [
    PresenceSettings(preset: .tasmota).makeDecoder(),
    PresenceSettings(preset: .esphome).makeDecoder(),
    PresenceSettings(preset: .shelly).makeDecoder(),
    PresenceSettings(preset: .zigbee2mqtt).makeDecoder(),
    PresenceSettings(preset: .homie).makeDecoder(),
    PresenceSettings(preset: .homie, type: "homie5", prefix: "homie/5").makeDecoder(),
    PresenceSettings(preset: .emqx, prefix: "sys/brokers").makeDecoder(),
    PresenceSettings(preset: .sparkplug).makeDecoder(),
    PresenceSettings(
        preset: .lwt, type: "sensor", topic: "devices/+/{id}/status", online: ["up", "1", "true"],
        offline: ["down", "0"], sleeping: ["nap"], field: "state"
    ).makeDecoder(),
]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPresenceDecoders(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let decoder = decoders[Int(bytes[0] >> 1) % decoders.count]
    let retained = bytes[0] & 1 == 1
    let rest = bytes.dropFirst()
    let split = rest.firstIndex(of: 0) ?? rest.endIndex
    let topic = String(decoding: rest[..<split], as: UTF8.self)
    let payload = Array(rest[split...].dropFirst())
    guard let match = decoder.match(topic: topic) else { return 0 }
    guard !match.key.type.isEmpty, !match.key.id.isEmpty, !match.key.type.contains("/") else {
        fatalError("topic \(topic) named \(match.key)")
    }
    guard !payload.isEmpty else { return 0 }
    switch decoder.decode(match, payload: payload, retained: retained, context: context) {
    case .malformed(let reason), .ignored(let reason):
        _ = reason.count
    case .observation(let observation):
        guard observation.key == match.key, observation.source == decoder.source else {
            fatalError("observation \(observation) for \(match.key) from \(decoder.source)")
        }
        if let time = observation.sourceTime,
            time > context.clockSkew.latestAcceptable(now: context.now)
        {
            fatalError("source time \(time) beyond maxClockSkew")
        }
        if decoder.source == .sparkplug {
            let isNode = !observation.key.id.contains("/")
            guard (observation.sequence != nil) == isNode, observation.cascades == (isNode && observation.status == .set(.offline))
            else { fatalError("Sparkplug observation \(observation)") }
        }
        guard case .set(let status) = observation.status else { fatalError("decoded a deletion") }
        let record = StatusRecord(
            source: observation.source, status: status, time: observation.sourceTime ?? context.now,
            sequence: observation.sequence ?? 0, reason: observation.reason, payload: observation.payload)
        guard let decoded = StatusRecord(encoded: record.encoded), decoded.source == observation.source,
            decoded.status == status, decoded.time == (observation.sourceTime ?? context.now),
            decoded.sequence == (observation.sequence ?? 0), Array(decoded.payload) == observation.payload
        else { fatalError("record of \(observation) does not round-trip") }
    }
    return 0
}
