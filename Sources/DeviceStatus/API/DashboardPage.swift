/// The dashboard's three files, served as they are written here (see `Dashboard`).
enum DashboardAssets {
    /// `GET /` for browsers: the page's structure; `dashboard.js` fills it in.
    static let page = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="color-scheme" content="light dark">
        <title>devstatusd</title>
        <link rel="icon" href="data:,">
        <link rel="stylesheet" href="/dashboard.css">
        <script src="/dashboard.js" defer></script>
        </head>
        <body>
        <header class="top">
          <h1>devstatusd</h1>
          <ul class="health" aria-label="Daemon">
            <li id="ready" class="pill" data-state="unknown">Daemon: checking…</li>
            <li id="broker" class="pill" data-state="unknown">Broker: checking…</li>
            <li id="live" class="pill" data-state="unknown">Live updates: connecting…</li>
          </ul>
        </header>
        <main>
          <section aria-labelledby="counts-title">
            <h2 id="counts-title" class="visually-hidden">Devices per status</h2>
            <p id="counts-scope" class="scope">Whole fleet</p>
            <ul id="counts" class="counts" aria-live="polite" aria-atomic="true"></ul>
          </section>
          <form id="filters" class="filters" role="search" aria-label="Find devices">
            <label>Search <input id="q" type="search" placeholder="type/id contains…" autocomplete="off" spellcheck="false"></label>
            <label>Status <select id="status"><option value="">All statuses</option></select></label>
            <label>Type <select id="type"><option value="">All types</option></select></label>
            <label>Sort by <select id="sort">
              <option value="key">Type/id</option>
              <option value="lastSeen">Last seen (newest first)</option>
              <option value="since">Status since (newest first)</option>
            </select></label>
          </form>
          <table id="devices" class="devices">
            <caption id="caption">Devices</caption>
            <thead>
              <tr>
                <th scope="col">Device (type/id)</th>
                <th scope="col">Status</th>
                <th scope="col">Source</th>
                <th scope="col">Last seen</th>
                <th scope="col">Since</th>
              </tr>
            </thead>
            <tbody id="rows"></tbody>
          </table>
          <p id="empty" class="empty" hidden>No device matches.</p>
          <nav class="pager" aria-label="Pages">
            <button id="previous" type="button" disabled>Previous page</button>
            <span id="position" aria-live="polite"></span>
            <button id="next" type="button" disabled>Next page</button>
          </nav>
          <p id="error" class="error" role="alert" hidden></p>
        </main>
        <dialog id="panel" aria-labelledby="panel-title">
          <div class="panel-head">
            <h2 id="panel-title">Device</h2>
            <button id="panel-close" type="button" aria-label="Close the device panel">Close</button>
          </div>
          <section aria-labelledby="panel-status-title">
            <h3 id="panel-status-title">Status</h3>
            <dl id="panel-view" class="facts"></dl>
          </section>
          <section aria-labelledby="panel-payload-title">
            <h3 id="panel-payload-title">Last status payload</h3>
            <pre id="panel-payload" class="payload"></pre>
          </section>
          <section aria-labelledby="panel-history-title">
            <h3 id="panel-history-title">History</h3>
            <table class="compact">
              <caption class="visually-hidden">Status changes, newest first</caption>
              <thead><tr><th scope="col">When</th><th scope="col">Change</th><th scope="col">Source</th><th scope="col">Reason</th></tr></thead>
              <tbody id="panel-history"></tbody>
            </table>
            <p id="panel-history-empty" class="empty" hidden>No status change recorded.</p>
          </section>
          <section aria-labelledby="panel-operations-title">
            <h3 id="panel-operations-title">Operations</h3>
            <table class="compact">
              <caption class="visually-hidden">Operations, oldest first</caption>
              <thead><tr><th scope="col">Operation</th><th scope="col">Status</th><th scope="col">Attempts</th><th scope="col">Topic</th><th scope="col">Created</th></tr></thead>
              <tbody id="panel-operations"></tbody>
            </table>
            <p id="panel-operations-empty" class="empty" hidden>No operation.</p>
          </section>
        </dialog>
        </body>
        </html>

