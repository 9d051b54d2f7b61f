import Testing

@testable import HTTP1

@Suite struct RouterTests {
    private func request(_ method: HTTPMethod, _ path: String) -> HTTPRequest {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)
        return HTTPRequest(method: method, target: path, pathSegments: path == "/" ? [] : segments)
    }

    private func answer(_ router: Router, _ method: HTTPMethod, _ path: String) -> (HTTPResponse, String?)? {
        let reply = router.respond(to: request(method, path))
        guard case .response(let response) = reply.kind else { return nil }
        return (response, reply.routeTemplate)
    }

    private var router: Router {
        var router = Router()
        router.get(":type", ":id") { _, p in .json(.ok, "seed \(p["type"]!) \(p["id"]!)") }
        router.get("devices", ":type", ":id") { _, p in .json(.ok, "rich \(p["type"]!) \(p["id"]!)") }
        router.get("devices") { _, _ in .json(.ok, "list") }
        router.post("devices", ":type", ":id", "operations") { _, _ in .json(.created, "op") }
        router.get("devices", ":type", ":id", "operations") { _, _ in .json(.ok, "ops") }
        router.get("healthz") { _, _ in .json(.ok, "up") }
        router.get("files", "*") { _, p in .json(.ok, p.catchAll.joined(separator: ",")) }
        router.get { _, _ in .json(.ok, "root") }
        return router
    }

    @Test func capturesParametersAndNamesTheRoute() {
        let (response, route) = answer(router, .get, "/devices/t1/d1")!
        #expect(String(decoding: response.body, as: UTF8.self) == "rich t1 d1")
        #expect(route == "/devices/:type/:id")
        #expect(String(decoding: answer(router, .get, "/type1/dev1")!.0.body, as: UTF8.self) == "seed type1 dev1")
    }

    @Test func literalSegmentsBeatParametersWhateverTheRegistrationOrder() {
        var router = Router()
        router.get(":a", ":b") { _, _ in .json(.ok, "params") }
        router.get("x", "y") { _, _ in .json(.ok, "literal") }
        #expect(String(decoding: answer(router, .get, "/x/y")!.0.body, as: UTF8.self) == "literal")
        #expect(String(decoding: answer(router, .get, "/x/z")!.0.body, as: UTF8.self) == "params")
    }

    @Test func unknownPathIs404JSON() {
        let (response, route) = answer(router, .get, "/a/b/c/d/e")!
        #expect(response.status == .notFound)
        #expect(response.headers["Content-Type"] == "application/json")
        #expect(String(decoding: response.body, as: UTF8.self) == #"{"error":"not found"}"#)
        #expect(route == nil)
    }

    @Test func theWriteCheckGuardsEveryStateChangingRouteAndNothingElse() {
        var guarded = router
        guarded.delete("devices", ":type", ":id", "operations", ":op") { _, _ in .json(.ok, "cancelled") }
        guarded.writeCheck = { _ in .jsonError(.forbidden, "no") }
        // Writes are refused before their handler runs, and still carry their route's name.
        let (post, postRoute) = answer(guarded, .post, "/devices/t/i/operations")!
        #expect(post.status == .forbidden)
        #expect(postRoute == "/devices/:type/:id/operations")
        #expect(answer(guarded, .delete, "/devices/t/i/operations/1")!.0.status == .forbidden)
        // Reads are not checked; unknown paths and wrong methods answer as before.
        #expect(String(decoding: answer(guarded, .get, "/devices/t/i/operations")!.0.body, as: UTF8.self) == "ops")
        #expect(answer(guarded, .post, "/nowhere/at/all/x/y")!.0.status == .notFound)
        #expect(answer(guarded, .delete, "/devices/t/i/operations")!.0.status == .methodNotAllowed)
        // A check that lets the request through runs the handler.
        guarded.writeCheck = { _ in nil }
        #expect(answer(guarded, .post, "/devices/t/i/operations")!.0.status == .created)
    }

    @Test func wrongMethodIs405WithAllow() {
        let (response, _) = answer(router, .delete, "/devices/t/i/operations")!
        #expect(response.status == .methodNotAllowed)
        #expect(response.headers["Allow"] == "GET, HEAD, POST")
    }

    @Test func optionsWithoutARouteListsTheMethods() {
        let (response, _) = answer(router, .options, "/healthz")!
        #expect(response.status == .noContent)
        #expect(response.headers["Allow"] == "GET, HEAD")
    }

    @Test func headIsServedByTheGetRoute() {
        #expect(answer(router, .head, "/healthz")?.1 == "/healthz")
    }

    @Test func trailingCatchAllTakesTheRestOfThePath() {
        #expect(String(decoding: answer(router, .get, "/files/a/b/c")!.0.body, as: UTF8.self) == "a,b,c")
        #expect(String(decoding: answer(router, .get, "/files")!.0.body, as: UTF8.self) == "")
        // Longer than every pattern: only a catch-all can match.
        #expect(String(decoding: answer(router, .get, "/files/1/2/3/4/5/6")!.0.body, as: UTF8.self) == "1,2,3,4,5,6")
        #expect(answer(router, .get, "/devices/1/2/3/4/5/6")?.0.status == .notFound)
        #expect(answer(router, .get, "/")?.1 == "/")
    }

    @Test func onlyRoutesThatTakeABodyAcceptOne() {
        #expect(router.acceptsBody(method: .post, pathSegments: ["devices", "t", "i", "operations"]))
        #expect(!router.acceptsBody(method: .get, pathSegments: ["devices", "t", "i"]))
        // Unknown routes read the (bounded) body and answer 404/405 rather than 413.
        #expect(router.acceptsBody(method: .post, pathSegments: ["nope"]))
    }
}
