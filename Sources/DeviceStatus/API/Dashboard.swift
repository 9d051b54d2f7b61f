import HTTP1

/// The dashboard for browsers: `GET /` (HTML, when the client asks for it), `GET /dashboard.css` and
/// `GET /dashboard.js`. Three static texts compiled into the binary, so the page works without the internet and
/// without a build step: plain HTML, CSS and JavaScript that read the JSON routes (`/devices`, `/events`, …).
///
/// The script sets every text from the daemon (types, ids, reasons, payloads) as text, never as markup, and the
/// page forbids inline script and anything from elsewhere (`Content-Security-Policy`).
enum Dashboard {
    /// Whether an `Accept` header asks for HTML before JSON (browsers send `text/html,…`; curl sends `*/*`).
    static func prefersHTML(_ accept: String?) -> Bool {
        guard let accept else { return false }
        for part in accept.split(separator: ",") {
            let type = part.split(separator: ";").first?.trimmingCharacters(in: .whitespaces) ?? ""
            if type == "text/html" || type == "application/xhtml+xml" { return true }
            if type == "application/json" { return false }
        }
        return false
    }

    /// Only the daemon's own script, style and routes; no inline script, no framing.
    static let contentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
        + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

    static func registerAssets(in router: inout Router) {
        router.get("dashboard.css") { _, _ in asset(DashboardAssets.style, type: "text/css; charset=utf-8") }
        router.get("dashboard.js") { _, _ in
            asset(DashboardAssets.script, type: "text/javascript; charset=utf-8")
        }
    }

    /// The page itself, for `GET /` when `prefersHTML`.
    static func pageResponse() -> HTTPReply {
        var response = assetResponse(DashboardAssets.page, type: "text/html; charset=utf-8")
        response.headers["Content-Security-Policy"] = contentSecurityPolicy
        response.headers["Referrer-Policy"] = "no-referrer"
        return .response(response)
    }

    private static func asset(_ text: String, type: String) -> HTTPReply {
        .response(assetResponse(text, type: type))
    }

    private static func assetResponse(_ text: String, type: String) -> HTTPResponse {
        var response = HTTPResponse(status: .ok, body: Array(text.utf8))
        response.headers["Content-Type"] = type
        // Revalidated on every load: a new daemon version brings its own page.
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response
    }
}
