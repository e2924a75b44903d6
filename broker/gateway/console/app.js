/*
 * runnel web console — app.js (DESIGN §7). Plain ES2020, no build step, no dependencies.
 *
 * What it talks to (all on the broker's HTTP gateway, same origin):
 *   GET  /topics, /topics/{t}, /topics/{t}/partitions       topic list, replicas, offsets
 *   POST /topics/{t}[/partitions/{p}]                          produce (json.v2 embedded format)
 *   GET  /metrics                                              polled every second: throughput
 *                                                              sparkline and live offsets
 *   GET  /ws                                                   live tail (one socket per partition)
 *   GET  /topics/{t}/partitions/{p}/events?offset=N            SSE fallback for the tail
 *   GET  /groups, /groups/{g}                                  group lag, only when offered
 *   POST /topics, DELETE /topics/{t}                           create and delete a topic
 *   GET  /topics/{t}/configs, PUT|DELETE …/configs/{name}      configs, overrides marked
 *   POST /groups/{g}/reset, DELETE /groups/{g}                 offset reset (preview, execute)
 *   GET  /cluster, /brokers                                    the cluster page: quorum,
 *                                                              brokers, partition health
 *                                                              (/brokers alone on a broker
 *                                                              without /cluster)
 *
 * Pages (the URL's hash): #/topics/{t}, #/groups, #/groups/{g}, #/cluster (#/brokers is
 * the same page); "#/" is the
 * topic list with nothing selected. Below 700 px the topic list is a drawer (☰).
 *
 * Invariants:
 *   1. Broker data never reaches innerHTML unescaped: every string goes through esc().
 *   2. The tail keeps at most `limit` records in memory and in the DOM, however fast
 *      records arrive: incoming records are queued and rendered once per animation frame,
 *      and only the newest `limit` of a burst are turned into rows.
 *   3. A tail resumes exactly: every stream tracks the next offset it expects, so pause
 *      (which closes the sockets, so a paused console costs the broker nothing), resume and
 *      reconnect start from that offset and neither skip nor repeat records. "end" is
 *      resolved to numeric end offsets before subscribing for the same reason.
 *   4. WebSocket is tried first; a socket that fails before it opens while plain HTTP works
 *      switches the console to SSE for the rest of the page's life (a proxy that drops
 *      upgrades stays dropped). A broker that is down is no such proxy: its sockets are
 *      retried, so the tail comes back over WebSocket with the broker.
 */
'use strict';