        """#

    /// `GET /dashboard.css`: light and dark colours (WCAG AA against their background), a table that becomes a list
    /// of cards below 640 px.
    static let style = #"""
        :root {
          color-scheme: light dark;
          --bg: #ffffff; --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --panel: #f6f8fa; --focus: #0969da;
          --online: #1a7f37; --offline: #cf222e; --sleeping: #6639ba; --expired: #9a6700; --unknown: #59636e;
          --changed: #fff8c5;
        }
        @media (prefers-color-scheme: dark) {
          :root {
            --bg: #0d1117; --fg: #e6edf3; --muted: #9198a1; --line: #3d444d; --panel: #151b23; --focus: #4493f8;
            --online: #3fb950; --offline: #ff7b72; --sleeping: #bc8cff; --expired: #d29922; --unknown: #9198a1;
            --changed: #3b2e00;
          }
        }
        * { box-sizing: border-box; }
        html { -webkit-text-size-adjust: 100%; }
        body { margin: 0; background: var(--bg); color: var(--fg); font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
        main { padding: 0 1rem 2rem; max-width: 80rem; margin: 0 auto; }
        .visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
        :focus-visible { outline: 2px solid var(--focus); outline-offset: 2px; }
        .top { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem 1.5rem; padding: .75rem 1rem; border-bottom: 1px solid var(--line); background: var(--panel); }
        .top h1 { font-size: 1.25rem; margin: 0; }
        .health { display: flex; flex-wrap: wrap; gap: .5rem; list-style: none; margin: 0; padding: 0; }
        .pill { border: 1px solid var(--line); border-radius: 1rem; padding: .1rem .7rem; font-size: .875rem; }
        .pill::before { content: "● "; }
        .pill[data-state="good"]::before { color: var(--online); }
        .pill[data-state="bad"]::before { color: var(--offline); }
        .pill[data-state="unknown"]::before { color: var(--unknown); }
        .scope { margin: 1rem 0 .25rem; color: var(--muted); }
        .counts { display: flex; flex-wrap: wrap; gap: .5rem; list-style: none; margin: 0 0 1rem; padding: 0; }
        .counts button { font: inherit; color: var(--fg); background: var(--panel); border: 1px solid var(--line); border-radius: .5rem; padding: .4rem .8rem; cursor: pointer; min-width: 6.5rem; text-align: left; }
        .counts button[aria-pressed="true"] { border-color: var(--focus); box-shadow: inset 0 0 0 1px var(--focus); }
        .counts .number { display: block; font-size: 1.4rem; font-weight: 600; font-variant-numeric: tabular-nums; }
        .filters { display: flex; flex-wrap: wrap; gap: .75rem 1rem; margin: 0 0 1rem; }
        .filters label { display: flex; flex-direction: column; gap: .2rem; font-size: .875rem; color: var(--muted); flex: 1 1 10rem; min-width: 0; }
        .filters input, .filters select { font: inherit; color: var(--fg); background: var(--bg); border: 1px solid var(--line); border-radius: .4rem; padding: .35rem .5rem; width: 100%; min-width: 0; }
        table { border-collapse: collapse; width: 100%; }
        caption { text-align: left; font-weight: 600; padding: .25rem 0 .5rem; }
        th, td { text-align: left; padding: .45rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
        thead th { font-size: .8125rem; color: var(--muted); font-weight: 600; }
        td, th { overflow-wrap: anywhere; }
        button.device { font: inherit; color: var(--focus); background: none; border: 0; padding: 0; cursor: pointer; text-align: left; text-decoration: underline; overflow-wrap: anywhere; }
        .device .type { color: var(--muted); }
        .status { font-weight: 600; white-space: nowrap; }
        .status::before { content: "● "; }
        .status.online, .count-online .number { color: var(--online); }
        .status.offline, .count-offline .number { color: var(--offline); }
        .status.sleeping, .count-sleeping .number { color: var(--sleeping); }
        .status.expired, .count-expired .number { color: var(--expired); }
        .status.unknown, .count-unknown .number { color: var(--unknown); }
        time, .muted { color: var(--muted); }
        .pager { display: flex; align-items: center; justify-content: space-between; gap: .5rem; margin-top: 1rem; }
        .pager button, .panel-head button { font: inherit; color: var(--fg); background: var(--panel); border: 1px solid var(--line); border-radius: .4rem; padding: .35rem .8rem; cursor: pointer; }
        .pager button:disabled { opacity: .55; cursor: default; }
        .empty { color: var(--muted); }
        .error { color: var(--offline); font-weight: 600; }
        dialog { width: min(46rem, 100vw - 1rem); max-height: calc(100vh - 2rem); padding: 1rem; color: var(--fg); background: var(--bg); border: 1px solid var(--line); border-radius: .6rem; }
        dialog::backdrop { background: rgb(0 0 0 / .45); }
        .panel-head { display: flex; justify-content: space-between; align-items: start; gap: 1rem; }
        .panel-head h2 { margin: 0; font-size: 1.15rem; overflow-wrap: anywhere; }
        dialog h3 { font-size: 1rem; margin: 1.25rem 0 .4rem; }
        .facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; margin: 0; }
        .facts dt { color: var(--muted); }
        .facts dd { margin: 0; overflow-wrap: anywhere; }
        .payload { background: var(--panel); border: 1px solid var(--line); border-radius: .4rem; padding: .6rem; overflow: auto; max-height: 14rem; white-space: pre-wrap; overflow-wrap: anywhere; font-size: .8125rem; }
        table.compact th, table.compact td { padding: .3rem .4rem; font-size: .875rem; }
        @media (max-width: 640px) {
          main { padding: 0 .5rem 1.5rem; }
          table.devices caption { display: block; }
          table.devices thead { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
          table.devices, table.devices tbody, table.devices tr, table.devices th, table.devices td { display: block; width: 100%; }
          table.devices tr { border: 1px solid var(--line); border-radius: .5rem; margin-bottom: .5rem; padding: .35rem .6rem; }
          table.devices th, table.devices td { border: 0; padding: .15rem 0; }
          table.devices td { display: flex; gap: .5rem; }
          table.devices td::before { content: attr(data-label); color: var(--muted); min-width: 5.5rem; }
          .facts { grid-template-columns: 1fr; }
          .facts dd { margin-bottom: .4rem; }
          table.compact thead { display: none; }
          table.compact tr { display: block; border-bottom: 1px solid var(--line); padding: .3rem 0; }
          table.compact td { display: inline-block; border: 0; padding: .1rem .5rem .1rem 0; }
        }

        """#
}
