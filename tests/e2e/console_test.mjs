// console_test.mjs — the web console in a real browser against a real runneld (suite e2e).
//
// Starts runneld on free 127.0.0.1 ports with a temporary data dir, creates a topic over
// REST, opens the console in Debian's headless Chromium (driven by playwright-core; no
// browser is ever downloaded), starts a tail and checks that a record produced over REST
// shows up in the page within 1 s, then pause/resume, the filter, the produce form, the SSE
// fallback and the sparkline; saves OUT_DIR/console.png; then the admin pages (create,
// configs and delete of a topic, a group's page with an offset reset, brokers, the cluster
// page with partition health), a paused
// tail's count of new records, the page at 400 px (OUT_DIR/console-400.png), and the stale
// marking once runneld is stopped (by its PID; OUT_DIR/console-stale.png).
// Prints TAP. Usage: node console_test.mjs RUNNELD OUT_DIR
//   E2E_MOCK=1     run against tests/e2e/mock_server.py instead (developing the page only)
//   E2E_HEADFUL=1  show the browser
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const webDir = path.join(here, '..', '..', 'broker', 'gateway', 'console');
const { chromium } = createRequire(import.meta.url)('playwright-core');

const [runneld, outDir] = process.argv.slice(2);
if (!runneld || !outDir) {
    console.error('usage: node console_test.mjs RUNNELD OUT_DIR');
    process.exit(2);
}
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TOPIC = 'e2e-orders';
const DEADLINE_MS = 120000; // the whole test, once dependencies are installed

// ---- TAP ------------------------------------------------------------------------------

let nTest = 0;
let closing = false; // finish() has started: later results of main() are not reported
let nFail = 0;
function ok(cond, name, detail) {
    return closing ? cond : report(cond, name, detail);
}

function report(cond, name, detail) {
    nTest++;
    if (!cond) nFail++;
    console.log(`${cond ? 'ok' : 'not ok'} ${nTest} - ${name}`);
    if (!cond && detail) console.log('# ' + String(detail).split('\n').join('\n# '));
    return cond;
}

async function check(name, fn) {
    try {
        const detail = await fn();
        return ok(true, name + (detail ? ` (${detail})` : ''));
    } catch (e) {
        return ok(false, name, e && e.stack ? e.stack : e);
    }
}

// ---- processes and ports --------------------------------------------------------------

