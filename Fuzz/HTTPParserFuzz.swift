// libfuzzer: -max_len=512
// libFuzzer entry for the HTTP/1.1 request parser. Inputs up to 512 bytes: the small limits below reach every
// limit branch within that.
//
// Checks, for every input and for two sets of limits:
// - feeding it whole and byte by byte gives the same requests and the same refusal;
// - no request exceeds the limits it was parsed under.
// A difference traps, which libFuzzer reports as a crash with the input saved.

import HTTP1

private let limitSets = [
    RequestLimits(),
    // Small limits so that short inputs reach every limit branch.
    RequestLimits(maxRequestLine: 40, maxHeaderBytes: 80, maxHeaders: 4, maxBody: 16),
]

/// What a request parsed into, compared field by field (cheaper than formatting strings).
private struct Parsed: Equatable {
    var method: String
    var target: String
    var segments: [String]
    var query: [String]
    var headers: [String]
    var body: [UInt8]
    var version: HTTPVersion

    init(_ request: HTTPRequest) {
        method = request.method.name
        target = request.target
        segments = request.pathSegments
        query = request.query.flatMap { [$0.name, $0.value] }
        headers = request.headers.flatMap { [$0.name, $0.value] }
        body = request.body
        version = request.version
    }
}

private enum Outcome: Equatable {
    case request(Parsed)
    case error(RequestParseError)
}

/// Every outcome of feeding `bytes` in `chunks`, up to and including a refusal.
private func outcomes(_ bytes: [UInt8], chunks: [Range<Int>], limits: RequestLimits) -> [Outcome] {
    var parser = RequestParser(limits: limits) { method, segments in
        method == .post || segments.first == "body"
    }
    var result: [Outcome] = []
    for chunk in chunks {
        parser.append(bytes[chunk])
        parsing: while true {
            switch parser.next() {
            case .request(let request):
                guard request.body.count <= limits.maxBody, request.headers.count <= limits.maxHeaders else {
                    fatalError("limit exceeded: \(request)")
                }
                result.append(.request(Parsed(request)))
            case .needMore:
                break parsing
            case .error(let error):
                result.append(.error(error))
                return result
            }
        }
    }
    return result
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTPParser(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    for limits in limitSets {
        let whole = outcomes(bytes, chunks: [0..<size], limits: limits)
        let drip = outcomes(bytes, chunks: (0..<size).map { $0..<($0 + 1) }, limits: limits)
        if whole != drip {
            fatalError("chunking changed the result:\nwhole \(whole)\ndrip  \(drip)")
        }
    }
    return 0
}
