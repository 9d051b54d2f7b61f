import Foundation

/// A response as read off the wire by the tests (independent of the server's encoder).
struct ParsedResponse: Sendable, CustomStringConvertible {
    var status: Int
    var reason: String
    var headers: [(name: String, value: String)]
    var body: [UInt8]

    func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    var text: String { String(decoding: body, as: UTF8.self) }
    var closes: Bool { header("Connection")?.lowercased() == "close" }

    var description: String { "\(status) \(reason) \(headers.map { "\($0.name): \($0.value)" }) \(text)" }

    /// Splits `bytes` into complete responses (Content-Length framing; `bodiless` for HEAD answers).
    /// Returns the responses and the number of bytes they used.
    static func parseAll(_ bytes: [UInt8], bodiless: Bool = false) -> (responses: [ParsedResponse], used: Int) {
        var responses: [ParsedResponse] = []
        var offset = 0
        while let (response, length) = parseOne(bytes[offset...], bodiless: bodiless) {
            responses.append(response)
            offset += length
        }
        return (responses, offset)
    }

    private static func parseOne(_ bytes: ArraySlice<UInt8>, bodiless: Bool) -> (ParsedResponse, Int)? {
        let crlfcrlf: [UInt8] = [13, 10, 13, 10]
        guard bytes.count >= 4 else { return nil }
        var headEnd: Int?
        for i in bytes.startIndex...(bytes.endIndex - 4) where Array(bytes[i..<(i + 4)]) == crlfcrlf {
            headEnd = i
            break
        }
        guard let headEnd else { return nil }
        let head = String(decoding: bytes[bytes.startIndex..<headEnd], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst()
        let parts = statusLine.split(separator: " ", maxSplits: 2).map(String.init)
        guard parts.count >= 2, let status = Int(parts[1]) else { return nil }
        let headers = lines.compactMap { line -> (name: String, value: String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        var response = ParsedResponse(
            status: status, reason: parts.count > 2 ? parts[2] : "", headers: headers, body: [])
        let bodyStart = headEnd + 4
        if status == 100 { return (response, bodyStart - bytes.startIndex) }
        let length = bodiless ? 0 : Int(response.header("Content-Length") ?? "0") ?? 0
        guard bytes.endIndex - bodyStart >= length else { return nil }
        response.body = Array(bytes[bodyStart..<(bodyStart + length)])
        return (response, bodyStart + length - bytes.startIndex)
    }
}