function freePort() {
    return new Promise((resolve, reject) => {
        const s = net.createServer();
        s.once('error', reject);
        s.listen(0, '127.0.0.1', () => {
            const { port } = s.address();
            s.close(() => resolve(port));
        });
    });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitHttp(url, ms) {
    const until = Date.now() + ms;
    let last = '';
    while (Date.now() < until) {
        try {
            const r = await fetch(url);
            if (r.ok) return;
            last = `HTTP ${r.status}`;
        } catch (e) {
            last = e.message;
        }
        await sleep(100);
    }
    throw new Error(`${url} not ready after ${ms} ms: ${last}`);
}

function stopByPid(child, ms) {
    return new Promise((resolve) => {
        if (!child || child.exitCode !== null || child.signalCode !== null) return resolve();
        const t = setTimeout(() => {
            try {
                process.kill(child.pid, 'SIGKILL');
            } catch (e) {
                /* already gone */
            }
        }, ms);
        child.once('exit', () => {
            clearTimeout(t);
            resolve();
        });
        try {
            process.kill(child.pid, 'SIGTERM');
        } catch (e) {
            clearTimeout(t);
            resolve();
        }
    });
}

async function rest(base, method, p, body, type = 'application/vnd.kafka.json.v2+json') {
    const r = await fetch(base + p, {
        method,
        headers: body === undefined ? {} : { 'Content-Type': type },
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${p}: HTTP ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
}

// ---- the test -------------------------------------------------------------------------

const tmp = mkdtempSync(path.join(os.tmpdir(), 'runnel-e2e-'));
let server = null;
let serverLog = '';
let browser = null;
let startRunneld = null; // (re)starts runneld on the same ports and data

function logServer() {
    for (const s of [server.stdout, server.stderr])
        s.on('data', (d) => (serverLog = (serverLog + d).slice(-8000)));
    server.once('exit', (code, sig) => (serverLog += `\n[server exited: ${code ?? sig}]`));
}

async function main() {
    const httpPort = await freePort();
    const base = `http://127.0.0.1:${httpPort}`;
    if (process.env.E2E_MOCK) {
        server = spawn('python3', [path.join(here, 'mock_server.py'), '--port', String(httpPort)], {
            stdio: ['ignore', 'pipe', 'pipe'],
        });
    } else {
        const nativePort = await freePort();
        startRunneld = () => {
            server = spawn(
                runneld,
                [
                    '--data-dir',
                    path.join(tmp, 'data'),
                    '--listen',
                    `127.0.0.1:${nativePort}`,
                    '--http',
                    `127.0.0.1:${httpPort}`,
                ],
                { stdio: ['ignore', 'pipe', 'pipe'] },
            );
            logServer();
        };
        startRunneld();
    }
    if (process.env.E2E_MOCK) logServer();

    if (
        !(await check(`broker serves HTTP on ${base}`, async () => {
            await waitHttp(base + '/topics', 15000);
        }))
    )
        return;

    await check('the console assets are the files of its folder, byte for byte', async () => {
        const assets = [
            ['/', 'index.html', 'text/html'],
            ['/index.html', 'index.html', 'text/html'],
            ['/app.js', 'app.js', 'javascript'],
            ['/style.css', 'style.css', 'text/css'],
            ['/favicon.svg', 'favicon.svg', 'image/svg+xml'],
        ];
        for (const [url, file, type] of assets) {
            const r = await fetch(base + url);
            if (r.status !== 200) throw new Error(`${url}: HTTP ${r.status}`);
            const ct = r.headers.get('content-type') || '';
            if (!ct.includes(type)) throw new Error(`${url}: content-type ${ct}, want ${type}`);
            const got = Buffer.from(await r.arrayBuffer());
            if (!got.equals(readFileSync(path.join(webDir, file))))
                throw new Error(`${url} differs from broker/gateway/console/${file}`);
        }
        const r = await fetch(base + '/no-such-asset.js');
        if (r.status !== 404) throw new Error(`unknown asset: HTTP ${r.status}, want 404`);
    });

    if (
        !(await check(`create topic ${TOPIC} (2 partitions) over REST`, async () => {
            await rest(
                base,
                'POST',
                '/topics',
                { name: TOPIC, partitions: 2, replication_factor: 1 },
                'application/json',
            );
        }))
    )
        return;
    // Something to see below the fold of the first tail, and for "from beginning".
    await rest(base, 'POST', `/topics/${TOPIC}/partitions/1`, {
        records: [
            { key: 'seed', value: { kind: 'seed', note: 'written before the console opened' } },
        ],
    });

    const userDataDir = path.join(tmp, 'chromium-profile');
    const ctx = await chromium.launchPersistentContext(userDataDir, {
        executablePath: CHROMIUM,
        headless: !process.env.E2E_HEADFUL,
        args: [
            '--headless',
            '--no-sandbox',
            '--disable-gpu',
            '--disable-background-networking',
            '--disable-component-update',
            '--disable-sync',
            '--no-first-run',
        ],
        viewport: { width: 1360, height: 820 },
        colorScheme: process.env.E2E_COLOR_SCHEME || 'dark',
        timeout: 20000,
    });
    browser = ctx;
    const page = ctx.pages()[0] || (await ctx.newPage());
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => {
        // The console probes GET /groups (a runnel extension) and hides group lag on 404;
        // Chromium logs that probe as an error, which is not one.
        const probe = /\/groups$/.test(m.location().url || '') && /status of 404/.test(m.text());
        if (m.type() === 'error' && !probe) pageErrors.push(m.text());
    });
    if (process.env.E2E_TRACE_WS) {
        page.on('websocket', (ws) => {
            const id = Math.random().toString(36).slice(2, 6);
            ws.on('framesent', (f) => console.log(`# ws ${id} >> ${f.payload}`));
            ws.on('framereceived', (f) =>
                console.log(`# ws ${id} << ${String(f.payload).slice(0, 160)}`),
            );
            ws.on('close', () => console.log(`# ws ${id} closed`));
        });
    }
    const status = page.locator('#t-status');
    const rowWith = (text) => page.locator('#t-rows .rec', { hasText: text });

    // Everything below needs the page and a running tail: stop at the first of these that
    // fails rather than time out on every later step.
    const opened = await check('the console opens and lists the topic', async () => {
        await page.goto(base + '/', { waitUntil: 'domcontentloaded' });
        await page.locator(`#topics li[data-topic="${TOPIC}"]`).waitFor({ timeout: 5000 });
    });

    if (!opened) return;
    const live = await check('selecting the topic starts a live tail over WebSocket', async () => {
        await page.locator(`#topics li[data-topic="${TOPIC}"]`).click();
        await page.locator('#t-status[data-state="live"]').waitFor({ timeout: 5000 });
        const text = await status.textContent();
        if (!/websocket/.test(text)) throw new Error(`status: ${text}`);
        return text.replace(/ · \d.*$/, '');
    });

    if (!live) return;
    // The headline: produce over REST, see it in the page within 1 s.
    await check('a record produced over REST appears in the tail within 1 s', async () => {
        const nonce = 'n' + Math.random().toString(36).slice(2, 10);
        const t0 = Date.now();
        await rest(base, 'POST', `/topics/${TOPIC}/partitions/0`, {
            records: [
                {
                    key: 'order-1',
                    value: {
                        id: 1,
                        nonce,
                        customer: { name: 'Ada', city: 'London' },
                        lines: [{ sku: 'tea-earl-grey', qty: 2, price: 4.5 }],
                    },
                },
            ],
        });
        await rowWith(nonce).waitFor({ timeout: 1000 });
        const ms = Date.now() - t0;
        const row = rowWith(nonce).first();
        const key = await row.locator('.key').textContent();
        if (key.replace(/"/g, '') !== 'order-1') throw new Error(`key cell: ${key}`);
        // Pretty-printed JSON: a value this long spans lines, small parts stay inline, and
        // keys are highlighted.
        const val = await row.locator('.val').textContent();
        if (
            !val.includes('\n  "nonce": ') ||
            !val.includes('"customer": { "name": "Ada", "city": "London" }')
        )
            throw new Error(`value not pretty-printed: ${JSON.stringify(val)}`);
        if ((await row.locator('.val .j-key').count()) < 8)
            throw new Error('JSON keys not highlighted');
        const first = await page.locator('#t-rows .rec').first().textContent();
        if (!first.includes(nonce)) throw new Error('newest record is not on top');
        return `${ms} ms`;
    });

    await check(
        'pause stops the tail; resume delivers what was produced meanwhile, once',
        async () => {
            await page.keyboard.press('Space');
            await page.locator('#t-status[data-state="paused"]').waitFor({ timeout: 2000 });
            const nonce = 'p' + Math.random().toString(36).slice(2, 10);
            await rest(base, 'POST', `/topics/${TOPIC}/partitions/0`, {
                records: [{ key: 'k', value: `while paused ${nonce}` }],
            });
            await sleep(400);
            if ((await rowWith(nonce).count()) !== 0)
                throw new Error('a paused tail rendered a new record');
            await page.keyboard.press('Space');
            await rowWith(nonce).waitFor({ timeout: 3000 });
            await sleep(300);
            const n = await rowWith(nonce).count();
            if (n !== 1) throw new Error(`record shown ${n} times after resume`);
            const val = await rowWith(nonce).first().locator('.val').textContent();
            if (val !== `while paused ${nonce}`)
                throw new Error(`plain string value shown as ${JSON.stringify(val)}`);
        },
    );

    await check('the text filter hides rows that do not match', async () => {
        const before = await page.locator('#t-rows .rec').count();
        await page.keyboard.press('f');
        await page.keyboard.type('while paused');
        await page.waitForFunction(
            () => document.querySelectorAll('#t-rows .rec').length === 1,
            null,
            { timeout: 3000 },
        );
        await page.locator('#t-filter').fill('');
        await page.keyboard.press('Escape');
        await page.waitForFunction(
            (n) => document.querySelectorAll('#t-rows .rec').length === n,
            before,
            { timeout: 3000 },
        );
    });

    await check('the produce form sends a record that the tail then shows', async () => {
        const nonce = 'f' + Math.random().toString(36).slice(2, 10);
        await page.locator('#p-key').fill('form-key');
        await page
            .locator('#p-value')
            .fill(JSON.stringify({ from: 'form', nonce, tags: ['a', 'b'], ok: true }));
        await page.locator('#p-value').press('Control+Enter');
        await page.locator('#p-result.ok').waitFor({ timeout: 3000 });
        const res = await page.locator('#p-result').textContent();
        if (!/offset \d+/.test(res)) throw new Error(`result: ${res}`);
        await rowWith(nonce).waitFor({ timeout: 2000 });
        await page.keyboard.press('Escape');
        return res.replace(/^✓ /, '');
    });

    await check('"from beginning" replays records written before the tail started', async () => {
        await page.locator('#t-from').selectOption('beginning');
        await rowWith('written before the console opened').waitFor({ timeout: 3000 });
        await page.locator('#t-status[data-state="live"]').waitFor({ timeout: 3000 });
    });

    await check('"from offset" on one partition starts exactly at that offset', async () => {
        await page.locator('#t-part').selectOption('0');
        await page.locator('#t-from').selectOption('offset');
        await page.locator('#t-offset').fill('1');
        await page.locator('#t-offset').press('Enter');
        await page.locator('#t-rows .rec[data-p="0"][data-o="1"]').waitFor({ timeout: 3000 });
        await sleep(300);
        const rows = await page.$$eval('#t-rows .rec', (els) =>
            els.map((e) => [e.dataset.p, Number(e.dataset.o)]),
        );
        if (rows.some(([p]) => p !== '0')) throw new Error('a row of another partition');
        if (Math.min(...rows.map(([, o]) => o)) !== 1) throw new Error(`offsets ${rows}`);
        return `${rows.length} rows`;
    });

    await check('"from time" starts at the first record at or after that time', async () => {
        const a = 'ta' + Math.random().toString(36).slice(2, 10);
        const b = 'tb' + Math.random().toString(36).slice(2, 10);
        await rest(base, 'POST', `/topics/${TOPIC}/partitions/0`, {
            records: [{ value: `before ${a}` }],
        });
        // The time field has whole seconds: start at the next second, produce after it.
        const t = Math.floor(Date.now() / 1000) * 1000 + 1000;
        await sleep(t - Date.now() + 50);
        await rest(base, 'POST', `/topics/${TOPIC}/partitions/0`, {
            records: [{ value: `after ${b}` }],
        });
        const d = new Date(t);
        const p2 = (n) => String(n).padStart(2, '0');
        const local = `${d.getFullYear()}-${p2(d.getMonth() + 1)}-${p2(d.getDate())}T${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())}`;
        await page.locator('#t-from').selectOption('time');
        await page.locator('#t-time').fill(local);
        await page.locator('#t-time').press('Enter');
        await rowWith(b).waitFor({ timeout: 3000 });
        await sleep(300);
        if ((await rowWith(a).count()) !== 0)
            throw new Error('a record from before the start time');
    });

    await page.locator('#t-part').selectOption('all');
    await page.locator('#t-from').selectOption('end');
    await page.locator('#t-status[data-state="live"]').waitFor({ timeout: 3000 });

    // Traffic for the sparkline and the screenshot: mixed records at a varying rate until
    // the screenshot is taken.
    const items = ['tea', 'rye', 'figs', 'oats', 'miso', 'kelp'];
    let producing = true;
    const traffic = (async () => {
        for (let i = 0; producing && i < 200; i++) {
            const recs = [];
            for (let j = 0; j < 1 + ((i * 7) % 5); j++) {
                const id = 100 + i * 5 + j;
                let value = {
                    id,
                    item: items[id % items.length],
                    qty: 1 + (id % 7),
                    paid: id % 3 !== 0,
                };
                if (id % 9 === 0) value = `plain text event ${id}`;
                if (id % 31 === 0)
                    value = {
                        id,
                        customer: { name: 'Grace', city: 'Arlington' },
                        lines: [
                            { sku: 'kelp-200g', qty: 3, price: 2.75 },
                            { sku: 'miso-white', qty: 1, price: 6.1 },
                        ],
                        note: null,
                    };
                recs.push({ key: `cust-${(id * 7) % 13}`, value });
            }
            await rest(base, 'POST', `/topics/${TOPIC}`, { records: recs }).catch(() => {});
            await sleep(90);
        }
    })();
    await sleep(3500);

    await check('the sparkline shows produce throughput from /metrics', async () => {
        // The rate is the counter's delta over the last second: non-zero while producing.
        await page.waitForFunction(
            () => /^(?:[1-9]|0\.[1-9])|[kM]$/.test(document.getElementById('rate-rec').textContent),
            null,
            {
                timeout: 3000,
            },
        );
        return (await page.locator('#rate-rec').textContent()) + ' rec/s';
    });

    await check('no script errors in the page', async () => {
        if (pageErrors.length) throw new Error(pageErrors.join('\n'));
    });

    await check(`screenshot saved to ${path.join(outDir, 'console.png')}`, async () => {
        await page.locator('#t-filter').blur();
        await page.screenshot({ path: path.join(outDir, 'console.png') });
    });
    producing = false;
    await traffic;

    await check('the tail keeps at most the chosen number of rows, newest on top', async () => {
        await page.locator('#t-limit').selectOption('100');
        const recs = Array.from({ length: 150 }, (_, i) => ({
            key: `bulk-${i}`,
            value: { bulk: i },
        }));
        await rest(base, 'POST', `/topics/${TOPIC}/partitions/0`, { records: recs });
        await rowWith('"bulk": 149').waitFor({ timeout: 3000 });
        await sleep(200);
        const n = await page.locator('#t-rows .rec').count();
        const kept = await page.evaluate(() => window.runnelConsole.tail.buf.length);
        if (n !== 100 || kept !== 100) throw new Error(`${n} rows, ${kept} kept; want 100`);
        const top = await page.locator('#t-rows .rec').first().textContent();
        if (!top.includes('"bulk": 149')) throw new Error(`top row: ${top}`);
    });

    await check('the SSE fallback tails too (?transport=sse)', async () => {
        const p2 = await ctx.newPage();
        await p2.goto(`${base}/?transport=sse#/topics/${TOPIC}`, { waitUntil: 'domcontentloaded' });
        await p2.locator('#t-status[data-state="live"]').waitFor({ timeout: 5000 });
        const st = await p2.locator('#t-status').textContent();
        if (!/sse/.test(st)) throw new Error(`status: ${st}`);
        const nonce = 's' + Math.random().toString(36).slice(2, 10);
        const t0 = Date.now();
        await rest(base, 'POST', `/topics/${TOPIC}/partitions/1`, {
            records: [{ key: 'sse', value: { nonce } }],
        });
        await p2.locator('#t-rows .rec', { hasText: nonce }).waitFor({ timeout: 2000 });
        const ms = Date.now() - t0;
        await p2.close();
        return `${ms} ms`;
    });

    await check('a paused tail counts the records written since the pause', async () => {
        await page.locator('#t-part').selectOption('all');
        await page.locator('#t-status[data-state="live"]').waitFor({ timeout: 3000 });
        await page.locator('#t-toggle').click();
        await page.locator('#t-status[data-state="paused"]').waitFor({ timeout: 2000 });
        await page.locator('#t-new').waitFor({ timeout: 3000 });
        const before = await page.locator('#t-new').textContent();
        if (before !== '0 new') throw new Error(`right after the pause: ${before}`);
        await rest(base, 'POST', `/topics/${TOPIC}`, {
            records: [{ value: 'while paused 1' }, { value: 'while paused 2' }, { value: 'x' }],
        });
        // /metrics is polled once a second: the count follows within a few.
        await page.waitForFunction(
            () => document.getElementById('t-new').textContent === '3 new',
            null,
            { timeout: 4000 },
        );
        await page.locator('#t-toggle').click();
        await page.locator('#t-status[data-state="live"]').waitFor({ timeout: 3000 });
        if (!(await page.locator('#t-new').isHidden())) throw new Error('count shown while live');
    });

    await check('record times carry the date; a clipped pretty value says so', async () => {
        const big = { nonce: 'big' + Math.random().toString(36).slice(2, 8) };
        for (let i = 0; i < 12; i++)
            big['field_' + i] = { index: i, words: 'lorem ipsum dolor sit amet consectetur' };
        await rest(base, 'POST', `/topics/${TOPIC}/partitions/0`, { records: [{ value: big }] });
        const row = rowWith(big.nonce).first();
        await row.waitFor({ timeout: 3000 });
        const ts = await row.locator('.ts').textContent();
        if (!/^\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$/.test(ts)) throw new Error(`time cell: ${ts}`);
        const more = await row.locator('.val').getAttribute('data-more');
        if (!/^\+\d+ lines$/.test(more || '')) throw new Error(`no clip marker: ${more}`);
        const marker = await row
            .locator('.val')
            .evaluate((e) => getComputedStyle(e, '::after').content);
        if (!/click to expand/.test(marker)) throw new Error(`marker: ${marker}`);
        await row.click();
        const open = await row
            .locator('.val')
            .evaluate((e) => getComputedStyle(e, '::after').content);
        if (open !== 'none') throw new Error(`marker still shown when open: ${open}`);
        return `${ts}, ${more}`;
    });

    await check('a topic without overrides says so (not "8 config overrides")', async () => {
        await page.waitForFunction(
            () => /no config overrides/.test(document.getElementById('topic-meta').textContent),
            null,
            { timeout: 3000 },
        );
    });

    const MADE = 'e2e-made';
    await check('create a topic from the console, with a config', async () => {
        await page.locator('#topic-new').click();
        await page.locator('#c-name').fill(MADE);
        await page.locator('#c-parts').fill('3');
        await page.locator('#c-configs').fill('retention.ms=3600000');
        await page.locator('#c-submit').click();
        await page.waitForFunction((t) => location.hash === '#/topics/' + t, MADE, {
            timeout: 3000,
        });
        await page.locator(`#topics li[data-topic="${MADE}"]`).waitFor({ timeout: 3000 });
        await page.waitForFunction(
            () =>
                /3 partitions .*1 config override$/.test(
                    document.getElementById('topic-meta').textContent,
                ),
            null,
            { timeout: 3000 },
        );
        const parts = await rest(base, 'GET', `/topics/${MADE}/partitions`);
        if (parts.length !== 3) throw new Error(`${parts.length} partitions`);
        await page.locator('#topic-new').click();
        await page.locator('#c-name').fill(MADE);
        await page.locator('#c-submit').click();
        await page.locator('#c-result.err').waitFor({ timeout: 3000 });
        const err = await page.locator('#c-result').textContent();
        await page.keyboard.press('Escape');
        return `twice: ${err}`;
    });

    await check('the configs dialog shows the override, resets it, sets another', async () => {
        await page.locator('#topic-configs').click();
        const row = page.locator('#cfg tbody tr', { hasText: 'retention.ms' });
        await row.waitFor({ timeout: 3000 });
        if (!/3600000\s*topic/.test(await row.textContent()))
            throw new Error(await row.textContent());
        await row.locator('button[data-reset]').click();
        await page.locator('#cfg tbody td.muted', { hasText: 'no overrides' }).waitFor({
            timeout: 3000,
        });
        await page.locator('#cfg-key').selectOption('segment.ms');
        await page.locator('#cfg-value').fill('7200000');
        await page.locator('#cfg-set').click();
        await page.locator('#cfg tbody tr', { hasText: 'segment.ms' }).waitFor({ timeout: 3000 });
        const cfg = await rest(base, 'GET', `/topics/${MADE}/configs`);
        const over = cfg.filter((c) => !c.is_default).map((c) => `${c.name}=${c.value}`);
        if (over.join() !== 'segment.ms=7200000') throw new Error(`overrides: ${over}`);
        await page.keyboard.press('Escape');
    });

    await check('delete a topic only after typing its name', async () => {
        await page.locator('#topic-delete').click();
        if (!(await page.locator('#d-submit').isDisabled())) throw new Error('enabled at once');
        await page.locator('#d-confirm').fill('e2e-mad');
        if (!(await page.locator('#d-submit').isDisabled())) throw new Error('enabled by a typo');
        await page.locator('#d-confirm').fill(MADE);
        await page.locator('#d-submit').click();
        await page.locator(`#topics li[data-topic="${MADE}"]`).waitFor({
            state: 'detached',
            timeout: 3000,
        });
        const topics = await rest(base, 'GET', '/topics');
        if (topics.includes(MADE)) throw new Error('still listed by the broker');
        const hash = await page.evaluate(() => location.hash);
        if (hash === '#/topics/' + MADE) throw new Error('still on its page');
    });

    await check(
        'group page: members, lag; reset refused with a member, preview, execute',
        async () => {
            const v2 = 'application/vnd.kafka.v2+json';
            const inst = '/consumers/e2e-group/instances/c1';
            await rest(
                base,
                'POST',
                '/consumers/e2e-group',
                { name: 'c1', format: 'json', 'auto.commit.enable': 'false' },
                v2,
            );
            await rest(
                base,
                'POST',
                inst + '/subscription',
                { topics: [TOPIC] },
                'application/json',
            );
            for (let i = 0; i < 100; i++) {
                const a = await rest(base, 'GET', inst + '/assignments');
                if (a.partitions.length === 2) break;
                await sleep(50);
            }
            await rest(
                base,
                'POST',
                inst + '/offsets',
                {
                    offsets: [
                        { topic: TOPIC, partition: 0, offset: 1 },
                        { topic: TOPIC, partition: 1, offset: 1 },
                    ],
                },
                'application/json',
            );
            await page.goto(`${base}/#/groups/e2e-group`);
            await page.locator('#g-members tbody tr', { hasText: 'c1' }).waitFor({ timeout: 4000 });
            await page
                .locator('#g-lag tbody tr', { hasText: TOPIC })
                .first()
                .waitFor({ timeout: 3000 });
            await page.locator('#r-topic').selectOption(TOPIC);
            await page.locator('#r-preview').click();
            await page
                .locator('#r-result.err', { hasText: 'active member' })
                .waitFor({ timeout: 3000 });
            await rest(base, 'DELETE', inst);
            await page.locator('#r-to').selectOption('offset');
            await page.locator('#r-offset').fill('2');
            await page.locator('#r-preview').click();
            await page.locator('#r-plan tbody tr').first().waitFor({ timeout: 3000 });
            const before = await rest(base, 'GET', '/groups/e2e-group');
            if (before.partitions.some((p) => p.committed_offset !== 1))
                throw new Error('a preview committed');
            await page.locator('#r-execute').click();
            await page.locator('#r-result.ok').waitFor({ timeout: 3000 });
            const after = await rest(base, 'GET', '/groups/e2e-group');
            const offs = after.partitions.map((p) => p.committed_offset).join();
            if (offs !== '2,2') throw new Error(`committed ${offs}`);
            await page.waitForFunction(
                () =>
                    /\b2\b/.test(
                        document.querySelector('#g-lag tbody tr td:nth-child(3)').textContent,
                    ),
                null,
                { timeout: 4000 },
            );
            await page.goto(`${base}/#/groups`);
            await page
                .locator('#groups-list tbody tr', { hasText: 'e2e-group' })
                .waitFor({ timeout: 4000 });
        },
    );

    await check(
        'the groups card moves with the partitions card (same end, lag = end - committed)',
        async () => {
            await page.goto(`${base}/#/topics/${TOPIC}`);
            const grow = page.locator('#groups tbody tr', { hasText: 'e2e-group' }).first();
            await grow.waitFor({ timeout: 4000 });
            const r = await rest(base, 'POST', `/topics/${TOPIC}/partitions/0`, {
                records: Array.from({ length: 5 }, (_, i) => ({ value: { lagtest: i } })),
            });
            const end = r.offsets[4].offset + 1;
            // The moment the partitions card shows the new end, the groups card must too.
            await page.waitForFunction(
                (e) =>
                    document
                        .querySelector('#parts tbody tr td:nth-child(6)')
                        .textContent.replace(/,/g, '') === String(e),
                end,
                { timeout: 4000 },
            );
            const cells = await page.evaluate(() => {
                const row = [...document.querySelectorAll('#groups tbody tr')].find(
                    (tr) => tr.cells[1] && tr.cells[1].textContent === '0',
                );
                return row ? [...row.cells].map((c) => c.textContent.replace(/,/g, '')) : null;
            });
            if (!cells) throw new Error('no group row for partition 0');
            const [, , committed, gEnd, lag] = cells;
            if (gEnd !== String(end) || lag !== String(end - Number(committed)))
                throw new Error(`partitions end ${end}; groups row ${cells.join(' | ')}`);
            return `end ${end}, committed ${committed}, lag ${lag}`;
        },
    );

    await check('brokers page lists the broker and its role', async () => {
        await page.goto(`${base}/#/brokers`);
        const row = page.locator('#brokers tbody tr', { hasText: '127.0.0.1:' });
        await row.waitFor({ timeout: 3000 });
        const text = (await row.locator('td').allTextContents()).join(' | ');
        if (!/controller/.test(text)) throw new Error(text);
        return text;
    });

    await check('cluster page: controller, broker state, partitions with leader/replicas/ISR, health', async () => {
        if (process.env.E2E_MOCK) return 'skipped with the mock server (no /cluster)';
        await page.goto(`${base}/#/cluster`);
        const brow = page.locator('#brokers tbody tr[data-broker]').first();
        await brow.waitFor({ timeout: 3000 });
        const btext = (await brow.locator('td').allTextContents()).join(' | ');
        if (!/controller/.test(btext) || !/active/.test(btext)) throw new Error(`broker row: ${btext}`);
        const meta = await page.locator('#b-meta').textContent();
        if (!/controller \d+ · epoch \d+/.test(meta)) throw new Error(`meta: ${meta}`);
        const health = await page.locator('#cl-health').textContent();
        if (!/0 under-replicated/.test(health) || !/0 offline/.test(health))
            throw new Error(`health: ${health}`);
        const prow = page.locator(`#cl-parts tbody tr[data-topic="${TOPIC}"][data-partition="1"]`);
        await prow.waitFor({ timeout: 3000 });
        const cells = await prow.locator('td').allTextContents();
        // Topic | P | Leader | Epoch | Replicas | ISR | Status: one broker leads and holds it.
        if (cells[0] !== TOPIC || cells[1] !== '1' || cells[4] !== cells[2] || cells[5] !== cells[2] || !/ok/.test(cells[6]))
            throw new Error(`partition row: ${cells.join(' | ')}`);
        // "problems only" hides every healthy partition.
        await page.locator('#cl-problems').check();
        await page
            .locator(`#cl-parts tbody tr[data-topic="${TOPIC}"]`)
            .waitFor({ state: 'detached', timeout: 2000 });
        await page.locator('#cl-problems').uncheck();
        await page.screenshot({ path: path.join(outDir, 'console-cluster.png') });
        return `${meta}; ${cells.join(' | ')}`;
    });

    await check('at 400 px: no sideways scroll, the topic list is a drawer', async () => {
        const phone = await ctx.newPage();
        await phone.setViewportSize({ width: 400, height: 800 });
        // No slide animation (a page beside another may not be animated at all).
        await phone.emulateMedia({ reducedMotion: 'reduce' });
        await phone.goto(`${base}/#/topics/${TOPIC}`, { waitUntil: 'domcontentloaded' });
        await phone.locator('#t-status[data-state="live"]').waitFor({ timeout: 5000 });
        await rest(base, 'POST', `/topics/${TOPIC}/partitions/0`, {
            records: [
                {
                    key: 'phone',
                    value: {
                        a_rather_long_key_name:
                            'and a value that is long enough to wrap on a phone screen, twice over at least',
                    },
                },
            ],
        });
        await phone
            .locator('#t-rows .rec', { hasText: 'phone' })
            .first()
            .waitFor({ timeout: 3000 });
        const m = await phone.evaluate(() => {
            const r = (sel) => document.querySelector(sel).getBoundingClientRect();
            const bar = document.querySelector('.bar');
            return {
                doc: document.documentElement.scrollWidth,
                body: document.body.scrollWidth,
                main: document.getElementById('main').scrollWidth,
                bar: bar.scrollWidth - bar.clientWidth,
                sideRight: r('#side').right,
                sideVisible: getComputedStyle(document.getElementById('side')).visibility,
                row: r('#t-rows .rec').right,
                parts: r('.parts-card').right,
            };
        });
        const bad = [];
        if (m.doc > 400 || m.body > 400 || m.main > 400)
            bad.push(`scroll width ${m.doc}/${m.body}/${m.main}`);
        if (m.bar > 0) bad.push(`header overflows by ${m.bar}px`);
        if (m.sideRight > 0 && m.sideVisible !== 'hidden')
            bad.push(`sidebar shown (${m.sideRight}px)`);
        if (m.row > 400 || m.parts > 400) bad.push(`content past the edge: ${m.row}, ${m.parts}`);
        if (bad.length) throw new Error(bad.join('; '));
        await phone.screenshot({ path: path.join(outDir, 'console-400.png') });
        await phone.locator('#menu').click();
        await phone
            .locator(`#side li[data-topic="${TOPIC}"]`)
            .waitFor({ state: 'visible', timeout: 2000 });
        // The drawer slides in (0.15 s): wait until it is all in view.
        await phone
            .waitForFunction(
                () => document.getElementById('side').getBoundingClientRect().left >= 0,
                null,
                { timeout: 2000 },
            )
            .catch(() => {});
        const open = await phone.evaluate(() =>
            document.getElementById('side').getBoundingClientRect(),
        );
        if (open.left < 0 || open.right > 400)
            throw new Error(`open drawer at ${open.left}..${open.right}`);
        await phone.locator(`#side li[data-topic="${TOPIC}"]`).click();
        await phone.waitForFunction(() => !document.body.classList.contains('side-open'), null, {
            timeout: 2000,
        });
        // And the smallest phones still in use.
        await phone.setViewportSize({ width: 320, height: 640 });
        const small = await phone.evaluate(() => {
            const bar = document.querySelector('.bar');
            return [document.documentElement.scrollWidth, bar.scrollWidth - bar.clientWidth];
        });
        if (small[0] > 320 || small[1] > 0)
            throw new Error(`at 320 px: scroll width ${small[0]}, header over by ${small[1]}`);
        // The cluster page's wide tables scroll inside their cards, not the page.
        if (!process.env.E2E_MOCK) {
            await phone.setViewportSize({ width: 400, height: 800 });
            await phone.goto(`${base}/#/cluster`, { waitUntil: 'domcontentloaded' });
            await phone
                .locator(`#cl-parts tbody tr[data-topic="${TOPIC}"]`)
                .first()
                .waitFor({ timeout: 3000 });
            const cw = await phone.evaluate(() => [
                document.documentElement.scrollWidth,
                document.getElementById('main').scrollWidth,
            ]);
            if (cw[0] > 400 || cw[1] > 400) throw new Error(`cluster page at 400 px: scroll width ${cw}`);
            await phone.screenshot({ path: path.join(outDir, 'console-cluster-400.png') });
        }
        await phone.close();
        return `scrollWidth ${m.doc}, drawer ${Math.round(open.right)} px`;
    });

    await check('when the broker stops, the page marks its figures stale', async () => {
        await page.goto(`${base}/#/topics/${TOPIC}`);
        await page.locator('#t-status[data-state="live"]').waitFor({ timeout: 5000 });
        if (!(await page.locator('#stale').isHidden())) throw new Error('stale while online');
        await stopByPid(server, 5000);
        await page.locator('#stale').waitFor({ state: 'visible', timeout: 4000 });
        const text = await page.locator('#stale').textContent();
        const dim = await page.$eval('#parts tbody', (e) => Number(getComputedStyle(e).opacity));
        if (!(dim < 1)) throw new Error(`partitions table not dimmed (opacity ${dim})`);
        if (!(await page.locator('#broker[data-state="offline"]').count()))
            throw new Error('status not offline');
        await page.screenshot({ path: path.join(outDir, 'console-stale.png') });
        return text;
    });

    if (!startRunneld) return;
    await check('when it is back, the mark goes and the tail resumes over WebSocket', async () => {
        const stopped = server;
        if (stopped.exitCode !== 0)
            throw new Error(`runneld exit ${stopped.exitCode ?? stopped.signalCode} on SIGTERM`);
        startRunneld();
        await waitHttp(base + '/topics', 15000);
        await page.locator('#stale').waitFor({ state: 'hidden', timeout: 5000 });
        await page.locator('#t-status[data-state="live"]').waitFor({ timeout: 8000 });
        const st = await page.locator('#t-status').textContent();
        if (!/websocket/.test(st)) throw new Error(`status after the restart: ${st}`);
        const nonce = 'back' + Math.random().toString(36).slice(2, 8);
        await rest(base, 'POST', `/topics/${TOPIC}/partitions/1`, { records: [{ value: nonce }] });
        await rowWith(nonce).waitFor({ timeout: 3000 });
        return st.replace(/ · \d.*$/, '');
    });
}

const watchdog = setTimeout(() => {
    report(false, `finished within ${DEADLINE_MS / 1000} s`);
    finish();
}, DEADLINE_MS);

async function finish() {
    if (closing) return;
    closing = true;
    clearTimeout(watchdog);
    if (browser) await browser.close().catch(() => {});
    await stopByPid(server, 5000);
    // A clean exit also says the sanitizers (in an -Db_sanitize build) found nothing.
    if (server && !process.env.E2E_MOCK)
        report(
            server.exitCode === 0,
            `runneld stops cleanly on SIGTERM (exit ${server.exitCode ?? server.signalCode})`,
        );
    if (nFail && serverLog)
        console.log(
            '# server log (tail):\n# ' + serverLog.trim().split('\n').slice(-25).join('\n# '),
        );
    rmSync(tmp, { recursive: true, force: true });
    console.log(`1..${nTest}`);
    console.log(`# ${nTest - nFail} passed, ${nFail} failed`);
    process.exit(nFail ? 1 : 0);
}

main()
    .catch((e) => ok(false, 'unexpected error', e && e.stack ? e.stack : e))
    .finally(finish);
