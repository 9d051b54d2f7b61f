import Testing

@testable import HTTP1

/// What the parser made of some input, comparable across chunkings.
private enum Outcome: Equatable, CustomStringConvertible {
    case request(String)
    case error(RequestParseError)

    var description: String {
        switch self {
        case .request(let summary): summary
        case .error(let error): "error(\(error))"
        }
    }

    var error: RequestParseError? {
        if case .error(let error) = self { error } else { nil }
    }
}

private func summary(_ request: HTTPRequest) -> String {
    let headers = request.headers.map { "\($0.name)=\($0.value)" }.joined(separator: ",")
    let query = request.query.map { "\($0.name)=\($0.value)" }.joined(separator: "&")
    return "\(request.method) \(request.target) \(request.pathSegments) ?\(query) \(request.version) [\(headers)] "
        + String(decoding: request.body, as: UTF8.self)
}

private func run(_ parser: inout RequestParser, into outcomes: inout [Outcome]) {
    while true {
        switch parser.next() {
        case .request(let request): outcomes.append(.request(summary(request)))
        case .needMore: return
        case .error(let error):
            outcomes.append(.error(error))
            return
        }
    }
}

/// Parses `input` whole and byte by byte; both must agree (the test fails otherwise).
private func parse(
    _ input: String, limits: RequestLimits = RequestLimits(), acceptsBody: RequestParser.BodyPolicy? = nil,
    sourceLocation: SourceLocation = #_sourceLocation
) -> [Outcome] {
    parse(Array(input.utf8), limits: limits, acceptsBody: acceptsBody, sourceLocation: sourceLocation)
}

private func parse(
    _ bytes: [UInt8], limits: RequestLimits = RequestLimits(), acceptsBody: RequestParser.BodyPolicy? = nil,
    sourceLocation: SourceLocation = #_sourceLocation
) -> [Outcome] {
    var whole = RequestParser(limits: limits, acceptsBody: acceptsBody)
    var wholeOutcomes: [Outcome] = []
    whole.append(bytes)
    run(&whole, into: &wholeOutcomes)

    var drip = RequestParser(limits: limits, acceptsBody: acceptsBody)
    var dripOutcomes: [Outcome] = []
    for byte in bytes {
        drip.append([byte])
        run(&drip, into: &dripOutcomes)
        if dripOutcomes.last?.error != nil { break }
    }
    #expect(wholeOutcomes == dripOutcomes, "whole vs byte-by-byte", sourceLocation: sourceLocation)
    return wholeOutcomes
}

private func refusal(_ input: String, limits: RequestLimits = RequestLimits()) -> RequestParseError? {
    parse(input, limits: limits).last?.error
}

@Suite struct RequestParserTests {
    // MARK: What is accepted

    @Test func parsesSimpleGetIntoMethodPathQueryAndHeaders() throws {
        var parser = RequestParser()
        parser.append(
            Array("GET /devices/t%201/x?limit=5&q=a+b HTTP/1.1\r\nHost: h\r\nAccept:  text/html \r\n\r\n".utf8))
        guard case .request(let request) = parser.next() else {
            Issue.record("no request")
            return
        }
        #expect(request.method == .get)
        #expect(request.target == "/devices/t%201/x?limit=5&q=a+b")
        #expect(request.pathSegments == ["devices", "t 1", "x"])
        #expect(request.query.map(\.name) == ["limit", "q"])
        #expect(request.queryValue("q") == "a b")
        #expect(request.headers["accept"] == "text/html")
        #expect(request.headers["HOST"] == "h")
        #expect(request.version == .http1_1)
        #expect(request.body.isEmpty)
        guard case .needMore = parser.next() else {
            Issue.record("expected needMore")
            return
        }
    }

