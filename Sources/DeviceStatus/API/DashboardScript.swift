extension DashboardAssets {
    /// `GET /dashboard.js`: pages of `/devices`, live from one `EventSource` on `/events`, the device panel from
    /// `/devices/<type>/<id>` and its history and operations.
    static let script = #"""
        // devstatusd dashboard. Plain JavaScript, no dependencies, no build step.
        // Every text that comes from the daemon (types, ids, reasons, payloads) is set with textContent, never as markup.
        'use strict';

        const REFRESH_AFTER_EVENTS_MS = 1000;  // an event's row and counts change at once; the page is re-read after
        const READY_POLL_MS = 5000;
        const CLOCK_TICK_MS = 15000;           // relative times ("3 min ago") are redrawn this often
        const PAGE_SIZE = 100;
        const PERIODIC_REFRESH_MS = 30000;

        const view = {
          filters: { q: '', status: '', type: '', sort: 'key' },
          cursors: [null],          // cursors[i] opens page i
          pageIndex: 0,
          nextCursor: null,
          rows: new Map(),          // "type/id" -> { tr, device }
          counts: {},
          countsType: '',           // the type the counts are restricted to ('' for the whole fleet)
          total: 0,
          typesText: '',
          refreshTimer: null,
          lastRefresh: 0,
          loading: 0,
          panelKey: null,
          panelTimer: null,
          countsFrame: 0,
        };

        // For measurements (scripts/bench-dashboard.py): events applied, and how long after the daemon sent them.
        const stats = { events: 0, applied: 0, latencies: [], firstRender: 0, longestEvent: 0, longestPage: 0 };
        window.dashboardStats = stats;

        const $ = (id) => document.getElementById(id);

        // A device route: each segment percent-encoded on its own, so an id holding "/" is sent as %2F.
        function deviceURL(type, id, rest) {
          return '/devices/' + encodeURIComponent(type) + '/' + encodeURIComponent(id) + (rest || '');
        }

        function element(tag, className, text) {
          const node = document.createElement(tag);
          if (className) node.className = className;
          if (text !== undefined && text !== null) node.textContent = String(text);
          return node;
        }

        function setText(node, text) {
          text = String(text);
          if (node.textContent !== text) node.textContent = text;
        }

        // ---- times ----------------------------------------------------------------------------------------------

        function relative(milliseconds) {
          const seconds = Math.round((Date.now() - milliseconds) / 1000);
          const ahead = seconds < 0;
          const s = Math.abs(seconds);
          let text;
          if (s < 10) return 'just now';
          if (s < 60) text = s + ' s';
          else if (s < 3600) text = Math.floor(s / 60) + ' min';
          else if (s < 86400) text = Math.floor(s / 3600) + ' h';
          else if (s < 86400 * 60) text = Math.floor(s / 86400) + ' d';
          else if (s < 86400 * 730) text = Math.floor(s / (86400 * 30)) + ' months';
          else text = Math.floor(s / (86400 * 365)) + ' years';
          return ahead ? 'in ' + text : text + ' ago';
        }

        // A <time> element: relative text, the exact time on hover and for assistive technology.
        function fillTime(node, iso) {
          if (!iso) {
            setText(node, 'never');
            node.removeAttribute('datetime');
            node.title = 'not known';
            return;
          }
          const when = Date.parse(iso);
          if (node.getAttribute('datetime') !== iso) {
            node.setAttribute('datetime', iso);
            node.title = new Date(when).toLocaleString() + ' (' + iso + ')';
          }
          setText(node, relative(when));
        }

        function tickClocks() {
          for (const node of document.querySelectorAll('time[datetime]')) {
            setText(node, relative(Date.parse(node.getAttribute('datetime'))));
          }
        }

        // ---- rows -----------------------------------------------------------------------------------------------

        function keyOf(device) { return device.type + '/' + device.id; }

        function makeRow(device) {
          const tr = document.createElement('tr');
          const th = element('th');
          th.scope = 'row';
          const button = element('button', 'device');
          button.type = 'button';
          button.append(element('span', 'type', device.type), '/', element('span', 'id', device.id));
          button.addEventListener('click', () => openPanel(device.type, device.id));
          th.append(button);
          const cells = ['Status', 'Source', 'Last seen', 'Since'].map((label) => {
            const td = element('td');
            td.dataset.label = label;
            return td;
          });
          cells[0].append(element('span', 'status'));
          cells[2].append(element('time'));
          cells[3].append(element('time'));
          tr.append(th, ...cells);
          const row = { tr, device, status: cells[0].firstChild, source: cells[1], lastSeen: cells[2].firstChild, since: cells[3].firstChild };
          fillRow(row);
          return row;
        }

        function fillRow(row) {
          const d = row.device;
          if (row.status.className !== 'status ' + d.status) row.status.className = 'status ' + d.status;
          setText(row.status, d.status);
          setText(row.source, d.source || '—');
          fillTime(row.lastSeen, d.lastSeen);
          fillTime(row.since, d.since);
        }

        // Highlights a changed row for a moment: a Web Animation, which (unlike restarting a CSS animation by toggling
        // its class) needs no synchronous layout, so a burst of changes costs no reflow each.
        const quiet = matchMedia('(prefers-reduced-motion: reduce)');
        function flash(tr) {
          if (quiet.matches || !tr.animate) return;
          tr.animate([{ backgroundColor: 'var(--changed)' }, { backgroundColor: 'transparent' }], { duration: 1500, easing: 'ease-out' });
        }

        // Shows a page: rows kept for devices still on it (their cells updated where they changed), new rows for the
        // others; the table body is reordered only when the order changed.
        function showDevices(devices) {
          const next = new Map();
          const ordered = [];
          for (const device of devices) {
            const key = keyOf(device);
            let row = view.rows.get(key);
            if (row) {
              row.device = device;
              fillRow(row);
            } else {
              row = makeRow(device);
            }
            next.set(key, row);
            ordered.push(row.tr);
          }
          view.rows = next;
          const body = $('rows');
          const current = body.children;
          let same = current.length === ordered.length;
          for (let i = 0; same && i < ordered.length; i++) same = current[i] === ordered[i];
          if (!same) body.replaceChildren(...ordered);
          $('empty').hidden = devices.length > 0;
        }

        // ---- counts, filters, pages -----------------------------------------------------------------------------

        function renderCounts() {
          view.countsFrame = 0;
          const list = $('counts');
          const statuses = Object.keys(view.counts);
          const total = statuses.reduce((sum, s) => sum + Math.max(0, view.counts[s]), 0);
          const entries = [['', total, 'all']].concat(statuses.map((s) => [s, Math.max(0, view.counts[s]), s]));
          if (list.children.length !== entries.length) {
            list.replaceChildren(...entries.map(([status]) => {
              const li = element('li', 'count-' + (status || 'all'));
              const button = element('button');
              button.type = 'button';
              button.dataset.status = status;
              button.append(element('span', 'number'), element('span', 'label'));
              button.addEventListener('click', () => {
                view.filters.status = view.filters.status === status ? '' : status;
                $('status').value = view.filters.status;
                filtersChanged();
              });
              li.append(button);
              return li;
            }));
          }
          entries.forEach(([status, count, label], i) => {
            const button = list.children[i].firstChild;
            setText(button.querySelector('.number'), count.toLocaleString('en'));
            setText(button.querySelector('.label'), label);
            button.setAttribute('aria-pressed', String(view.filters.status === status));
            button.setAttribute('aria-label', count + ' ' + (status ? status : 'devices in all') + ', show only these');
          });
          setText($('counts-scope'), view.countsType ? 'Devices of type ' + view.countsType : 'Whole fleet');
          const statusSelect = $('status');
          if (statusSelect.options.length !== statuses.length + 1) {
            statusSelect.replaceChildren(new Option('All statuses', ''), ...statuses.map((s) => new Option(s, s)));
            statusSelect.value = view.filters.status;
          }
        }

        function scheduleCounts() {
          if (!view.countsFrame) view.countsFrame = requestAnimationFrame(renderCounts);
        }

        function renderTypes(types) {
          const text = JSON.stringify(types);
          if (text === view.typesText) return;
          view.typesText = text;
          const select = $('type');
          const options = [new Option('All types', '')];
          for (const [type, count] of Object.entries(types)) options.push(new Option(type + ' (' + count + ')', type));
          if (view.filters.type && !(view.filters.type in types)) options.push(new Option(view.filters.type + ' (0)', view.filters.type));
          select.replaceChildren(...options);
          select.value = view.filters.type;
        }

        function renderPosition(count) {
          const first = view.pageIndex * PAGE_SIZE + 1;
          const range = count ? first + '–' + (first + count - 1) + ' of ' + view.total.toLocaleString('en') : 'none of ' + view.total.toLocaleString('en');
          const parts = [];
          if (view.filters.q) parts.push('matching “' + view.filters.q + '”');
          if (view.filters.status) parts.push(view.filters.status);
          if (view.filters.type) parts.push('of type ' + view.filters.type);
          setText($('caption'), 'Devices' + (parts.length ? ' ' + parts.join(', ') : '') + ': ' + range);
          setText($('position'), 'Page ' + (view.pageIndex + 1));
          $('previous').disabled = view.pageIndex === 0;
          $('next').disabled = !view.nextCursor;
        }

        function pageURL() {
          const params = new URLSearchParams();
          for (const [name, value] of Object.entries(view.filters)) if (value && !(name === 'sort' && value === 'key')) params.set(name, value);
          params.set('limit', String(PAGE_SIZE));
          const cursor = view.cursors[view.pageIndex];
          if (cursor) params.set('cursor', cursor);
          return '/devices?' + params.toString();
        }

        function showError(text) {
          const node = $('error');
          node.hidden = !text;
          setText(node, text || '');
        }

        // Reads the current page and shows it in place.
        async function refresh() {
          clearTimeout(view.refreshTimer);
          view.refreshTimer = null;
          view.lastRefresh = performance.now();
          const ticket = ++view.loading;
          let page;
          try {
            const response = await fetch(pageURL(), { headers: { Accept: 'application/json' } });
            page = await response.json();
            if (!response.ok) throw new Error(page.error || response.statusText);
          } catch (error) {
            if (ticket === view.loading) showError('Could not read the device list: ' + error.message);
            return;
          }
          if (ticket !== view.loading) return;  // a newer request was sent meanwhile
          const began = performance.now();
          showError('');
          view.nextCursor = page.nextCursor;
          view.counts = page.counts;
          view.countsType = view.filters.type;
          view.total = page.total;
          renderTypes(page.types || {});
          showDevices(page.devices);
          renderCounts();
          renderPosition(page.devices.length);
          if (!stats.firstRender) {
            stats.firstRender = performance.now();  // milliseconds since the page was requested
            performance.mark('first-devices');
          }
          stats.longestPage = Math.max(stats.longestPage, performance.now() - began);
        }

        // After events: the page once more within a second (new devices, last-seen times, counts exact again).
        function scheduleRefresh() {
          if (view.refreshTimer) return;
          const wait = Math.max(0, REFRESH_AFTER_EVENTS_MS - (performance.now() - view.lastRefresh));
          view.refreshTimer = setTimeout(refresh, wait);
        }

        function filtersChanged() {
          view.cursors = [null];
          view.pageIndex = 0;
          const params = new URLSearchParams();
          for (const [name, value] of Object.entries(view.filters)) if (value && !(name === 'sort' && value === 'key')) params.set(name, value);
          history.replaceState(null, '', params.toString() ? '#' + params.toString() : location.pathname);
          refresh();
        }

        function readFiltersFromAddress() {
          const params = new URLSearchParams(location.hash.slice(1));
          for (const name of Object.keys(view.filters)) {
            const value = params.get(name);
            if (value) view.filters[name] = value;
          }
          $('q').value = view.filters.q;
          $('sort').value = view.filters.sort;
          $('status').value = view.filters.status;
        }

        // ---- live -----------------------------------------------------------------------------------------------

        function onStatusEvent(message) {
          const began = performance.now();
          const event = JSON.parse(message.data);
          stats.events++;
          const key = event.type + '/' + event.id;
          const row = view.rows.get(key);
          // `to` is what the event's source said; `status` what the device is now, every signal together (a device
          // whose watchdog expired stays expired when its status topic says online).
          const status = event.status || event.to;
          // What the counts held the device as: its row's status, or else (one signal) the event's `from`.
          const before = row ? row.device.status : (status === event.to ? event.from : null);
          if (row) {
            row.device.status = status;
            row.device.source = event.source;
            row.device.since = event.time;
            fillRow(row);
            flash(row.tr);
            stats.applied++;
          }
          // The counts shown are the fleet's (or the type's): moved at once, made exact by the next refresh.
          if ((!view.countsType || view.countsType === event.type) && before !== null && before !== status) {
            if (before in view.counts) view.counts[before]--;
            if (status in view.counts) view.counts[status]++;
            scheduleCounts();
          }
          if (event.time) {
            stats.latencies.push(Date.now() - Date.parse(event.time));
            if (stats.latencies.length > 20000) stats.latencies.splice(0, 10000);
          }
          if (view.panelKey === key) schedulePanel();
          scheduleRefresh();
          stats.longestEvent = Math.max(stats.longestEvent, performance.now() - began);
        }

        function setPill(id, state, text) {
          const node = $(id);
          node.dataset.state = state;
          setText(node, text);
        }

        // One stream for the page's lifetime. The browser reconnects by itself and sends Last-Event-ID, so a restarted
        // daemon replays what it still keeps; the page is re-read on every (re)connection to catch up on the rest.
        function openEvents() {
          const source = new EventSource('/events');
          source.addEventListener('status', onStatusEvent);
          source.addEventListener('open', () => {
            setPill('live', 'good', 'Live updates: on');
            scheduleRefresh();
            checkReady();
          });
          source.addEventListener('error', () => {
            setPill('live', 'bad', source.readyState === EventSource.CLOSED ? 'Live updates: off' : 'Live updates: reconnecting…');
          });
        }

        async function checkReady() {
          try {
            const response = await fetch('/readyz', { headers: { Accept: 'application/json' } });
            const body = await response.json();
            if (body.status === 'ready') setPill('ready', 'good', 'Daemon: ready');
            else setPill('ready', 'bad', 'Daemon: not ready (' + (body.reason || body.status) + ')');
            if (body.broker) setPill('broker', body.broker === 'connected' ? 'good' : 'bad', 'Broker: ' + body.broker);
          } catch (error) {
            setPill('ready', 'bad', 'Daemon: unreachable');
            setPill('broker', 'unknown', 'Broker: unknown');
          }
        }

        // ---- device panel ---------------------------------------------------------------------------------------

        function fact(list, term, value) {
          list.append(element('dt', null, term), element('dd', null, value === null || value === undefined || value === '' ? '—' : value));
        }

        function factTime(list, term, iso) {
          const dd = element('dd');
          const time = element('time');
          fillTime(time, iso);
          if (iso) time.append(' (' + new Date(Date.parse(iso)).toLocaleString() + ')');
          dd.append(time);
          list.append(element('dt', null, term), dd);
        }

        async function getJSON(url) {
          const response = await fetch(url, { headers: { Accept: 'application/json' } });
          const body = await response.json().catch(() => null);
          return { ok: response.ok, status: response.status, body };
        }

        async function loadPanel() {
          view.panelTimer = null;
          const key = view.panelKey;
          if (!key) return;
          const slash = key.indexOf('/');
          const type = key.slice(0, slash), id = key.slice(slash + 1);
          const [rich, history, operations] = await Promise.all([
            getJSON(deviceURL(type, id)), getJSON(deviceURL(type, id, '/history?limit=20')), getJSON(deviceURL(type, id, '/operations')),
          ]).catch(() => [{ ok: false }, { ok: false }, { ok: false }]);
          if (view.panelKey !== key) return;
          const facts = $('panel-view');
          facts.replaceChildren();
          if (rich.ok) {
            const d = rich.body;
            const statusDD = element('dd');
            statusDD.append(element('span', 'status ' + d.status, d.status));
            facts.append(element('dt', null, 'Status'), statusDD);
            fact(facts, 'Source', d.source);
            fact(facts, 'Reason', d.reason);
            factTime(facts, 'Since', d.since);
            factTime(facts, 'Last seen', d.lastSeen);
            if (d.name) fact(facts, 'Configured as', d.name);
            if (d.watchdog) {
              fact(facts, 'Watchdog timeout', d.watchdog.timeoutSeconds + ' s');
              if (d.watchdog.deadline) factTime(facts, 'Expires', d.watchdog.deadline);
              fact(facts, 'Hellos', d.watchdog.helloCount);
            }
            if (d.agent) {
              fact(facts, 'Agent process', d.agent.pid ? 'pid ' + d.agent.pid : 'not running');
              fact(facts, 'Agent restarts', d.agent.restarts);
            }
            if (d.operations) {
              fact(facts, 'Operations', Object.entries(d.operations).filter(([, n]) => n > 0).map(([s, n]) => n + ' ' + s).join(', ') || 'none');
            }
            setText($('panel-payload'), d.statusPayload === null || d.statusPayload === undefined ? 'none' : JSON.stringify(d.statusPayload, null, 2));
          } else {
            fact(facts, 'Status', rich.status === 404 ? 'no longer known' : 'could not be read');
            setText($('panel-payload'), 'none');
          }
          const historyRows = (history.ok ? history.body.transitions : []).map((entry) => {
            const tr = element('tr');
            const when = element('td');
            const time = element('time');
            fillTime(time, entry.time);
            when.append(time);
            const change = element('td');
            change.append(element('span', 'status ' + entry.from, entry.from), ' → ', element('span', 'status ' + entry.to, entry.to));
            tr.append(when, change, element('td', null, entry.source || '—'), element('td', null, entry.reason || '—'));
            return tr;
          });
          $('panel-history').replaceChildren(...historyRows);
          $('panel-history-empty').hidden = historyRows.length > 0;
          const operationRows = (operations.ok ? operations.body.operations : []).map((operation) => {
            const tr = element('tr');
            const created = element('td');
            const time = element('time');
            fillTime(time, operation.createdAt);
            created.append(time);
            tr.append(element('td', null, operation.id), element('td', null, operation.status), element('td', null, operation.attempts),
              element('td', null, operation.topic), created);
            return tr;
          });
          $('panel-operations').replaceChildren(...operationRows);
          $('panel-operations-empty').hidden = operationRows.length > 0;
        }

        function schedulePanel() {
          if (!view.panelTimer) view.panelTimer = setTimeout(loadPanel, 300);
        }

        function openPanel(type, id) {
          view.panelKey = type + '/' + id;
          setText($('panel-title'), type + '/' + id);
          $('panel-view').replaceChildren();
          $('panel-history').replaceChildren();
          $('panel-operations').replaceChildren();
          setText($('panel-payload'), '');
          const panel = $('panel');
          if (!panel.open) panel.showModal();
          loadPanel();
        }

        // ---- start ----------------------------------------------------------------------------------------------

        function start() {
          readFiltersFromAddress();
          let typing = null;
          $('q').addEventListener('input', () => {
            clearTimeout(typing);
            typing = setTimeout(() => {
              view.filters.q = $('q').value.trim();
              filtersChanged();
            }, 200);
          });
          for (const name of ['status', 'type', 'sort']) {
            $(name).addEventListener('change', () => {
              view.filters[name] = $(name).value;
              filtersChanged();
            });
          }
          $('filters').addEventListener('submit', (event) => event.preventDefault());
          $('next').addEventListener('click', () => {
            if (!view.nextCursor) return;
            view.cursors[view.pageIndex + 1] = view.nextCursor;
            view.pageIndex++;
            refresh();
          });
          $('previous').addEventListener('click', () => {
            if (view.pageIndex === 0) return;
            view.pageIndex--;
            refresh();
          });
          $('panel-close').addEventListener('click', () => $('panel').close());
          $('panel').addEventListener('close', () => { view.panelKey = null; });
          refresh();
          checkReady();
          openEvents();
          setInterval(checkReady, READY_POLL_MS);
          setInterval(tickClocks, CLOCK_TICK_MS);
          // Signs of life that change no status (last seen) are not streamed: the page is read again now and then.
          setInterval(scheduleRefresh, PERIODIC_REFRESH_MS);
        }

        start();

        """#
}
