// libfuzzer: -max_len=4096
// libFuzzer entry for the body of `POST /devices/<type>/<id>/operations` (OperationRequest, over StrictJSON): what any
// client allowed to write sends.
//
// The input is parsed twice: as a whole body, and as the number text of `ttlSeconds` in an otherwise valid body.
// Checks, for every input:
// - the parser returns a draft or a refusal, never traps (an overflow, an index out of range), and the same twice;
// - a refusal has a message, and names a member only when one is at fault;
// - a draft's topic and ackTopic are topic names MQTT brokers take (not empty, no `+`, `#`, control characters or
//   noncharacters), its qos, ackTimeoutSeconds and ttlSeconds are in their ranges;
// - a `ttlSeconds` number accepted is the number written (read independently as a Double; exact in this range), and
//   `null` is no ttlSeconds.
// A difference traps, which libFuzzer reports as a crash with the input saved.

import DeviceStatus

private let device = DeviceKey(type: "type1", id: "kitchen/lamp")

private func isTopicName(_ topic: String) -> Bool {
    !topic.isEmpty && topic.utf8.count <= 65_535
        && !topic.unicodeScalars.contains { scalar in
            let value = scalar.value
            return scalar == "+" || scalar == "#" || value <= 0x1F || (0x7F...0x9F).contains(value)
                || (0xFDD0...0xFDEF).contains(value) || value & 0xFFFE == 0xFFFE
        }
}

private func parse(_ body: [UInt8]) -> Result<OperationDraft, OperationRequest.Refusal> {
    Result { () throws(OperationRequest.Refusal) in try OperationRequest.parse(body, for: device) }
}

private func check(_ body: [UInt8]) -> Result<OperationDraft, OperationRequest.Refusal> {
    let result = parse(body)
    if result != parse(body) { fatalError("two parses of one body differ") }
    switch result {
    case .failure(let refusal):
        if refusal.message.isEmpty { fatalError("a refusal without a message") }
    case .success(let draft):
        guard isTopicName(draft.topic) else { fatalError("draft topic \(draft.topic.debugDescription)") }
        if let ackTopic = draft.ackTopic, !isTopicName(ackTopic) { fatalError("ackTopic \(ackTopic.debugDescription)") }
        guard draft.qos <= 2, (1...86_400).contains(draft.ackTimeoutSeconds) else {
            fatalError("out of range: \(draft)")
        }
        if let ttl = draft.ttlSeconds, !(1...31_536_000).contains(ttl) { fatalError("ttlSeconds \(ttl)") }
    }
    return result
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOperationRequest(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    _ = check(bytes)
    // JSON whitespace around the number belongs to the body, not to the number.
    let whitespace: Set<UInt8> = [0x20, 0x09, 0x0A, 0x0D]
    let trimmed = bytes.drop { whitespace.contains($0) }.reversed().drop { whitespace.contains($0) }.reversed()
    let number = String(decoding: Array(trimmed), as: UTF8.self)
    let body = Array(#"{"command":"go","payload":1,"ttlSeconds":"#.utf8) + bytes + Array("}".utf8)
    // Only when the input is one number (or null) alone: it may also close the member and add others.
    let isNumber = !trimmed.isEmpty && trimmed.allSatisfy { Array("0123456789+-.eE".utf8).contains($0) }
    if case .success(let draft) = check(body), isNumber || number == "null" {
        // `null` means not given.
        let expected = number == "null" ? nil : Double(number)
        guard draft.ttlSeconds.map(Double.init) == expected, number == "null" || expected != nil else {
            fatalError("ttlSeconds \(number.debugDescription) read as \(String(describing: draft.ttlSeconds))")
        }
    }
    return 0
}