    @Test func rootPathHasNoSegmentsAndTrailingSlashKeepsAnEmptyOne() {
        #expect(parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n") == [.request("GET / [] ? HTTP/1.1 [Host=h] ")])
        #expect(
            parse("GET /a/ HTTP/1.1\r\nHost: h\r\n\r\n") == [.request("GET /a/ [\"a\", \"\"] ? HTTP/1.1 [Host=h] ")])
    }

    @Test func parsesPipelinedRequestsFromOneBuffer() {
        let outcomes = parse(
            "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\nGET /3 HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(outcomes.count == 3)
        #expect(outcomes.map { $0.description.split(separator: " ")[1] } == ["/1", "/2", "/3"])
    }

    /// The server hands each answered request back so the next reuses its storage: none of its segments
    /// or fields may show through, and the request handed back keeps what it had.
    @Test func aRecycledRequestLeavesNothingInTheNextOne() {
        var parser = RequestParser()
        parser.append(Array("GET /a/b/c HTTP/1.1\r\nHost: h\r\nAccept: x\r\nX-One: 1\r\n\r\n".utf8))
        guard case .request(let first) = parser.next() else {
            Issue.record("expected a request")
            return
        }
        let kept = first
        parser.recycle(first)
        parser.append(Array("GET /d HTTP/1.1\r\nHost: i\r\n\r\n".utf8))
        guard case .request(let second) = parser.next() else {
            Issue.record("expected a request")
            return
        }
        #expect(summary(second) == "GET /d [\"d\"] ? HTTP/1.1 [Host=i] ")
        #expect(summary(kept) == "GET /a/b/c [\"a\", \"b\", \"c\"] ? HTTP/1.1 [Host=h,Accept=x,X-One=1] ")
    }

    @Test func readsBodyOfContentLengthAndNoMore() {
        let outcomes = parse(
            "POST /items HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(outcomes.count == 2)
        #expect(outcomes.first?.description.hasSuffix("] hello") == true)
    }

    @Test func acceptsHTTP10WithoutHost() {
        #expect(parse("GET / HTTP/1.0\r\n\r\n") == [.request("GET / [] ? HTTP/1.0 [] ")])
    }

    @Test func acceptsRepeatedIdenticalContentLength() {
        let outcomes = parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nContent-Length: 2, 2\r\n\r\nok")
        #expect(outcomes.count == 1)
        #expect(outcomes.first?.error == nil)
    }

    @Test func ignoresEmptyLinesBeforeTheRequestLine() {
        #expect(parse("\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n").count == 1)
    }

    @Test func acceptsAbsoluteFormTarget() {
        #expect(
            parse("GET http://example.com:80/a/b?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n").first?.description
                .contains("[\"a\", \"b\"] ?x=1") == true)
    }

    @Test func acceptsRequestLineOfExactlyTheLimit() {
        let limits = RequestLimits(maxRequestLine: 40)
        let target = "/" + String(repeating: "a", count: 40 - "GET  HTTP/1.1".count - 1)
        let line = "GET \(target) HTTP/1.1"
        #expect(line.utf8.count == 40)
        #expect(parse("\(line)\r\nHost: h\r\n\r\n", limits: limits).first?.error == nil)
        #expect(refusal("GET \(target)a HTTP/1.1\r\nHost: h\r\n\r\n", limits: limits) == .requestLineTooLong)
    }

    @Test func flagsExpect100ContinueOnceWhileTheBodyIsOutstanding() {
        var parser = RequestParser()
        parser.append(Array("POST /x HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n".utf8))
        guard case .needMore = parser.next() else {
            Issue.record("expected needMore")
            return
        }
        let first = parser.takeContinueRequest()
        let second = parser.takeContinueRequest()
        #expect(first)
        #expect(!second)
        parser.append(Array("abc".utf8))
        guard case .request(let request) = parser.next() else {
            Issue.record("expected the request")
            return
        }
        #expect(request.body == Array("abc".utf8))
    }

    @Test func connectionFieldDecidesKeepAlive() throws {
        func keepAlive(_ raw: String) -> Bool? {
            var parser = RequestParser()
            parser.append(Array(raw.utf8))
            if case .request(let request) = parser.next() { return request.wantsKeepAlive }
            return nil
        }
        #expect(keepAlive("GET / HTTP/1.1\r\nHost: h\r\n\r\n") == true)
        #expect(keepAlive("GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, Close\r\n\r\n") == false)
        #expect(keepAlive("GET / HTTP/1.0\r\n\r\n") == false)
        #expect(keepAlive("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n") == true)
    }

    // MARK: Limits

    @Test func refusesRequestLineOverLimitWith414EvenBeforeItEnds() {
        let limits = RequestLimits(maxRequestLine: 64)
        let long = "GET /" + String(repeating: "a", count: 100)
        #expect(refusal(long, limits: limits) == .requestLineTooLong)
        #expect(refusal(long + " HTTP/1.1\r\nHost: h\r\n\r\n", limits: limits) == .requestLineTooLong)
        #expect(RequestParseError.requestLineTooLong.status.code == 414)
    }

    @Test func refusesEndlessEmptyLinesAsATooLongRequestLine() {
        let limits = RequestLimits(maxRequestLine: 64)
        #expect(refusal(String(repeating: "\r\n", count: 40), limits: limits) == .requestLineTooLong)
    }

    @Test func refusesHeaderSectionOverLimitWith431() {
        let limits = RequestLimits(maxHeaderBytes: 100)
        let big = "GET / HTTP/1.1\r\nHost: h\r\nX-Big: \(String(repeating: "v", count: 120))\r\n\r\n"
        #expect(refusal(big, limits: limits) == .headerSectionTooLarge)
        #expect(
            refusal(String(big.prefix(90)) + String(repeating: "v", count: 50), limits: limits)
                == .headerSectionTooLarge)
        #expect(RequestParseError.headerSectionTooLarge.status.code == 431)
    }

    @Test func refusesMoreThanMaxHeaderFieldsWith431() {
        let limits = RequestLimits(maxHeaders: 3)
        #expect(parse("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n", limits: limits).first?.error == nil)
        #expect(
            refusal("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", limits: limits) == .tooManyHeaderFields
        )
        #expect(RequestParseError.tooManyHeaderFields.status.code == 431)
    }

    @Test func refusesBodyOverLimitWith413WithoutWaitingForIt() {
        let limits = RequestLimits(maxBody: 10)
        #expect(refusal("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n", limits: limits) == .contentTooLarge)
        #expect(
            refusal("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n") == .contentTooLarge
        )
        #expect(RequestParseError.contentTooLarge.status.code == 413)
    }

    @Test func refusesBodyOnARouteThatTakesNoneWith413() {
        let outcomes = parse("GET /x HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\na") { method, path in
            method == .post && path == ["x"]
        }
        #expect(outcomes.last?.error == .bodyNotAllowed)
        #expect(RequestParseError.bodyNotAllowed.status.code == 413)
        // Content-Length: 0 is no body at all.
        #expect(parse("GET /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n").first?.error == nil)
    }

    // MARK: Unsupported features

    @Test func refusesTransferEncodingWith501() {
        #expect(
            refusal("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
                == .transferEncodingNotImplemented)
        #expect(RequestParseError.transferEncodingNotImplemented.status.code == 501)
    }

    @Test func refusesOtherHTTPVersionsWith505() {
        #expect(refusal("GET / HTTP/2.0\r\nHost: h\r\n\r\n") == .versionNotSupported)
        #expect(refusal("GET / HTTP/1.2\r\nHost: h\r\n\r\n") == .versionNotSupported)
        #expect(refusal("GET / HTTP/0.9\r\n\r\n") == .versionNotSupported)
        #expect(RequestParseError.versionNotSupported.status.code == 505)
    }

    @Test func refusesExpectationsOtherThan100ContinueWith417() {
        #expect(
            refusal("POST / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx")
                == .unsupportedExpectation)
    }

    // MARK: Request smuggling shapes (400, connection closed)

    @Test func rejectsContentLengthWithTransferEncoding() {
        #expect(
            refusal("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc")
                == .contentLengthWithTransferEncoding)
        #expect(
            refusal("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc")
                == .contentLengthWithTransferEncoding)
        #expect(RequestParseError.contentLengthWithTransferEncoding.status.code == 400)
    }

    @Test func rejectsDifferingContentLengths() {
        #expect(
            refusal("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd")
                == .conflictingContentLength)
        #expect(refusal("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 4\r\n\r\nabcd") == .conflictingContentLength)
    }

    @Test(arguments: ["+5", "-1", "1.0", "", "5 5", "0x10", "5,", "٣"])
    func rejectsMalformedContentLength(_ value: String) {
        #expect(refusal("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \(value)\r\n\r\nabcde") == .invalidContentLength)
    }

    @Test func rejectsWhitespaceBeforeColon() {
        #expect(refusal("GET / HTTP/1.1\r\nHost: h\r\nContent-Length : 5\r\n\r\n") == .whitespaceBeforeColon)
        #expect(refusal("GET / HTTP/1.1\r\nHost\t: h\r\n\r\n") == .whitespaceBeforeColon)
    }

    @Test func rejectsObsoleteLineFolding() {
        #expect(refusal("GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n 2\r\n\r\n") == .obsoleteLineFolding)
        #expect(refusal("GET / HTTP/1.1\r\n\tHost: h\r\n\r\n") == .obsoleteLineFolding)
    }

    @Test func rejectsMissingHostOnHTTP11() {
        #expect(refusal("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n") == .missingHost)
    }

    @Test func rejectsRepeatedHost() {
        #expect(refusal("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n") == .repeatedHost)
        #expect(refusal("GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n") == .repeatedHost)
    }

    @Test func rejectsHostThatIsNotAnAuthority() {
        #expect(refusal("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n") == .invalidHost)
        #expect(refusal("GET / HTTP/1.1\r\nHost: a b\r\n\r\n") == .invalidHost)
    }

    @Test(arguments: ["\u{0}", "\u{1}", "\u{7F}", "\r", "\u{1B}[31m"])
    func rejectsControlCharactersInFieldValues(_ control: String) {
        #expect(refusal("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\(control)b\r\n\r\n") == .invalidFieldValue)
    }

    @Test func acceptsTabsAndHighBytesInFieldValues() {
        var bytes = Array("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\tb ".utf8)
        bytes += [0xC3, 0xA9]
        bytes += Array("\r\n\r\n".utf8)
        #expect(parse(bytes).first?.error == nil)
    }

    @Test func rejectsBareLineFeeds() {
        #expect(refusal("GET / HTTP/1.1\nHost: h\r\n\r\n") == .bareLineFeed)
        #expect(refusal("GET / HTTP/1.1\r\nHost: h\n\r\n") == .bareLineFeed)
        #expect(refusal("GET / HTTP/1.1\r\nHost: h\r\n\n") == .bareLineFeed)
    }

    @Test func rejectsFieldNamesThatAreNotTokens() {
        #expect(refusal("GET / HTTP/1.1\r\nHost: h\r\nX(A): 1\r\n\r\n") == .invalidFieldName)
        #expect(refusal("GET / HTTP/1.1\r\nHost: h\r\n: 1\r\n\r\n") == .invalidFieldName)
        #expect(refusal("GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n") == .invalidFieldName)
    }

    @Test func rejectsMalformedRequestLines() {
        #expect(refusal("GET  / HTTP/1.1\r\nHost: h\r\n\r\n") == .malformedRequestLine)
        #expect(refusal("GET /\r\n\r\n") == .malformedRequestLine)
        #expect(refusal("G(T / HTTP/1.1\r\nHost: h\r\n\r\n") == .invalidMethod)
        #expect(refusal("GET / HTTP/1.1 \r\nHost: h\r\n\r\n") == .invalidVersion)
        #expect(refusal("GET / http/1.1\r\nHost: h\r\n\r\n") == .invalidVersion)
        #expect(refusal("GET /a b HTTP/1.1\r\nHost: h\r\n\r\n") == .invalidVersion)
    }

    @Test func methodsAreCaseSensitiveTokens() {
        #expect(parse("get / HTTP/1.1\r\nHost: h\r\n\r\n").first?.description.hasPrefix("get /") == true)
        var parser = RequestParser()
        parser.append(Array("get / HTTP/1.1\r\nHost: h\r\n\r\n".utf8))
        if case .request(let request) = parser.next() { #expect(request.method == .other("get")) }
    }

    // MARK: Targets

    @Test func splitsThePathBeforeDecodingSoAnEncodedSlashStaysInItsSegment() throws {
        var parser = RequestParser()
        parser.append(Array("GET /devices/z2m/room%2Flamp/history HTTP/1.1\r\nHost: h\r\n\r\n".utf8))
        guard case .request(let request) = parser.next() else {
            Issue.record("expected a request")
            return
        }
        #expect(request.pathSegments == ["devices", "z2m", "room/lamp", "history"])
        var lower = RequestParser()
        lower.append(Array("GET /a%2fb%2F HTTP/1.1\r\nHost: h\r\n\r\n".utf8))
        guard case .request(let second) = lower.next() else {
            Issue.record("expected a request")
            return
        }
        #expect(second.pathSegments == ["a/b/"])
    }

    @Test func rejectsEncodedControlCharactersInAPathSegment() {
        #expect(refusal("GET /devices/a%00b HTTP/1.1\r\nHost: h\r\n\r\n") == .invalidPercentEncoding)
        #expect(refusal("GET /devices/a%0Ab HTTP/1.1\r\nHost: h\r\n\r\n") == .invalidPercentEncoding)
        #expect(refusal("GET /devices/a%7Fb HTTP/1.1\r\nHost: h\r\n\r\n") == .invalidPercentEncoding)
    }

    @Test func rejectsBadPercentEncoding() {
        #expect(refusal("GET /a%2 HTTP/1.1\r\nHost: h\r\n\r\n") == .invalidPercentEncoding)
        #expect(refusal("GET /a%zz HTTP/1.1\r\nHost: h\r\n\r\n") == .invalidPercentEncoding)
        #expect(refusal("GET /a%00 HTTP/1.1\r\nHost: h\r\n\r\n") == .invalidPercentEncoding)
        #expect(refusal("GET /a%C3 HTTP/1.1\r\nHost: h\r\n\r\n") == .invalidPercentEncoding)
        #expect(refusal("GET /a?q=%G1 HTTP/1.1\r\nHost: h\r\n\r\n") == .invalidPercentEncoding)
    }

    @Test(arguments: ["/a<b", "/a\"b", "/a#frag", "/a\\b", "/a{b}", "a/b", "*x", "ftp://h/a", "http:///a"])
    func rejectsTargetsOutsideRFC3986(_ target: String) {
        #expect(refusal("GET \(target) HTTP/1.1\r\nHost: h\r\n\r\n") == .invalidTarget)
    }

    @Test func rejectsControlAndNonASCIIBytesInTarget() {
        var bytes = Array("GET /a".utf8)
        bytes += [0xC3, 0xA9]
        bytes += Array(" HTTP/1.1\r\nHost: h\r\n\r\n".utf8)
        #expect(parse(bytes).last?.error == .invalidTarget)
        #expect(refusal("GET /a\u{1}b HTTP/1.1\r\nHost: h\r\n\r\n") == .invalidTarget)
    }

    @Test func decodesUTF8PercentEncodingInSegmentsAndQuery() {
        let outcome = parse("GET /caf%C3%A9?n%C3%A9=a%20b+c HTTP/1.1\r\nHost: h\r\n\r\n").first?.description ?? ""
        #expect(outcome.contains("[\"café\"] ?né=a b c"))
    }

    // MARK: After a refusal

    @Test func staysFailedAfterARefusal() {
        var parser = RequestParser()
        parser.append(Array("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".utf8))
        guard case .error(.repeatedHost) = parser.next() else {
            Issue.record("expected repeatedHost")
            return
        }
        parser.append(Array("GET / HTTP/1.1\r\nHost: h\r\n\r\n".utf8))
        guard case .error(.repeatedHost) = parser.next() else {
            Issue.record("expected the parser to stay failed")
            return
        }
    }
}
