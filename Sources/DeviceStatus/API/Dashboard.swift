/// `GET /` for browsers: one static page that reads the JSON routes.
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

    static let page = """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>devstatusd</title>
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <style>
        body{font:14px system-ui,sans-serif;margin:2em;color:#222}
        table{border-collapse:collapse}td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}
        .online{color:#18794e}.expired,.offline{color:#b42318}.unknown{color:#777}
        </style></head><body>
        <h1>devstatusd</h1>
        <p id="ready"></p>
        <h2>Watched devices</h2>
        <table><thead><tr><th>name</th><th>status</th><th>last seen</th><th>since</th></tr></thead>
        <tbody id="watched"></tbody></table>
        <script>
        async function refresh() {
          const ready = await fetch('/readyz').then(r => r.json()).catch(() => ({status: 'unreachable'}));
          document.getElementById('ready').textContent = 'daemon: ' + ready.status + (ready.reason ? ' (' + ready.reason + ')' : '');
          const list = await fetch('/', {headers: {Accept: 'application/json'}}).then(r => r.json());
          const rows = [];
          for (const device of list) {
            const view = await fetch('/devices/' + encodeURIComponent(device.type) + '/' + encodeURIComponent(device.id)).then(r => r.ok ? r.json() : null).catch(() => null);
            const status = view ? view.status : (device.expired ? 'expired' : 'unknown');
            const cells = [device.name, status, view && view.lastSeen || '', view && view.since || ''];
            const tr = document.createElement('tr');
            cells.forEach((text, i) => { const td = document.createElement('td'); td.textContent = text; if (i == 1) td.className = status; tr.appendChild(td); });
            rows.push(tr);
          }
          document.getElementById('watched').replaceChildren(...rows);
        }
        refresh(); setInterval(refresh, 5000);
        </script></body></html>
        """
}