(() => {
    const $ = (id) => document.getElementById(id);

    // ---- small helpers ------------------------------------------------------------------

    const ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
    function esc(s) {
        return String(s).replace(/[&<>"']/g, (c) => ESC[c]);
    }

    const nf = new Intl.NumberFormat('en-US');
    function fmtInt(n) {
        return n === undefined || n === null || Number.isNaN(n) ? '–' : nf.format(n);
    }

    function fmtRate(x) {
        if (x === undefined || x === null || Number.isNaN(x)) return '–';
        if (x >= 1e6) return (x / 1e6).toFixed(x >= 1e7 ? 0 : 1) + 'M';
        if (x >= 1e4) return (x / 1e3).toFixed(x >= 1e5 ? 0 : 1) + 'k';
        if (x >= 10) return Math.round(x).toString();
        return x === 0 ? '0' : x.toFixed(1);
    }

    function fmtBytes(x) {
        if (x === undefined || x === null || Number.isNaN(x)) return '–';
        const u = ['B', 'KB', 'MB', 'GB'];
        let i = 0;
        while (x >= 1000 && i < u.length - 1) {
            x /= 1000;
            i++;
        }
        return (x >= 100 || i === 0 ? Math.round(x) : x.toFixed(1)) + ' ' + u[i] + '/s';
    }

    function pad(n, w) {
        return String(n).padStart(w, '0');
    }

    // A record's time with its date: "12-06 14:03:22.123" this year, "2025-12-06 14:03:22"
    // before (local time; the cell's title has the full ISO time in UTC).
    function fmtTime(ms) {
        if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) return '';
        const d = new Date(ms);
        const hms = `${pad(d.getHours(), 2)}:${pad(d.getMinutes(), 2)}:${pad(d.getSeconds(), 2)}`;
        const md = `${pad(d.getMonth() + 1, 2)}-${pad(d.getDate(), 2)}`;
        if (d.getFullYear() !== new Date().getFullYear()) return `${d.getFullYear()}-${md} ${hms}`;
        return `${md} ${hms}.${pad(d.getMilliseconds(), 3)}`;
    }

    // Wall-clock time of day, for "since 14:03:22".
    function clock(ms) {
        const d = new Date(ms);
        return `${pad(d.getHours(), 2)}:${pad(d.getMinutes(), 2)}:${pad(d.getSeconds(), 2)}`;
    }

    function isoTime(ms) {
        if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) return '';
        try {
            return new Date(ms).toISOString();
        } catch (e) {
            return '';
        }
    }

    function enc(s) {
        return encodeURIComponent(s);
    }

    // fetch + JSON with the gateway's error shape ({"error_code","message"}) turned into an
    // Error whose message a person can read.
    async function api(method, path, body, type) {
        const opt = { method, headers: { Accept: 'application/json' }, cache: 'no-store' };
        if (body !== undefined) {
            opt.headers['Content-Type'] = type || 'application/json';
            opt.body = JSON.stringify(body);
        }
        const res = await fetch(path, opt);
        const text = await res.text();
        let data = null;
        if (text) {
            try {
                data = JSON.parse(text);
            } catch (e) {
                data = text;
            }
        }
        if (!res.ok) {
            const msg = data && data.message ? data.message : `${res.status} ${res.statusText}`;
            const err = new Error(msg);
            err.status = res.status;
            err.code = data && data.error_code;
            throw err;
        }
        return data;
    }

    // ---- JSON rendering -----------------------------------------------------------------

    const JSON_TOKEN =
        /("(?:\\u[0-9a-fA-F]{4}|\\[^u]|[^\\"])*"(?:\s*:)?|\b(?:true|false|null)\b|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g;

    // JSON text → HTML with token classes. Everything between tokens is punctuation and
    // whitespace, escaped all the same.
    function highlight(json) {
        let out = '';
        let last = 0;
        json.replace(JSON_TOKEN, (tok, _g, at) => {
            out += esc(json.slice(last, at));
            let cls = 'j-num';
            if (tok[0] === '"') cls = /:$/.test(tok) ? 'j-key' : 'j-str';
            else if (tok === 'true' || tok === 'false' || tok === 'null') cls = 'j-lit';
            out += `<span class="${cls}">${esc(tok)}</span>`;
            last = at + tok.length;
            return tok;
        });
        return out + esc(json.slice(last));
    }

    // JSON on one line with a space after ':' and ',' — the "pretty" form of small values.
    function inlineJson(v) {
        if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
        if (Array.isArray(v)) return '[' + v.map(inlineJson).join(', ') + ']';
        const ks = Object.keys(v);
        return ks.length
            ? '{ ' + ks.map((k) => JSON.stringify(k) + ': ' + inlineJson(v[k])).join(', ') + ' }'
            : '{}';
    }

    // Pretty JSON that stays dense: a value that fits in `width` columns stays on one line,
    // larger ones break one level at a time (as prettier does), so a tail of small events is
    // one row per record and a big document is still readable.
    function prettyJson(v, ind, width) {
        if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
        const flat = inlineJson(v);
        if (flat.length + ind.length <= width || flat.length > 200000) return flat;
        const ni = ind + '  ';
        if (Array.isArray(v))
            return (
                '[\n' + v.map((x) => ni + prettyJson(x, ni, width)).join(',\n') + '\n' + ind + ']'
            );
        const ks = Object.keys(v);
        return (
            '{\n' +
            ks.map((k) => ni + JSON.stringify(k) + ': ' + prettyJson(v[k], ni, width)).join(',\n') +
            '\n' +
            ind +
            '}'
        );
    }

    // A record value as HTML: objects, arrays and strings that hold JSON are shown as
    // (pretty) JSON; other strings as they are; absent values as a dim "null".
    function valueHtml(v, pretty) {
        if (v === null || v === undefined) return '<span class="null">null</span>';
        let obj;
        if (typeof v === 'string') {
            const s = v.trim();
            const c = s[0];
            if ((c === '{' && s.endsWith('}')) || (c === '[' && s.endsWith(']'))) {
                try {
                    obj = JSON.parse(s);
                } catch (e) {
                    obj = undefined;
                }
            }
            if (obj === undefined) return esc(v);
        } else {
            obj = v;
        }
        if (typeof obj !== 'object' || obj === null) return highlight(JSON.stringify(obj));
        // Narrow screens break JSON by structure at 40 columns rather than wrap it at random.
        const width = window.innerWidth < 700 ? 40 : 72;
        return highlight(pretty ? prettyJson(obj, '', width) : JSON.stringify(obj));
    }

    function keyText(k) {
        if (k === null || k === undefined) return null;
        return typeof k === 'string' ? k : JSON.stringify(k);
    }

    // Text the tail filter matches against: key and value as a person reads them.
    function recordText(r) {
        const k = keyText(r.key) || '';
        const v =
            r.value === null || r.value === undefined
                ? ''
                : typeof r.value === 'string'
                  ? r.value
                  : JSON.stringify(r.value);
        return (k + '\u0000' + v).toLowerCase();
    }

    // ---- state --------------------------------------------------------------------------

    const state = {
        topics: [], // names from GET /topics
        selected: null, // topic name
        meta: null, // GET /topics/{t}
        parts: new Map(), // partition → {beginning_offset, end_offset, …} from REST
        metrics: null, // last parsed /metrics sample
        groupsSupported: null, // null = unknown, then true/false
        groups: [], // [{name, state, members, offsets:[{topic,partition,offset,lag}]}]
        groupsMore: 0, // more groups than the 50 described
        configs: null, // GET /topics/{t}/configs, null when the broker lacks it
        view: 'home', // the page shown: home | topic | groups | group | brokers
    };

    // ---- /metrics: sparkline and live offsets ------------------------------------------

    const SPARK_N = 60;
    const spark = { rec: [], prev: null, topicRate: new Map(), partRate: new Map() };

    // Prometheus text → {t, rec, bytes, perPart: Map("topic\0p" → {rec, bytes, leo, lso, hw})}.
    function parseMetrics(text) {
        const perPart = new Map();
        let rec = 0;
        let bytes = 0;
        const re = /^(runnel_partition_[a-z_]+)\{([^}]*)\}\s+([0-9.eE+-]+)\s*$/;
        for (const line of text.split('\n')) {
            if (line.charCodeAt(0) !== 114 /* r */) continue;
            const m = re.exec(line);
            if (!m) continue;
            const labels = {};
            for (const lm of m[2].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[lm[1]] = lm[2];
            if (labels.topic === undefined || labels.partition === undefined) continue;
            const key = labels.topic + '\u0000' + labels.partition;
            let e = perPart.get(key);
            if (!e) {
                e = { topic: labels.topic, partition: Number(labels.partition) };
                perPart.set(key, e);
            }
            const v = Number(m[3]);
            switch (m[1]) {
                case 'runnel_partition_records_in_total':
                    e.rec = v;
                    rec += v;
                    break;
                case 'runnel_partition_bytes_in_total':
                    e.bytes = v;
                    bytes += v;
                    break;
                case 'runnel_partition_log_end_offset':
                    e.leo = v;
                    break;
                case 'runnel_partition_log_start_offset':
                    e.lso = v;
                    break;
                case 'runnel_partition_high_watermark':
                    e.hw = v;
                    break;
            }
        }
        return { t: performance.now(), rec, bytes, perPart };
    }

    // Counter delta per second; a counter that went down (broker restarted) counts as 0.
    function rate(cur, prev, dt) {
        if (cur === undefined || prev === undefined || dt <= 0) return undefined;
        return cur >= prev ? (cur - prev) / dt : 0;
    }

    let metricsBusy = false;
    async function pollMetrics() {
        if (metricsBusy) return;
        metricsBusy = true;
        try {
            const res = await fetch('/metrics', { cache: 'no-store' });
            if (!res.ok) throw new Error(res.status);
            const cur = parseMetrics(await res.text());
            setBroker('online');
            const prev = spark.prev;
            if (prev) {
                const dt = (cur.t - prev.t) / 1000;
                const r = rate(cur.rec, prev.rec, dt);
                const b = rate(cur.bytes, prev.bytes, dt);
                spark.rec.push(r || 0);
                if (spark.rec.length > SPARK_N) spark.rec.shift();
                $('rate-rec').textContent = fmtRate(r);
                $('rate-bytes').textContent = fmtBytes(b);
                spark.topicRate.clear();
                spark.partRate.clear();
                for (const [k, e] of cur.perPart) {
                    const p = prev.perPart.get(k);
                    const pr = p ? rate(e.rec, p.rec, dt) : undefined;
                    spark.partRate.set(k, pr);
                    if (pr !== undefined)
                        spark.topicRate.set(e.topic, (spark.topicRate.get(e.topic) || 0) + pr);
                }
            }
            spark.prev = cur;
            state.metrics = cur;
            drawSpark();
            renderTopicList();
            renderParts();
            if (tail.status === 'paused') tail.render();
            if (state.view === 'groups') renderGroupsList();
            if (state.view === 'group') renderGroupPage();
        } catch (e) {
            setBroker('offline');
        } finally {
            metricsBusy = false;
        }
    }

    // Reachability, and what it means for the figures on screen: while the broker is
    // unreachable every table shows its last known values, marked stale (greyed, with a
    // banner that says since when), so nobody reads yesterday's lag as today's.
    let offlineSince = 0;
    function setBroker(s) {
        const el = $('broker');
        const was = el.dataset.state;
        if (was === s) return;
        el.dataset.state = s;
        el.lastElementChild.textContent = s;
        const stale = s === 'offline';
        if (stale && !offlineSince) offlineSince = Date.now();
        if (!stale) offlineSince = 0;
        document.body.classList.toggle('stale', stale);
        const b = $('stale');
        b.hidden = !stale;
        if (stale)
            b.textContent = `Broker unreachable since ${clock(offlineSince)}: the figures below are from then, and may be out of date.`;
        else if (was === 'offline') {
            refreshAll();
            tail.reconnectNow();
        }
    }

    function drawSpark() {
        const cv = $('spark');
        const dpr = window.devicePixelRatio || 1;
        const w = cv.clientWidth || 220;
        const h = cv.clientHeight || 28;
        if (cv.width !== Math.round(w * dpr) || cv.height !== Math.round(h * dpr)) {
            cv.width = Math.round(w * dpr);
            cv.height = Math.round(h * dpr);
        }
        const g = cv.getContext('2d');
        g.setTransform(dpr, 0, 0, dpr, 0, 0);
        g.clearRect(0, 0, w, h);
        const css = getComputedStyle(document.documentElement);
        const accent = css.getPropertyValue('--accent').trim() || '#0b7d88';
        const line = css.getPropertyValue('--line').trim() || '#ccc';
        // Baseline, so an idle broker still shows a quiet, visible chart.
        g.strokeStyle = line;
        g.lineWidth = 1;
        g.beginPath();
        g.moveTo(0, h - 0.5);
        g.lineTo(w, h - 0.5);
        g.stroke();
        const data = spark.rec;
        if (data.length < 2) return;
        const max = Math.max(1, ...data);
        const step = w / (SPARK_N - 1);
        const x0 = w - (data.length - 1) * step;
        const y = (v) => h - 2 - (v / max) * (h - 5);
        g.beginPath();
        g.moveTo(x0, h);
        data.forEach((v, i) => g.lineTo(x0 + i * step, y(v)));
        g.lineTo(w, h);
        g.closePath();
        g.globalAlpha = 0.18;
        g.fillStyle = accent;
        g.fill();
        g.globalAlpha = 1;
        g.beginPath();
        data.forEach((v, i) => (i ? g.lineTo(x0 + i * step, y(v)) : g.moveTo(x0, y(v))));
        g.strokeStyle = accent;
        g.lineWidth = 1.5;
        g.lineJoin = 'round';
        g.stroke();
        const lx = w - 0.5;
        g.fillStyle = accent;
        g.beginPath();
        g.arc(lx - 1.5, y(data[data.length - 1]), 2, 0, Math.PI * 2);
        g.fill();
        $('spark-box').title =
            `Records produced per second, all topics, last minute (peak ${fmtRate(max)}/s)`;
    }

    // ---- topics list --------------------------------------------------------------------

    function topicStats(name) {
        const m = state.metrics;
        if (!m) return null;
        let n = 0;
        let recs = 0;
        let any = false;
        for (const e of m.perPart.values()) {
            if (e.topic !== name) continue;
            n++;
            const end = e.hw !== undefined ? e.hw : e.leo;
            if (end !== undefined && e.lso !== undefined) {
                recs += Math.max(0, end - e.lso);
                any = true;
            }
        }
        return n ? { partitions: n, records: any ? recs : undefined } : null;
    }

    function visibleTopics() {
        const f = $('topic-filter').value.trim().toLowerCase();
        return state.topics.filter((t) => !f || t.toLowerCase().includes(f));
    }

    let lastTopicsHtml = '';
    function renderTopicList() {
        const ul = $('topics');
        const list = visibleTopics();
        let html = '';
        for (const t of list) {
            const st = topicStats(t);
            const r = spark.topicRate.get(t);
            const meta = st
                ? `${st.partitions} partition${st.partitions === 1 ? '' : 's'} · ${fmtInt(st.records)} records`
                : '';
            html +=
                `<li role="option" data-topic="${esc(t)}" aria-selected="${t === state.selected}">` +
                `<span class="t-name" title="${esc(t)}">${esc(t)}</span>` +
                `<span class="t-rate">${r ? fmtRate(r) + '/s' : ''}</span>` +
                `<span class="t-meta">${meta}</span></li>`;
        }
        if (!list.length)
            html = `<li class="none">${state.topics.length ? 'No topic matches.' : 'No topics yet.'}</li>`;
        // Re-render only on change, so hovering and scrolling stay smooth at 1 Hz polling.
        if (html !== lastTopicsHtml) {
            ul.innerHTML = html;
            lastTopicsHtml = html;
        }
        const n = state.topics.length;
        $('topics-count').textContent = `${n} topic${n === 1 ? '' : 's'}`;
    }

    async function loadTopics() {
        try {
            const t = await api('GET', '/topics');
            state.topics = Array.isArray(t) ? t.filter((x) => typeof x === 'string').sort() : [];
            setBroker('online');
        } catch (e) {
            setBroker('offline');
        }
        renderTopicList();
        if (!state.selected && state.view === 'topic') route();
    }

    // The page the hash names: {view: 'topic'|'groups'|'group'|'brokers'|'home', name}.
    function parseHash() {
        const m = /^#\/(topics|groups|brokers|cluster)(?:\/(.+))?$/.exec(location.hash);
        if (!m) return { view: 'home' };
        let name = null;
        try {
            name = m[2] === undefined ? null : decodeURIComponent(m[2]);
        } catch (e) {
            name = null;
        }
        if (m[1] === 'topics') return name ? { view: 'topic', name } : { view: 'home' };
        if (m[1] === 'groups') return name ? { view: 'group', name } : { view: 'groups' };
        return { view: 'brokers' };
    }

    function topicFromHash() {
        const h = parseHash();
        return h.view === 'topic' ? h.name : null;
    }

    const VIEWS = {
        home: 'empty',
        topic: 'topic',
        groups: 'groups-view',
        group: 'group-view',
        brokers: 'brokers-view',
    };

    function showView(view) {
        state.view = view;
        for (const [v, id] of Object.entries(VIEWS)) $(id).hidden = v !== view;
        for (const a of document.querySelectorAll('.views a')) {
            const v = a.dataset.view;
            const on =
                v === view ||
                (v === 'groups' && view === 'group') ||
                (v === 'topics' && (view === 'topic' || view === 'home'));
            if (on) a.setAttribute('aria-current', 'page');
            else a.removeAttribute('aria-current');
        }
        setSide(false);
    }

    // The topic list as a drawer (narrow screens; CSS decides whether it is one).
    function setSide(open) {
        document.body.classList.toggle('side-open', open);
        $('menu').setAttribute('aria-expanded', String(open));
    }

    // Shows the page of the current hash. Leaving a topic stops its tail (a hidden tail
    // would cost the broker for nothing).
    function route() {
        const h = parseHash();
        showView(h.view);
        if (h.view !== 'topic' && state.selected) {
            tail.stop();
            tail.clear();
            state.selected = null;
            renderTopicList();
        }
        if (h.view === 'topic') {
            if (state.topics.includes(h.name) || !state.topics.length) selectTopic(h.name);
            else {
                // A topic that is not (or no longer) there: say so instead of an empty page.
                state.view = 'home';
                $('empty').hidden = false;
                $('topic').hidden = true;
                $('empty').querySelector('h1').textContent = `No topic ${h.name}`;
            }
        } else if (h.view === 'home') {
            $('empty').querySelector('h1').textContent = 'No topic selected';
        } else if (h.view === 'groups') {
            loadGroups();
        } else if (h.view === 'group') {
            loadGroupPage(h.name, true);
        } else if (h.view === 'brokers') {
            loadBrokers();
        }
    }

    // ---- one topic ----------------------------------------------------------------------

    async function selectTopic(name) {
        if (!name || name === state.selected) return;
        tail.stop();
        tail.clear();
        state.selected = name;
        state.meta = null;
        state.configs = null;
        state.parts = new Map();
        if (topicFromHash() !== name) history.replaceState(null, '', '#/topics/' + enc(name));
        showView('topic');
        $('topic-name').textContent = name;
        $('topic-meta').textContent = '';
        $('p-result').textContent = '';
        renderTopicList();
        renderParts();
        await Promise.all([loadTopicMeta(), loadPartitions(), loadConfigs()]);
        if (state.selected !== name) return;
        fillPartitionSelect();
        renderParts();
        // A selected topic starts tailing at its end: what someone opening it wants to see.
        tail.start();
    }

    async function loadTopicMeta() {
        const name = state.selected;
        try {
            const m = await api('GET', '/topics/' + enc(name));
            if (state.selected !== name) return;
            state.meta = m;
            renderTopicMeta();
        } catch (e) {
            if (state.selected === name) $('topic-meta').textContent = e.message;
        }
    }

    // The topic's configs as [{name, value, is_default}], from whatever the broker says:
    //   1. GET /topics/{t}/configs marks each one (is_default);
    //   2. else GET /topics/{t} may say which are overrides: an "overrides" object or list,
    //      or configs given as {value, is_default|source};
    //   3. else the configs are plain values and nobody said which are set: null fields,
    //      and the page claims no override count (the old "8 config overrides" for a topic
    //      with none came from counting every effective value as one).
    function normConfigs(m, list) {
        if (Array.isArray(list))
            return list
                .filter((c) => c && typeof c.name === 'string')
                .map((c) => ({
                    name: c.name,
                    value: c.value === null || c.value === undefined ? '' : String(c.value),
                    is_default: typeof c.is_default === 'boolean' ? c.is_default : null,
                }));
        if (!m || !m.configs || typeof m.configs !== 'object') return null;
        let ov = null;
        if (Array.isArray(m.overrides)) ov = new Set(m.overrides.map(String));
        else if (m.overrides && typeof m.overrides === 'object')
            ov = new Set(Object.keys(m.overrides));
        const out = [];
        for (const [name, v] of Object.entries(m.configs)) {
            let value = v;
            let def = ov ? !ov.has(name) : null;
            if (v && typeof v === 'object') {
                value = v.value;
                if (typeof v.is_default === 'boolean') def = v.is_default;
                else if (typeof v.source === 'string')
                    def = !/topic|override|dynamic/i.test(v.source);
            }
            out.push({
                name,
                value: value === null || value === undefined ? '' : String(value),
                is_default: def,
            });
        }
        if (ov)
            for (const k of ov)
                if (!(k in m.configs))
                    out.push({ name: k, value: String(m.overrides[k] ?? ''), is_default: false });
        return out;
    }

    async function loadConfigs() {
        const name = state.selected;
        if (!name) return;
        let list = null;
        try {
            list = await api('GET', '/topics/' + enc(name) + '/configs');
        } catch (e) {
            list = null; /* an older broker: fall back on GET /topics/{t} */
        }
        if (state.selected !== name) return;
        state.configs = list;
        renderTopicMeta();
        if ($('configs-dlg').open) renderConfigs();
    }

    function topicConfigs() {
        return normConfigs(state.meta, state.configs);
    }

    function renderTopicMeta() {
        const m = state.meta;
        if (!m) return;
        const n = Array.isArray(m.partitions) ? m.partitions.length : 0;
        let rf = 0;
        if (n && Array.isArray(m.partitions[0].replicas)) rf = m.partitions[0].replicas.length;
        const cfgs = topicConfigs();
        let cfgText = '';
        if (cfgs && cfgs.length && cfgs.every((c) => c.is_default !== null)) {
            const ov = cfgs.filter((c) => !c.is_default).length;
            cfgText = ov
                ? ` · ${ov} config override${ov === 1 ? '' : 's'}`
                : ' · no config overrides';
        }
        $('topic-meta').textContent =
            `${n} partition${n === 1 ? '' : 's'}` + (rf ? ` · replication ${rf}` : '') + cfgText;
    }

    async function loadPartitions() {
        const name = state.selected;
        try {
            const ps = await api('GET', '/topics/' + enc(name) + '/partitions');
            if (state.selected !== name || !Array.isArray(ps)) return;
            state.parts = new Map(ps.map((p) => [p.partition, p]));
        } catch (e) {
            /* offsets then come from /metrics alone */
        }
    }

    function partitionIds() {
        const ids = new Set();
        if (state.meta && Array.isArray(state.meta.partitions))
            state.meta.partitions.forEach((p) => ids.add(p.partition));
        for (const p of state.parts.keys()) ids.add(p);
        if (state.metrics)
            for (const e of state.metrics.perPart.values())
                if (e.topic === state.selected) ids.add(e.partition);
        return [...ids].filter((p) => Number.isInteger(p)).sort((a, b) => a - b);
    }

    // Live offsets of one partition: /metrics when it has them (1 Hz), REST otherwise.
    function offsetsOf(p) {
        const m = state.metrics && state.metrics.perPart.get(state.selected + '\u0000' + p);
        const r = state.parts.get(p) || {};
        let start = r.beginning_offset;
        let end = r.end_offset;
        if (m) {
            if (m.lso !== undefined) start = m.lso;
            if (m.hw !== undefined) end = m.hw;
            else if (m.leo !== undefined) end = m.leo;
        }
        return { start, end };
    }

    function renderParts() {
        if (!state.selected) return;
        const tb = $('parts').tBodies[0];
        const byId = new Map();
        if (state.meta && Array.isArray(state.meta.partitions))
            state.meta.partitions.forEach((p) => byId.set(p.partition, p));
        let html = '';
        for (const p of partitionIds()) {
            const meta = byId.get(p) || {};
            const reps = Array.isArray(meta.replicas) ? meta.replicas : [];
            const { start, end } = offsetsOf(p);
            const recs =
                start !== undefined && end !== undefined ? Math.max(0, end - start) : undefined;
            const r = spark.partRate.get(state.selected + '\u0000' + p);
            const isr = reps
                .map((x) =>
                    x.in_sync === false
                        ? `<span class="isr-out" title="out of sync">${esc(x.broker)}</span>`
                        : esc(x.broker),
                )
                .join(',');
            html +=
                `<tr><td class="num">${p}</td><td>${meta.leader !== undefined ? esc(meta.leader) : '–'}</td>` +
                `<td>${reps.map((x) => esc(x.broker)).join(',') || '–'}</td><td>${isr || '–'}</td>` +
                `<td class="num">${fmtInt(start)}</td><td class="num">${fmtInt(end)}</td><td class="num">${fmtInt(recs)}</td>` +
                `<td class="num${r ? '' : ' muted'}">${r === undefined ? '–' : fmtRate(r)}</td></tr>`;
        }
        if (!html) html = '<tr><td colspan="8" class="muted">loading…</td></tr>';
        // Compare with what was written, not with innerHTML (the browser re-serializes it).
        if (tb.dataset.html !== html) {
            tb.innerHTML = html;
            tb.dataset.html = html;
        }
        const tr = spark.topicRate.get(state.selected);
        $('topic-rate').textContent = tr !== undefined ? `${fmtRate(tr)} rec/s in` : '';
        renderGroups();
    }

    function fillPartitionSelect() {
        const sel = $('t-part');
        const ids = partitionIds();
        const prev = sel.value;
        sel.innerHTML =
            `<option value="all">all${ids.length > 1 ? ' (' + ids.length + ')' : ''}</option>` +
            ids.map((p) => `<option value="${p}">${p}</option>`).join('');
        if ([...sel.options].some((o) => o.value === prev)) sel.value = prev;
    }

    // ---- consumer groups (runnel extension; hidden when the gateway lacks it) ----------

    function groupName(g) {
        if (typeof g === 'string') return g;
        return g && (g.group_id || g.group || g.name);
    }

    // Accepts the likely shapes of GET /groups/{g}: an object with an array of per-partition
    // offsets under offsets|partitions|committed, entries carrying topic, partition and a
    // committed offset (offset|committed_offset|current_offset) and maybe lag/log_end_offset.
    function groupOffsets(d) {
        if (!d || typeof d !== 'object') return [];
        const arr = d.offsets || d.partitions || d.committed || (Array.isArray(d) ? d : []);
        if (!Array.isArray(arr)) return [];
        return arr
            .map((o) => ({
                topic: o.topic,
                partition: o.partition,
                offset:
                    o.offset !== undefined
                        ? o.offset
                        : o.committed_offset !== undefined
                          ? o.committed_offset
                          : o.current_offset,
                end: o.log_end_offset !== undefined ? o.log_end_offset : o.end_offset,
                lag: o.lag,
                owner: o.member_id || o.consumer_id || null,
            }))
            .filter((o) => typeof o.topic === 'string' && Number.isInteger(o.partition));
    }

    // The end offset of any topic's partition as of the last /metrics poll (1 Hz), so the
    // groups' lag moves with the partitions card instead of with the 2 s group poll.
    function liveEnd(topic, p) {
        const m = state.metrics && state.metrics.perPart.get(topic + '\u0000' + p);
        if (!m) return undefined;
        return m.hw !== undefined ? m.hw : m.leo;
    }

    // Lag of one committed offset against the live end; the group's own answer otherwise.
    function lagOf(o) {
        const live = liveEnd(o.topic, o.partition);
        const end = live !== undefined ? live : o.end;
        const committed = Number.isInteger(o.offset) && o.offset >= 0 ? o.offset : undefined;
        const lag =
            end !== undefined && committed !== undefined
                ? Math.max(0, end - committed)
                : o.lag !== undefined && o.lag >= 0
                  ? o.lag
                  : undefined;
        return { end, committed, lag };
    }

    let groupsBusy = false;
    async function loadGroups() {
        if (state.groupsSupported === false || groupsBusy) return;
        groupsBusy = true;
        try {
            const d = await api('GET', '/groups');
            const list = Array.isArray(d) ? d : d && Array.isArray(d.groups) ? d.groups : [];
            const out = [];
            for (const g of list.slice(0, 50)) {
                const name = groupName(g);
                if (!name) continue;
                const entry = {
                    name,
                    state: g.state,
                    members: g.members,
                    offsets: [],
                };
                try {
                    const gd = await api('GET', '/groups/' + enc(name));
                    entry.offsets = groupOffsets(gd);
                    if (gd && gd.state) entry.state = gd.state;
                    if (gd && Array.isArray(gd.members)) entry.members = gd.members.length;
                } catch (e) {
                    /* listed but not described: shown without offsets */
                }
                out.push(entry);
            }
            state.groupsSupported = true;
            state.groups = out.sort((a, b) => a.name.localeCompare(b.name));
            state.groupsMore = list.length > 50 ? list.length : 0;
        } catch (e) {
            // 404/405: this gateway has no group endpoints; offsets are all the console shows.
            if (e.status === 404 || e.status === 405 || e.status === 501)
                state.groupsSupported = false;
        } finally {
            groupsBusy = false;
        }
        renderGroups();
        renderGroupsList();
    }

    function groupLink(name) {
        return `<a href="#/groups/${esc(enc(name))}">${esc(name)}</a>`;
    }

    function renderGroups() {
        const card = $('groups-card');
        const rows = [];
        if (state.groupsSupported && state.selected) {
            for (const g of state.groups) {
                for (const o of g.offsets) {
                    if (o.topic !== state.selected) continue;
                    const { end, committed, lag } = lagOf(o);
                    rows.push(
                        `<tr><td>${groupLink(g.name)}</td><td class="num">${o.partition}</td><td class="num">${committed === undefined ? '–' : fmtInt(committed)}</td>` +
                            `<td class="num">${fmtInt(end)}</td><td class="num${lag > 1000 ? ' lag-hi' : ''}">${fmtInt(lag)}</td></tr>`,
                    );
                }
            }
        }
        card.hidden = !state.groupsSupported;
        const html =
            rows.join('') ||
            '<tr><td colspan="5" class="muted">no group has committed offsets here</td></tr>';
        const tb = $('groups').tBodies[0];
        if (tb.dataset.html !== html) {
            tb.innerHTML = html;
            tb.dataset.html = html;
        }
    }

    function setHtml(tb, html) {
        if (tb.dataset.html !== html) {
            tb.innerHTML = html;
            tb.dataset.html = html;
        }
    }

    function renderGroupsList() {
        if (state.view !== 'groups') return;
        const tb = $('groups-list').tBodies[0];
        if (state.groupsSupported === false) {
            setHtml(
                tb,
                '<tr><td colspan="6" class="muted">this broker has no group endpoints</td></tr>',
            );
            return;
        }
        let html = '';
        for (const g of state.groups) {
            let lag = 0;
            let known = false;
            const topics = new Set();
            for (const o of g.offsets) {
                topics.add(o.topic);
                const l = lagOf(o).lag;
                if (l !== undefined) {
                    lag += l;
                    known = true;
                }
            }
            html +=
                `<tr><td>${groupLink(g.name)}</td><td>${esc(g.state ?? '–')}</td><td class="num">${fmtInt(g.members)}</td>` +
                `<td class="num">${fmtInt(g.offsets.length)}</td><td class="num${lag > 1000 ? ' lag-hi' : ''}">${known ? fmtInt(lag) : '–'}</td>` +
                `<td class="wrap">${[...topics].sort().map(esc).join(', ') || '–'}</td></tr>`;
        }
        if (!html) html = '<tr><td colspan="6" class="muted">no consumer groups yet</td></tr>';
        setHtml(tb, html);
        const n = state.groups.length;
        $('groups-count').textContent =
            `${n} group${n === 1 ? '' : 's'}` +
            (state.groupsMore ? ` (first 50 of ${state.groupsMore})` : '');
    }

    // ---- one group: members, lag, reset -------------------------------------------------

    const groupPage = { name: null, data: null, plan: null };

    async function loadGroupPage(name, fresh) {
        if (fresh) {
            groupPage.name = name;
            groupPage.data = null;
            groupPage.plan = null;
            $('g-name').textContent = name;
            $('g-meta').textContent = 'loading…';
            $('r-plan').hidden = true;
            $('r-execute').disabled = true;
            $('r-result').textContent = '';
            setHtml($('g-members').tBodies[0], '');
            setHtml($('g-lag').tBodies[0], '');
        }
        try {
            const d = await api('GET', '/groups/' + enc(name));
            if (groupPage.name !== name) return;
            groupPage.data = d;
        } catch (e) {
            if (groupPage.name !== name) return;
            groupPage.data = null;
            $('g-meta').textContent =
                e.status === 404 ? 'no such group (nothing committed, no member)' : e.message;
            if (e.status !== 404) return;
        }
        renderGroupPage();
    }

    function renderGroupPage() {
        if (state.view !== 'group') return;
        const d = groupPage.data;
        const members = d && Array.isArray(d.members) ? d.members : [];
        const offs = groupOffsets(d);
        if (d) {
            const nm = members.length;
            $('g-meta').textContent =
                `${d.state || '–'} · ${nm} member${nm === 1 ? '' : 's'}` +
                (d.assignor ? ` · ${d.assignor}` : '') +
                (d.group_epoch !== undefined ? ` · epoch ${d.group_epoch}` : '');
        }
        let html = '';
        for (const m of members) {
            const asg = Array.isArray(m.assignment)
                ? m.assignment.map((a) => `${a.topic}[${(a.partitions || []).join(',')}]`).join(' ')
                : '';
            html +=
                `<tr><td class="clip" title="${esc(m.member_id ?? '')}">${esc(m.member_id ?? '–')}</td><td>${esc(m.client_id || '–')}</td>` +
                `<td>${esc(m.host || '–')}</td><td class="num">${fmtInt(m.member_epoch)}</td><td class="wrap">${esc(asg || '–')}</td></tr>`;
        }
        setHtml(
            $('g-members').tBodies[0],
            html || '<tr><td colspan="5" class="muted">no active member</td></tr>',
        );
        html = '';
        let total = 0;
        for (const o of offs.sort(
            (a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition,
        )) {
            const { end, committed, lag } = lagOf(o);
            if (lag) total += lag;
            html +=
                `<tr><td><a href="#/topics/${esc(enc(o.topic))}">${esc(o.topic)}</a></td><td class="num">${o.partition}</td>` +
                `<td class="num">${committed === undefined ? '–' : fmtInt(committed)}</td><td class="num">${fmtInt(end)}</td>` +
                `<td class="num${lag > 1000 ? ' lag-hi' : ''}">${fmtInt(lag)}</td><td class="clip" title="${esc(o.owner ?? '')}">${esc(o.owner || '–')}</td></tr>`;
        }
        if (html)
            html += `<tr class="total"><td>total</td><td></td><td></td><td></td><td class="num">${fmtInt(total)}</td><td></td></tr>`;
        setHtml(
            $('g-lag').tBodies[0],
            html || '<tr><td colspan="6" class="muted">nothing committed</td></tr>',
        );
        // Reset: the topics the group reads or has committed, then every other topic.
        const sel = $('r-topic');
        const mine = new Set(offs.map((o) => o.topic));
        for (const m of members) for (const t of m.topics || []) mine.add(t);
        const opts = [...mine].sort().concat(state.topics.filter((t) => !mine.has(t)));
        const optHtml = opts.map((t) => `<option value="${esc(t)}">${esc(t)}</option>`).join('');
        if (sel.dataset.html !== optHtml) {
            const prev = sel.value;
            sel.innerHTML = optHtml;
            sel.dataset.html = optHtml;
            if (opts.includes(prev)) sel.value = prev;
        }
        $('g-delete').disabled = members.length > 0;
        $('g-delete').title = members.length
            ? 'Stop its consumers first: a group with members cannot be deleted'
            : "Forget this group's committed offsets";
    }

    // The reset request of the form; null (with a message) when incomplete.
    function resetBody(execute) {
        const to = $('r-to').value;
        const body = { topics: [$('r-topic').value], to, execute };
        if (!body.topics[0]) return null;
        if (to === 'offset') {
            const n = Number($('r-offset').value);
            if ($('r-offset').value === '' || !Number.isInteger(n) || n < 0) return null;
            body.offset = n;
        } else if (to === 'datetime') {
            const ms = new Date($('r-time').value).getTime();
            if (!Number.isFinite(ms)) return null;
            body.timestamp = ms;
        }
        return body;
    }

    // Preview, then execute exactly the previewed request (as `runnel group reset` without
    // and with --execute); changing the form asks for a new preview.
    async function resetGroup(execute) {
        const name = groupPage.name;
        const out = $('r-result');
        const body = execute ? groupPage.plan && groupPage.plan.body : resetBody(false);
        if (!body) {
            out.className = 'result err';
            out.textContent = execute ? 'preview first' : 'choose a topic and where to reset to';
            return;
        }
        out.className = 'result dim';
        out.textContent = execute ? 'committing…' : 'computing…';
        $('r-execute').disabled = true;
        try {
            const r = await api('POST', '/groups/' + enc(name) + '/reset', { ...body, execute });
            if (groupPage.name !== name) return;
            const rows = Array.isArray(r && r.offsets) ? r.offsets : [];
            let html = '';
            for (const o of rows)
                html +=
                    `<tr><td>${esc(o.topic)}</td><td class="num">${o.partition}</td><td class="num">${o.current_offset >= 0 ? fmtInt(o.current_offset) : '–'}</td>` +
                    `<td class="num changed">${fmtInt(o.new_offset)}${o.clamped ? ' <span class="dim" title="outside the log: kept within it">(clamped)</span>' : ''}</td>` +
                    `<td class="num dim">${fmtInt(o.log_start_offset)}–${fmtInt(o.log_end_offset)}</td></tr>`;
            setHtml($('r-plan').tBodies[0], html);
            $('r-plan').hidden = false;
            if (execute) {
                groupPage.plan = null;
                out.className = 'result ok';
                out.textContent = `✓ committed ${rows.length} offset${rows.length === 1 ? '' : 's'}`;
                loadGroupPage(name, false);
                loadGroups();
            } else {
                groupPage.plan = { body };
                out.className = 'result dim';
                out.textContent = `preview: ${rows.length} partition${rows.length === 1 ? '' : 's'}; nothing changed yet`;
                $('r-execute').disabled = false;
            }
        } catch (e) {
            out.className = 'result err';
            out.textContent = '✗ ' + e.message;
            if (!execute) groupPage.plan = null;
            else $('r-execute').disabled = !groupPage.plan;
        }
    }

    // ---- cluster: quorum, brokers, partition health -------------------------------------

    const cluster = { data: null }; // the last GET /cluster answer

    function fmtAgo(ms) {
        if (ms === undefined || ms === null || ms < 0) return '–';
        return ms < 10000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
    }

    // Replica ids, those out of the ISR struck through (as on a topic's page).
    function replicasHtml(reps, isr) {
        const inIsr = new Set(isr);
        return (
            reps
                .map((r) =>
                    inIsr.has(r)
                        ? esc(r)
                        : `<span class="isr-out" title="not in the ISR">${esc(r)}</span>`,
                )
                .join(',') || '–'
        );
    }

    function renderClusterParts() {
        const d = cluster.data;
        const tb = $('cl-parts').tBodies[0];
        if (!d) return;
        const only = $('cl-problems').checked;
        const rows = [];
        for (const t of d.topics || [])
            for (const p of t.partitions || []) {
                if (only && !p.offline && !p.under_replicated) continue;
                rows.push({ t, p });
            }
        let html = '';
        for (const { t, p } of rows) {
            const st = p.offline
                ? `<span class="dot err"></span>offline${p.under_replicated ? ', under-replicated' : ''}`
                : p.under_replicated
                  ? '<span class="dot warn"></span>under-replicated'
                  : '<span class="dot ok"></span>ok';
            const cls = p.offline ? 'bad-row' : p.under_replicated ? 'warn-row' : t.internal ? 'muted-row' : '';
            html +=
                `<tr class="${cls}" data-topic="${esc(t.name)}" data-partition="${esc(p.partition)}">` +
                `<td class="clip" title="${esc(t.name)}">${esc(t.name)}</td><td class="num">${esc(p.partition)}</td>` +
                `<td class="num">${p.leader >= 0 ? esc(p.leader) : '–'}</td><td class="num">${esc(p.leader_epoch)}</td>` +
                `<td>${replicasHtml(p.replicas || [], p.isr || [])}</td><td>${(p.isr || []).map(esc).join(',') || '–'}</td>` +
                `<td>${st}</td></tr>`;
        }
        setHtml(
            tb,
            html ||
                `<tr><td colspan="7" class="muted">${only ? 'every partition is fully replicated and led' : 'no partitions'}</td></tr>`,
        );
        const more = d.partitions - d.partitions_listed;
        $('cl-parts-meta').textContent =
            `${fmtInt(d.partitions)} partition${d.partitions === 1 ? '' : 's'}` +
            (more > 0 ? ` · first ${fmtInt(d.partitions_listed)} shown` : '');
    }

    function renderCluster(d, meta) {
        const racks = new Map();
        for (const b of (meta && meta.brokers) || []) racks.set(b.node_id, b.rack);
        const voters = new Set((d.voters || []).map((v) => v.id));
        const reps = new Map(),
            leads = new Map();
        for (const t of d.topics || [])
            for (const p of t.partitions || []) {
                leads.set(p.leader, (leads.get(p.leader) || 0) + 1);
                for (const r of p.replicas || []) reps.set(r, (reps.get(r) || 0) + 1);
            }
        let html = '';
        for (const b of d.brokers || []) {
            const role = b.id === d.controller_id ? 'controller' : voters.has(b.id) ? 'voter' : 'broker';
            html +=
                `<tr class="${b.fenced ? 'bad-row' : ''}" data-broker="${esc(b.id)}"><td class="num">${esc(b.id)}</td><td>${esc(b.endpoint)}</td>` +
                `<td>${esc(racks.get(b.id) || '–')}</td><td>${role}</td>` +
                `<td class="num">${fmtInt(reps.get(b.id) || 0)}</td><td class="num">${fmtInt(leads.get(b.id) || 0)}</td>` +
                `<td class="num">${fmtAgo(b.last_heartbeat_ms)}</td>` +
                `<td>${b.fenced ? '<span class="dot err"></span>fenced' : '<span class="dot ok"></span>active'}</td></tr>`;
        }
        setHtml(
            $('brokers').tBodies[0],
            html || '<tr><td colspan="8" class="muted">no broker registered</td></tr>',
        );
        const n = (d.brokers || []).length,
            fenced = (d.brokers || []).filter((b) => b.fenced).length;
        $('b-meta').textContent =
            (d.controller_id >= 0 ? `controller ${d.controller_id}` : 'no controller') +
            ` · epoch ${d.epoch} · ${n} broker${n === 1 ? '' : 's'}` +
            (fenced ? ` (${fenced} fenced)` : '') +
            ` · seen from node ${d.node_id} (${d.role})`;
        const pill = (n, what, bad) =>
            `<span class="pill" data-state="${n ? bad : 'ok'}">${fmtInt(n)} ${what}</span>`;
        $('cl-health').innerHTML =
            pill(d.under_replicated_count, 'under-replicated', 'paused') +
            pill(d.offline_count, 'offline', 'error');
        // The quorum: only a cluster has one; match offsets and fetch ages are the
        // controller's to know ("–" when another broker answered).
        $('cl-quorum-card').hidden = !d.clustered;
        $('cl-quorum').textContent = d.clustered
            ? `· metadata log at ${fmtInt(d.high_watermark)}, applied here ${fmtInt(d.applied_offset)}`
            : '';
        let vh = '';
        for (const v of d.voters || [])
            vh +=
                `<tr><td class="num">${esc(v.id)}${v.id === d.controller_id ? ' ★' : ''}</td><td>${esc(v.endpoint)}</td>` +
                `<td class="num">${v.match_offset >= 0 ? fmtInt(v.match_offset) : '–'}</td><td class="num">${fmtAgo(v.last_fetch_ms)}</td></tr>`;
        setHtml($('cl-voters').tBodies[0], vh);
        cluster.data = d;
        renderClusterParts();
    }

    // A broker without /cluster (an older one) still has /brokers: the old table.
    function renderBrokersOnly(d) {
        const bs = d && Array.isArray(d.brokers) ? d.brokers : [];
        let html = '';
        for (const b of bs) {
            html +=
                `<tr><td class="num">${esc(b.node_id)}</td><td>${esc(b.host)}:${esc(b.port)}</td><td>${esc(b.rack || '–')}</td>` +
                `<td>${b.controller ? 'controller' : '–'}</td><td class="num">${fmtInt(b.partitions)}</td><td class="num">${fmtInt(b.leaders)}</td>` +
                `<td class="num">–</td><td><span class="dot ok"></span>online</td></tr>`;
        }
        setHtml(
            $('brokers').tBodies[0],
            html || '<tr><td colspan="8" class="muted">no broker in the metadata</td></tr>',
        );
        const n = bs.length;
        $('b-meta').textContent =
            `${n} broker${n === 1 ? '' : 's'} · ${fmtInt(d.topics)} topic${d.topics === 1 ? '' : 's'}` +
            (d.cluster_id ? ` · cluster ${d.cluster_id}` : '');
    }

    async function loadBrokers() {
        const [c, b] = await Promise.allSettled([api('GET', '/cluster'), api('GET', '/brokers')]);
        if (c.status === 'fulfilled' && c.value) {
            renderCluster(c.value, b.status === 'fulfilled' ? b.value : null);
        } else if (b.status === 'fulfilled' && b.value) {
            renderBrokersOnly(b.value);
        } else if (
            c.status === 'rejected' &&
            c.reason.status === 404 &&
            b.status === 'rejected' &&
            b.reason.status === 404
        ) {
            setHtml(
                $('brokers').tBodies[0],
                '<tr><td colspan="8" class="muted">this broker has no /cluster or /brokers endpoint</td></tr>',
            );
        }
        /* unreachable: the tables keep their rows, marked stale */
    }

    // ---- create, delete, configs -------------------------------------------------------

    function openCreate() {
        $('create-form').reset();
        $('c-result').textContent = '';
        $('create-dlg').showModal();
        $('c-name').focus();
    }

    async function createTopic(ev) {
        ev.preventDefault();
        const out = $('c-result');
        const name = $('c-name').value.trim();
        const parts = Number($('c-parts').value || 1);
        const rf = $('c-rf').value === '' ? undefined : Number($('c-rf').value);
        if (!name) {
            out.className = 'result err';
            out.textContent = 'a topic needs a name';
            return;
        }
        if (
            !Number.isInteger(parts) ||
            parts < 1 ||
            (rf !== undefined && (!Number.isInteger(rf) || rf < 1))
        ) {
            out.className = 'result err';
            out.textContent = 'partitions and replication are whole numbers from 1';
            return;
        }
        const configs = {};
        for (const raw of $('c-configs').value.split('\n')) {
            const line = raw.trim();
            if (!line || line.startsWith('#')) continue;
            const i = line.indexOf('=');
            if (i <= 0) {
                out.className = 'result err';
                out.textContent = `not key=value: ${line}`;
                return;
            }
            configs[line.slice(0, i).trim()] = line.slice(i + 1).trim();
        }
        const body = { name, partitions: parts };
        if (rf !== undefined) body.replication_factor = rf;
        if (Object.keys(configs).length) body.configs = configs;
        out.className = 'result dim';
        out.textContent = 'creating…';
        $('c-submit').disabled = true;
        try {
            await api('POST', '/topics', body);
            $('create-dlg').close();
            await loadTopics();
            location.hash = '#/topics/' + enc(name);
        } catch (e) {
            out.className = 'result err';
            out.textContent = '✗ ' + e.message;
        } finally {
            $('c-submit').disabled = false;
        }
    }

    // One confirmation dialog for deleting a topic or a group: the name must be typed.
    let pendingDelete = null;
    function openDelete(kind, name) {
        pendingDelete = { kind, name };
        $('d-title').textContent = `Delete ${kind} ${name}?`;
        $('d-text').textContent =
            kind === 'topic'
                ? 'Every partition and every record of this topic goes, for good. Producers and consumers of it get errors.'
                : "The group's committed offsets are forgotten: its consumers start again from their auto.offset.reset.";
        $('d-name').textContent = name;
        $('d-confirm').value = '';
        $('d-submit').disabled = true;
        $('d-result').textContent = '';
        $('delete-dlg').showModal();
        $('d-confirm').focus();
    }

    async function confirmDelete(ev) {
        ev.preventDefault();
        const p = pendingDelete;
        if (!p || $('d-confirm').value !== p.name) return;
        const out = $('d-result');
        out.className = 'result dim';
        out.textContent = 'deleting…';
        $('d-submit').disabled = true;
        try {
            await api('DELETE', (p.kind === 'topic' ? '/topics/' : '/groups/') + enc(p.name));
            $('delete-dlg').close();
            pendingDelete = null;
            if (p.kind === 'topic') {
                state.topics = state.topics.filter((t) => t !== p.name);
                location.hash = '#/';
                loadTopics();
            } else {
                location.hash = '#/groups';
                loadGroups();
            }
        } catch (e) {
            out.className = 'result err';
            out.textContent = '✗ ' + e.message;
            $('d-submit').disabled = false;
        }
    }

    function openConfigs() {
        if (!state.selected) return;
        $('cfg-title').textContent = `Configs of ${state.selected}`;
        $('cfg-result').textContent = '';
        renderConfigs();
        $('cfg-value').value = '';
        $('configs-dlg').showModal();
        loadConfigs().then(() => {
            // The value box starts at the chosen config's current value, ready to edit.
            const c = (topicConfigs() || []).find((x) => x.name === $('cfg-key').value);
            if (c && !$('cfg-value').value) $('cfg-value').value = c.value;
        });
    }

    function renderConfigs() {
        const cfgs = topicConfigs() || [];
        const all = $('cfg-all').checked;
        const known = cfgs.every((c) => c.is_default !== null);
        let html = '';
        for (const c of cfgs
            .slice()
            .sort((a, b) =>
                a.is_default === b.is_default
                    ? a.name.localeCompare(b.name)
                    : a.is_default
                      ? 1
                      : -1,
            )) {
            if (!all && known && c.is_default) continue;
            const src = c.is_default === null ? '' : c.is_default ? 'default' : 'topic';
            html +=
                `<tr${c.is_default ? ' class="muted-row"' : ''}><td>${esc(c.name)}</td><td class="wrap">${esc(c.value)}</td><td>${src}</td>` +
                `<td>${c.is_default === false ? `<button class="link" data-reset="${esc(c.name)}" title="Back to the broker default">reset</button>` : ''}</td></tr>`;
        }
        if (!html)
            html = `<tr><td colspan="4" class="muted">${cfgs.length ? 'no overrides: every config is the broker default' : 'no configs reported'}</td></tr>`;
        setHtml($('cfg').tBodies[0], html);
        const keys = cfgs.map((c) => c.name).sort();
        const sel = $('cfg-key');
        const optHtml = keys.map((k) => `<option value="${esc(k)}">${esc(k)}</option>`).join('');
        if (sel.dataset.html !== optHtml) {
            const prev = sel.value;
            sel.innerHTML = optHtml;
            sel.dataset.html = optHtml;
            if (keys.includes(prev)) sel.value = prev;
        }
    }

    async function alterConfig(name, value) {
        const out = $('cfg-result');
        const topic = state.selected;
        out.className = 'result dim';
        out.textContent = value === null ? `resetting ${name}…` : `setting ${name}…`;
        try {
            const path = '/topics/' + enc(topic) + '/configs/' + enc(name);
            if (value === null) await api('DELETE', path);
            else await api('PUT', path, { value });
            out.className = 'result ok';
            out.textContent =
                value === null ? `✓ ${name} is the default again` : `✓ ${name} = ${value}`;
            await Promise.all([loadConfigs(), loadTopicMeta()]);
            renderConfigs();
        } catch (e) {
            out.className = 'result err';
            out.textContent = '✗ ' + e.message;
        }
    }

    // ---- produce ------------------------------------------------------------------------

    async function produce(ev) {
        if (ev) ev.preventDefault();
        const topic = state.selected;
        if (!topic) return;
        const out = $('p-result');
        const key = $('p-key').value;
        const raw = $('p-value').value;
        const partStr = $('p-part').value.trim();
        let value;
        try {
            value = JSON.parse(raw);
        } catch (e) {
            value = raw; // not JSON: send the text as a string
        }
        const rec = { value };
        if (key !== '') rec.key = key;
        let path = '/topics/' + enc(topic);
        if (partStr !== '') {
            const p = Number(partStr);
            if (!Number.isInteger(p) || p < 0) {
                out.className = 'result err';
                out.textContent = 'partition must be a whole number';
                return;
            }
            path += '/partitions/' + p;
        }
        out.className = 'result dim';
        out.textContent = 'sending…';
        $('p-send').disabled = true;
        try {
            const t0 = performance.now();
            const r = await api(
                'POST',
                path,
                { records: [rec] },
                'application/vnd.kafka.json.v2+json',
            );
            const ms = Math.round(performance.now() - t0);
            const o = r && Array.isArray(r.offsets) ? r.offsets[0] : null;
            if (o && (o.error_code || o.error)) throw new Error(o.error || 'error ' + o.error_code);
            out.className = 'result ok';
            out.textContent = o
                ? `✓ partition ${o.partition} · offset ${o.offset} · ${ms} ms`
                : `✓ sent · ${ms} ms`;
        } catch (e) {
            out.className = 'result err';
            out.textContent = '✗ ' + e.message;
        } finally {
            $('p-send').disabled = false;
        }
    }

    // ---- live tail ----------------------------------------------------------------------

    const PRETTY_LINES = 7; // lines of a pretty value shown before "click to expand"
    const MAX_WS_STREAMS = 64; // "all" over WebSocket: one socket per partition
    const MAX_SSE_STREAMS = 4; // HTTP/1.1 allows ~6 connections per host; keep 2 for the rest
    const params = new URLSearchParams(location.search);
    let sseOnly = params.get('transport') === 'sse';
    let wsWorked = false; // a WebSocket opened once: upgrades pass, failures are outages

    const tail = {
        streams: [], // {p, next, ws|es, transport, retry, timer}
        status: 'idle', // idle | connecting | live | paused | error
        buf: [], // received records, oldest first, at most limit
        queue: [], // received, not rendered yet
        received: 0,
        rateN: 0,
        rate: 0,
        filter: '',
        error: '',
        gen: 0, // bumps on every (re)start so late events of old streams are dropped
        rafPending: false,

        limit() {
            return Number($('t-limit').value) || 500;
        },

        // Start spec of a fresh tail from the toolbar: 'beginning' | 'end' | N | 's@MS', or
        // null while the offset or time field is empty or incomplete.
        fromSpec() {
            const f = $('t-from').value;
            if (f === 'offset') {
                const v = $('t-offset').value;
                const n = Number(v);
                return v !== '' && Number.isInteger(n) && n >= 0 ? n : null;
            }
            if (f === 'time') {
                const ms = new Date($('t-time').value).getTime();
                return Number.isFinite(ms) ? 's@' + ms : null;
            }
            return f;
        },

        // What a start depends on; a change event that leaves it equal restarts nothing.
        startKey() {
            return `${$('t-part').value}|${this.fromSpec()}`;
        },

        // Whether the streams run (or are coming up).
        running() {
            return this.status === 'live' || this.status === 'connecting';
        },

        async start() {
            const topic = state.selected;
            if (!topic) return;
            this.stop();
            this.key = this.startKey();
            // A new start position is a new view: rows of the old one would mislead.
            this.clear();
            const gen = ++this.gen;
            this.error = '';
            this.setStatus('connecting');
            let ids = partitionIds();
            const sel = $('t-part').value;
            if (sel !== 'all' && sel !== '') ids = [Number(sel)];
            if (!ids.length) {
                await loadTopicMeta();
                ids = partitionIds();
            }
            const spec = this.fromSpec() ?? 'end';
            // Resolve "end" to numbers now, so a later resume or reconnect continues from
            // exactly here (invariant 3), not from a later end.
            let resolved = null;
            if (spec === 'end') {
                try {
                    const ps = await api('GET', '/topics/' + enc(topic) + '/partitions');
                    resolved = new Map(ps.map((p) => [p.partition, p.end_offset]));
                } catch (e) {
                    resolved = null;
                }
            }
            if (gen !== this.gen) return;
            const cap = sseOnly ? MAX_SSE_STREAMS : MAX_WS_STREAMS;
            this.capped = ids.length > cap ? ids.length : 0;
            ids = ids.slice(0, cap);
            this.streams = ids.map((p) => {
                const n = resolved && resolved.get(p);
                return { p, next: Number.isInteger(n) ? n : spec, retry: 0 };
            });
            for (const s of this.streams) this.open(s, gen);
            this.render();
        },

        // Opens (or reopens) one partition's stream from s.next.
        open(s, gen) {
            if (sseOnly) return this.openSse(s, gen);
            const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
            let ws;
            try {
                ws = new WebSocket(`${proto}//${location.host}/ws`);
            } catch (e) {
                return this.fallback(gen);
            }
            s.ws = ws;
            s.transport = 'websocket';
            let opened = false;
            ws.onopen = () => {
                if (gen !== this.gen) return ws.close();
                opened = true;
                wsWorked = true;
                s.retry = 0;
                const msg = {
                    op: 'subscribe',
                    topic: state.selected,
                    partition: s.p,
                    offset: s.next,
                };
                if (this.filter) msg.filter = this.filter;
                ws.send(JSON.stringify(msg));
                this.setStatus('live');
            };
            ws.onmessage = (ev) => {
                if (gen !== this.gen) return;
                let m;
                try {
                    m = JSON.parse(ev.data);
                } catch (e) {
                    return;
                }
                if (m.type === 'records' && Array.isArray(m.records)) {
                    for (const r of m.records) this.accept(s, r);
                } else if (m.type === 'subscribed') {
                    // The gateway says where "beginning", "end" or a time landed: resume
                    // from there even if no record arrives before a pause.
                    if (!Number.isInteger(s.next) && Number.isInteger(m.offset)) s.next = m.offset;
                } else if (m.type === 'error') {
                    this.fail(
                        `${m.message || 'error'}${m.error_code ? ' (' + m.error_code + ')' : ''}`,
                    );
                }
            };
            ws.onclose = () => {
                if (gen !== this.gen || s.ws !== ws) return;
                s.ws = null;
                if (opened || wsWorked) {
                    if (this.status !== 'error') this.reconnect(s, gen);
                    return;
                }
                // Never opened: either upgrades are dropped on the way (fall back to SSE)
                // or the broker is down (try again later). Plain HTTP tells which.
                fetch('/healthz', { cache: 'no-store' })
                    .then(
                        (r) => r.ok,
                        () => false,
                    )
                    .then((up) => {
                        if (gen !== this.gen) return;
                        if (up) this.fallback(gen);
                        else this.reconnect(s, gen);
                    });
            };
        },

        openSse(s, gen) {
            let url = `/topics/${enc(state.selected)}/partitions/${s.p}/events?offset=${enc(String(s.next))}`;
            if (this.filter) url += '&filter=' + enc(this.filter);
            const es = new EventSource(url);
            s.es = es;
            s.transport = 'sse';
            es.onopen = () => {
                if (gen !== this.gen) return es.close();
                this.setStatus('live');
            };
            es.addEventListener('record', (ev) => {
                if (gen !== this.gen) return;
                try {
                    this.accept(s, JSON.parse(ev.data));
                } catch (e) {
                    /* a malformed event: skip it, keep the stream */
                }
            });
            es.addEventListener('error', (ev) => {
                if (gen !== this.gen) return;
                if (ev.data) {
                    // An event named "error" from the gateway: {"error_code","message"}.
                    let m = {};
                    try {
                        m = JSON.parse(ev.data);
                    } catch (e) {
                        m = { message: ev.data };
                    }
                    es.close();
                    return this.fail(m.message || 'error');
                }
                // The browser reconnects by itself (with Last-Event-ID) while CONNECTING.
                if (es.readyState === EventSource.CLOSED)
                    this.fail('event stream refused by the broker');
                else this.setStatus('connecting');
            });
        },

        // WebSocket could not be opened at all: use SSE from now on (invariant 4).
        fallback(gen) {
            if (gen !== this.gen || sseOnly) return;
            sseOnly = true;
            const next = this.streams.map((s) => s);
            this.closeAll();
            this.streams = next.slice(0, MAX_SSE_STREAMS);
            for (const s of this.streams) this.openSse(s, gen);
            this.render();
        },

        // The broker is back: streams waiting out a back-off reconnect at once.
        reconnectNow() {
            if (this.status !== 'connecting') return;
            for (const s of this.streams) {
                if (!s.timer || s.ws || s.es) continue;
                clearTimeout(s.timer);
                s.timer = 0;
                s.retry = 0;
                this.open(s, this.gen);
            }
        },

        reconnect(s, gen) {
            this.setStatus('connecting');
            const delay = Math.min(10000, 500 * 2 ** s.retry++);
            s.timer = setTimeout(() => {
                s.timer = 0;
                if (gen === this.gen) this.open(s, gen);
            }, delay);
        },

        accept(s, r) {
            if (!r || typeof r !== 'object') return;
            if (r.partition === undefined) r.partition = s.p;
            if (Number.isInteger(r.offset)) {
                // Drop what a reconnect replays (at-least-once on the wire, exactly once here).
                if (Number.isInteger(s.next) && r.offset < s.next) return;
                s.next = r.offset + 1;
            }
            this.received++;
            this.rateN++;
            this.queue.push(r);
            const cap = this.limit();
            if (this.queue.length > cap * 2) this.queue.splice(0, this.queue.length - cap);
            if (!this.rafPending) {
                this.rafPending = true;
                requestAnimationFrame(() => this.flush());
            }
        },

        matches(r) {
            if (!this.filter) return true;
            if (r._text === undefined) r._text = recordText(r);
            return r._text.includes(this.filter.toLowerCase());
        },

        rowHtml(r, pretty, fresh) {
            const k = keyText(r.key);
            const hdrs =
                Array.isArray(r.headers) && r.headers.length
                    ? r.headers
                          .map(
                              (h) =>
                                  `${h.name ?? h.key}=${typeof h.value === 'string' ? h.value : JSON.stringify(h.value)}`,
                          )
                          .join('  ')
                    : '';
            const isJson = r.value !== null && typeof r.value === 'object';
            const vh = valueHtml(r.value, pretty);
            // A pretty value taller than the row shows (7 lines, see style.css) says how much
            // is hidden, instead of being cut with no sign.
            let more = '';
            if (pretty) {
                let lines = 1;
                for (let i = vh.indexOf('\n'); i >= 0; i = vh.indexOf('\n', i + 1)) lines++;
                if (lines > PRETTY_LINES) more = ` data-more="+${lines - PRETTY_LINES} lines"`;
            }
            return (
                `<div class="rec${fresh ? ' new' : ''}${pretty ? ' pretty' : ''}${more ? ' clipped' : ''}" data-p="${esc(r.partition)}" data-o="${esc(r.offset)}"${isJson ? ' data-json="1"' : ''}>` +
                `<span class="off">${esc(r.offset)}</span><span class="part">${esc(r.partition)}</span>` +
                `<span class="ts" title="${esc(isoTime(r.timestamp))}">${esc(fmtTime(r.timestamp))}</span>` +
                `<span class="key" title="${k === null ? '' : esc(k)}">${k === null ? '<span class="null">null</span>' : esc(k)}</span>` +
                `<span class="val"${more}>${vh}</span>` +
                (hdrs ? `<span class="hdrs" title="${esc(hdrs)}">${esc(hdrs)}</span>` : '') +
                '</div>'
            );
        },

        // Moves queued records into the buffer and the DOM, newest on top (invariant 2).
        flush() {
            this.rafPending = false;
            const cap = this.limit();
            const q = this.queue;
            this.queue = [];
            if (!q.length) return;
            for (const r of q) this.buf.push(r);
            if (this.buf.length > cap) this.buf.splice(0, this.buf.length - cap);
            const pretty = $('t-pretty').checked;
            const fresh = q.filter((r) => this.matches(r)).slice(-cap);
            if (fresh.length) {
                let html = '';
                // Highlight new rows only while they are few: at tens per second a flashing
                // table is noise, not news.
                const flashRows = this.rate < 10 && fresh.length < 10;
                for (let i = fresh.length - 1; i >= 0; i--)
                    html += this.rowHtml(fresh[i], pretty, flashRows);
                const box = $('t-rows');
                box.insertAdjacentHTML('afterbegin', html);
                while (box.childElementCount > cap) box.lastElementChild.remove();
            }
            this.render();
        },

        // Rebuilds the rows from the buffer (filter, pretty or limit changed).
        redraw() {
            const cap = this.limit();
            if (this.buf.length > cap) this.buf.splice(0, this.buf.length - cap);
            const pretty = $('t-pretty').checked;
            let html = '';
            for (let i = this.buf.length - 1; i >= 0; i--)
                if (this.matches(this.buf[i])) html += this.rowHtml(this.buf[i], pretty, false);
            $('t-rows').innerHTML = html;
            this.render();
        },

        closeAll() {
            for (const s of this.streams) {
                clearTimeout(s.timer);
                if (s.ws) {
                    const ws = s.ws;
                    s.ws = null;
                    ws.onclose = null;
                    try {
                        if (ws.readyState === WebSocket.OPEN)
                            ws.send(JSON.stringify({ op: 'unsubscribe' }));
                        ws.close(1000);
                    } catch (e) {
                        /* already closing */
                    }
                }
                if (s.es) {
                    s.es.close();
                    s.es = null;
                }
            }
        },

        stop() {
            this.gen++;
            this.closeAll();
            this.streams = [];
            this.setStatus('idle');
        },

        pause() {
            if (this.status !== 'live' && this.status !== 'connecting') return;
            this.gen++;
            this.closeAll();
            this.setStatus('paused');
        },

        resume() {
            if (this.status !== 'paused' || !this.streams.length) return this.start();
            const gen = ++this.gen;
            this.setStatus('connecting');
            for (const s of this.streams) {
                s.retry = 0;
                this.open(s, gen);
            }
        },

        // Records past each paused stream's next offset; undefined when no end is known.
        newSincePause() {
            let n = 0;
            let known = false;
            for (const s of this.streams) {
                const end = offsetsOf(s.p).end;
                if (!Number.isInteger(s.next) || end === undefined) continue;
                n += Math.max(0, end - s.next);
                known = true;
            }
            return known ? n : undefined;
        },

        toggle() {
            if (!state.selected) return;
            if (this.status === 'live' || this.status === 'connecting') this.pause();
            else if (this.status === 'paused') this.resume();
            else this.start();
        },

        // Restart from where the streams are when the filter changes while live: the
        // gateway filters too, so a new filter needs new subscriptions.
        refilter() {
            this.filter = $('t-filter').value.trim();
            this.redraw();
            if (this.status === 'live' || this.status === 'connecting') {
                const gen = ++this.gen;
                this.closeAll();
                for (const s of this.streams) this.open(s, gen);
            }
        },

        clear() {
            this.buf = [];
            this.queue = [];
            this.received = 0;
            $('t-rows').innerHTML = '';
            this.render();
        },

        fail(msg) {
            this.error = msg;
            this.gen++;
            this.closeAll();
            this.setStatus('error');
        },

        setStatus(s) {
            this.status = s;
            this.render();
        },

        render() {
            const btn = $('t-toggle');
            btn.textContent =
                { live: 'Pause', connecting: 'Pause', paused: 'Resume' }[this.status] || 'Start';
            const pill = $('t-status');
            pill.dataset.state = this.status;
            const tr = this.streams[0]
                ? this.streams[0].transport === 'sse'
                    ? 'sse'
                    : 'websocket'
                : '';
            const np = this.streams.length;
            const parts = np
                ? `${np} partition${np === 1 ? '' : 's'}${this.capped ? ' of ' + this.capped : ''}`
                : '';
            let text;
            switch (this.status) {
                case 'live':
                    text = `live · ${tr} · ${fmtInt(this.received)} rec · ${fmtRate(this.rate)}/s`;
                    break;
                case 'connecting':
                    text = `connecting · ${tr || '…'}`;
                    break;
                case 'paused':
                    text =
                        'paused at ' +
                        this.streams
                            .map((s) => `${s.p}:${s.next}`)
                            .slice(0, 4)
                            .join(' ') +
                        (np > 4 ? ' …' : '');
                    break;
                case 'error':
                    text = 'error: ' + this.error;
                    break;
                default:
                    text = 'idle';
            }
            if (pill.textContent !== text) pill.textContent = text;
            // Paused: how many records were written since, from the live end offsets (the
            // sockets are closed, so this costs the broker nothing more).
            const nc = $('t-new');
            const n = this.status === 'paused' ? this.newSincePause() : undefined;
            nc.hidden = n === undefined;
            if (n !== undefined) {
                const t = `${fmtInt(n)} new`;
                if (nc.textContent !== t) nc.textContent = t;
                nc.title = `${fmtInt(n)} record${n === 1 ? '' : 's'} written since the pause${this.filter ? ' (before the filter)' : ''}; resume to see them`;
                nc.classList.toggle('some', n > 0);
            }
            pill.title = parts ? `${text} (${parts})` : text;
            const shown = $('t-rows').childElementCount;
            $('t-empty').hidden = shown > 0;
            if (!shown) {
                $('t-empty').innerHTML =
                    this.status === 'idle'
                        ? 'Press <kbd>space</kbd> to start tailing. Newest records appear on top.'
                        : this.buf.length
                          ? 'No record matches the filter.'
                          : 'Waiting for records… produce one on the right, or with <code>runnel produce</code>.';
            }
        },
    };

    setInterval(() => {
        tail.rate = tail.rateN;
        tail.rateN = 0;
        if (tail.status === 'live') tail.render();
    }, 1000);

    // ---- wiring -------------------------------------------------------------------------

    function typing(el) {
        return (
            el &&
            (el.tagName === 'INPUT' ||
                el.tagName === 'TEXTAREA' ||
                el.tagName === 'SELECT' ||
                el.isContentEditable)
        );
    }

    function moveTopic(d) {
        const list = visibleTopics();
        if (!list.length) return;
        const i = list.indexOf(state.selected);
        const j =
            i < 0 ? (d > 0 ? 0 : list.length - 1) : Math.max(0, Math.min(list.length - 1, i + d));
        selectTopic(list[j]);
        const li = $('topics').querySelector(`li[data-topic="${CSS.escape(list[j])}"]`);
        if (li) li.scrollIntoView({ block: 'nearest' });
    }

    function wire() {
        $('topics').addEventListener('click', (e) => {
            const li = e.target.closest('li[data-topic]');
            if (!li) return;
            setSide(false); // also when the topic tapped is the one shown
            if (state.view !== 'topic' || li.dataset.topic !== state.selected)
                location.hash = '#/topics/' + enc(li.dataset.topic);
        });
        $('topic-filter').addEventListener('input', renderTopicList);
        $('topic-filter').addEventListener('keydown', (e) => {
            if (e.key === 'Enter') {
                const list = visibleTopics();
                if (list.length) selectTopic(list[0]);
                e.target.blur();
            }
        });
        $('refresh').addEventListener('click', refreshAll);
        $('produce').addEventListener('submit', produce);
        $('p-value').addEventListener('keydown', (e) => {
            if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) produce(e);
        });
        $('p-key').addEventListener('keydown', (e) => {
            if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) produce(e);
        });
        $('t-toggle').addEventListener('click', () => tail.toggle());
        $('t-clear').addEventListener('click', () => tail.clear());
        $('t-pretty').addEventListener('change', () => tail.redraw());
        $('cl-problems').addEventListener('change', renderClusterParts);
        $('t-limit').addEventListener('change', () => tail.redraw());
        let ft = 0;
        $('t-filter').addEventListener('input', () => {
            clearTimeout(ft);
            ft = setTimeout(() => tail.refilter(), 250);
        });
        // Restart a running (or paused, or failed) tail when its start changed. Browsers fire
        // change and keydown for one Enter, and test drivers fire change on fill: the key
        // check turns those into one restart.
        const restartIfRunning = () => {
            if (tail.status === 'idle' || tail.fromSpec() === null) return;
            if (tail.key !== tail.startKey()) tail.start();
        };
        $('t-from').addEventListener('change', () => {
            const f = $('t-from').value;
            $('t-offset').hidden = f !== 'offset';
            $('t-time').hidden = f !== 'time';
            if (f === 'offset') $('t-offset').focus();
            else if (f === 'time') $('t-time').focus();
            else restartIfRunning();
        });
        $('t-part').addEventListener('change', restartIfRunning);
        for (const id of ['t-offset', 't-time']) {
            $(id).addEventListener('keydown', (e) => {
                if (e.key === 'Enter') {
                    e.preventDefault();
                    if (!tail.running() || tail.key !== tail.startKey()) tail.start();
                }
            });
            $(id).addEventListener('change', restartIfRunning);
        }
        $('t-rows').addEventListener('click', (e) => {
            const row = e.target.closest('.rec');
            if (row && !window.getSelection().toString()) row.classList.toggle('open');
        });
        $('help-open').addEventListener('click', () => $('help').showModal());
        $('menu').addEventListener('click', () =>
            setSide(!document.body.classList.contains('side-open')),
        );
        // A tap beside the open drawer closes it.
        $('main').addEventListener('click', () => {
            if (document.body.classList.contains('side-open')) setSide(false);
        });
        $('topic-new').addEventListener('click', openCreate);
        $('empty-create').addEventListener('click', openCreate);
        $('create-form').addEventListener('submit', (e) => {
            if (e.submitter && e.submitter.value === 'cancel') return;
            createTopic(e);
        });
        $('topic-delete').addEventListener('click', () => openDelete('topic', state.selected));
        $('g-delete').addEventListener('click', () => openDelete('group', groupPage.name));
        $('d-confirm').addEventListener('input', () => {
            $('d-submit').disabled = !pendingDelete || $('d-confirm').value !== pendingDelete.name;
        });
        $('delete-form').addEventListener('submit', (e) => {
            if (e.submitter && e.submitter.value === 'cancel') return;
            confirmDelete(e);
        });
        $('topic-configs').addEventListener('click', openConfigs);
        $('cfg-all').addEventListener('change', renderConfigs);
        $('cfg').addEventListener('click', (e) => {
            const b = e.target.closest('button[data-reset]');
            if (b) alterConfig(b.dataset.reset, null);
        });
        $('cfg-key').addEventListener('change', () => {
            const c = (topicConfigs() || []).find((x) => x.name === $('cfg-key').value);
            $('cfg-value').value = c ? c.value : '';
        });
        $('cfg-form').addEventListener('submit', (e) => {
            e.preventDefault();
            if ($('cfg-key').value) alterConfig($('cfg-key').value, $('cfg-value').value.trim());
        });
        $('g-reset').addEventListener('submit', (e) => {
            e.preventDefault();
            resetGroup(false);
        });
        $('r-execute').addEventListener('click', () => resetGroup(true));
        for (const id of ['r-topic', 'r-to', 'r-offset', 'r-time'])
            $(id).addEventListener('input', () => {
                // A changed form is a new plan: preview it before executing.
                groupPage.plan = null;
                $('r-execute').disabled = true;
                $('r-offset').hidden = $('r-to').value !== 'offset';
                $('r-time').hidden = $('r-to').value !== 'datetime';
            });
        window.addEventListener('hashchange', route);
        window.addEventListener('resize', drawSpark);
        const dark = window.matchMedia('(prefers-color-scheme: dark)');
        if (dark.addEventListener) dark.addEventListener('change', drawSpark);

        document.addEventListener('keydown', (e) => {
            if (e.key === 'Escape') {
                if (typing(document.activeElement)) document.activeElement.blur();
                setSide(false);
                return;
            }
            if (typing(e.target) || e.ctrlKey || e.metaKey || e.altKey) return;
            const focusOn = (id) => {
                e.preventDefault();
                $(id).focus();
                if ($(id).select) $(id).select();
            };
            switch (e.key) {
                case '/':
                    return focusOn('topic-filter');
                case 'j':
                case 'ArrowDown':
                    e.preventDefault();
                    return moveTopic(1);
                case 'k':
                case 'ArrowUp':
                    e.preventDefault();
                    return moveTopic(-1);
                case ' ':
                    if (e.target.tagName === 'BUTTON') return;
                    e.preventDefault();
                    return tail.toggle();
                case 'f':
                    return state.selected && focusOn('t-filter');
                case 'e':
                    return state.selected && focusOn('p-value');
                case 'c':
                    return tail.clear();
                case 't':
                    $('t-pretty').checked = !$('t-pretty').checked;
                    return tail.redraw();
                case 'r':
                    return refreshAll();
                case 'n':
                    e.preventDefault();
                    return openCreate();
                case '?':
                    return $('help').showModal();
            }
        });
    }

    function refreshAll() {
        loadTopics();
        if (state.selected) {
            loadTopicMeta().then(() => {
                fillPartitionSelect();
                renderParts();
            });
            loadPartitions().then(renderParts);
            loadConfigs();
        }
        loadGroups();
        if (state.view === 'group' && groupPage.name) loadGroupPage(groupPage.name, false);
        if (state.view === 'brokers') loadBrokers();
    }

    wire();
    // The hint shows the address this console was loaded from, not the default one.
    $('create-hint').textContent = $('create-hint').textContent.replace(
        'localhost:9780',
        location.host,
    );
    tail.render();
    state.view = parseHash().view;
    loadTopics().then(route);
    pollMetrics();
    loadGroups();
    setInterval(pollMetrics, 1000);
    setInterval(loadTopics, 5000);
    setInterval(() => {
        if (state.selected) loadPartitions().then(renderParts);
    }, 5000);
    // Committed offsets change on commits only; the lag beside them moves with /metrics.
    setInterval(() => {
        if (state.groupsSupported) loadGroups();
        if (state.view === 'group' && groupPage.name) loadGroupPage(groupPage.name, false);
    }, 2000);
    setInterval(() => {
        if (state.view === 'brokers') loadBrokers();
    }, 5000);
    // For tests and the curious: the tail's state, read-only by convention.
    window.runnelConsole = { state, tail };
})();
