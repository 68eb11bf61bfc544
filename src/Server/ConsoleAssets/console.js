// The Serving console: plain DOM, no dependencies. Everything a model, a user or the store wrote is set with
// textContent (never parsed as HTML); the page's Content-Security-Policy allows only this script and stylesheet.
'use strict';

const KEY = 'serving-console-key';
const $ = id => document.getElementById(id);
const state = { status: null, previous: null, series: { tokens: [], running: [], waiting: [], kv: [], hits: [], deviceHits: [] }, admin: false };

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  const key = sessionStorage.getItem(KEY);
  if (key) headers['Authorization'] = 'Bearer ' + key;
  if (options.body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, { method: options.method || 'GET', headers, body: options.body === undefined ? undefined : JSON.stringify(options.body) });
  if (response.status === 401) { showKeyDialog('The server needs a valid key.'); throw new ApiError('unauthorized: the server needs a valid key', 401); }
  return response;
}

class ApiError extends Error { constructor(message, status) { super(message); this.status = status; } }

async function errorOf(response) {
  try { const body = await response.json(); return new ApiError(body.error && body.error.message ? body.error.message : response.statusText, response.status); }
  catch { return new ApiError(response.status + ' ' + response.statusText, response.status); }
}

function showKeyDialog(message) {
  $('key-dialog').hidden = false;
  document.querySelector('main').hidden = true;
  $('key-error').textContent = message || '';
}

$('key-form').addEventListener('submit', async event => {
  event.preventDefault();
  sessionStorage.setItem(KEY, $('key-input').value);
  $('key-input').value = '';
  $('key-dialog').hidden = true;
  document.querySelector('main').hidden = false;
  await refresh();
});

$('forget-key').addEventListener('click', () => { sessionStorage.removeItem(KEY); location.reload(); });

for (const button of document.querySelectorAll('#tabs button')) {
  button.addEventListener('click', () => {
    for (const other of document.querySelectorAll('#tabs button')) other.classList.toggle('active', other === button);
    for (const tab of document.querySelectorAll('.tab')) tab.hidden = tab.id !== button.dataset.tab;
  });
}

// ---- status: the adapter list, the target menus and the live charts all come from /v1/status ----

async function refresh() {
  let response;
  try { response = await api('/v1/status'); } catch { return; }
  if (!response.ok) { $('adapter-error').textContent = (await errorOf(response)).message; return; }
  const status = await response.json();
  state.previous = state.status;
  state.status = status;
  state.admin = status.caller && status.caller.role === 'admin';
  $('model-name').textContent = status.model;
  $('who').textContent = status.caller ? (status.caller.role + (status.caller.tenant ? ' · ' + status.caller.tenant : '')) : '';
  $('forget-key').hidden = !sessionStorage.getItem(KEY);
  for (const node of document.querySelectorAll('.admin-only')) node.hidden = !state.admin;
  renderTargets(status);
  renderAdapters(status);
  renderLive(status);
}

function renderTargets(status) {
  const ids = [status.model, ...status.adapters.map(a => a.id)];
  for (const select of document.querySelectorAll('.target-select')) {
    const chosen = select.value;
    const extra = select.id === 'play-target' ? ['auto', 'mix…'] : select.classList.contains('compare-target') ? [''] : [];
    const wanted = [...extra.filter(e => e === ''), ...ids, ...extra.filter(e => e !== '')];
    if (select.options.length === wanted.length && [...select.options].every((o, i) => o.value === wanted[i])) continue;
    select.replaceChildren(...wanted.map(id => { const o = el('option', id === '' ? '(none)' : id); o.value = id; return o; }));
    if (wanted.includes(chosen)) select.value = chosen;
  }
}

function bytes(n) { return n == null ? '' : n >= 1 << 20 ? (n / (1 << 20)).toFixed(1) + ' MiB' : (n / 1024).toFixed(0) + ' KiB'; }

function renderAdapters(status) {
  const rows = status.adapters.map(a => {
    const row = el('tr');
    row.dataset.adapter = a.id;
    row.append(el('td', a.id), el('td', (a.version || '').slice(0, 12)), el('td', a.owner), el('td', a.rank), el('td', (a.target_modules || []).join(', ')),
      el('td', bytes(a.size_bytes)), el('td', a.tier, 'tier-' + a.tier), el('td', a.running), el('td', a.waiting), el('td', a.pinned));
    const actions = el('td', null, 'admin-only');
    actions.hidden = !state.admin;
    if (state.admin) {
      const unload = el('button', 'Unload');
      unload.addEventListener('click', () => manage('/v1/unload_lora_adapter', { lora_name: a.id }, 'Unloaded ' + a.id));
      actions.append(unload);
    }
    row.append(actions);
    return row;
  });
  document.querySelector('#adapter-table tbody').replaceChildren(...rows);
  $('adapter-preparing').textContent = status.preparing && status.preparing.length ? 'Being prepared: ' + status.preparing.join(', ') : '';
}

async function manage(path, body, done) {
  $('adapter-error').textContent = '';
  $('adapter-message').textContent = '';
  try {
    const response = await api(path, { method: 'POST', body });
    if (!response.ok) throw await errorOf(response);
    $('adapter-message').textContent = done;
  } catch (error) { $('adapter-error').textContent = error.message; }
  await refresh();
}

$('register-form').addEventListener('submit', event => {
  event.preventDefault();
  const id = $('register-id').value.trim();
  manage('/v1/load_lora_adapter', { lora_name: id, lora_path: $('register-path').value.trim() }, 'Registered ' + id);
});

// ---- live charts ----

const POINTS = 60;
function push(series, value) { series.push(value); if (series.length > POINTS) series.shift(); }

function renderLive(status) {
  const s = state.series, previous = state.previous;
  const seconds = previous ? Math.max(0.001, status.time - previous.time) : 0;
  const tokensPerSecond = previous ? Math.max(0, (status.generated_tokens_total - previous.generated_tokens_total) / seconds) : 0;
  const cache = status.adapter_cache || {};
  const lookups = (cache.host_hits || 0) + (cache.host_misses || 0);
  const deviceLookups = (cache.device_hits || 0) + (cache.device_misses || 0);
  push(s.tokens, tokensPerSecond);
  push(s.running, status.requests.running);
  push(s.waiting, status.requests.waiting);
  push(s.kv, status.kv_cache.usage * 100);
  push(s.hits, lookups ? 100 * (cache.host_hits || 0) / lookups : 0);
  push(s.deviceHits, deviceLookups ? 100 * (cache.device_hits || 0) / deviceLookups : 0);
  $('live-tokens').textContent = tokensPerSecond.toFixed(1);
  $('live-running').textContent = status.requests.running;
  $('live-waiting').textContent = status.requests.waiting;
  $('live-kv').textContent = (status.kv_cache.usage * 100).toFixed(1) + ' %';
  $('live-hits').textContent = lookups ? (100 * (cache.host_hits || 0) / lookups).toFixed(0) + ' %' : 'no lookups yet';
  $('live-device-hits').textContent = deviceLookups ? (100 * (cache.device_hits || 0) / deviceLookups).toFixed(0) + ' %' : 'no lookups yet';
  draw($('chart-tokens'), [{ values: s.tokens, color: '#2458d6' }]);
  draw($('chart-requests'), [{ values: s.running, color: '#1b7f3b' }, { values: s.waiting, color: '#b3261e' }]);
  draw($('chart-kv'), [{ values: s.kv, color: '#8a5a00' }], 100);
  draw($('chart-hits'), [{ values: s.deviceHits, color: '#1b7f3b' }, { values: s.hits, color: '#6a3fb5' }], 100);
  const busy = status.adapters.filter(a => a.running || a.waiting || a.tier === 'device');
  document.querySelector('#live-adapters tbody').replaceChildren(...busy.map(a => {
    const row = el('tr');
    row.append(el('td', a.id), el('td', a.tier, 'tier-' + a.tier), el('td', a.running), el('td', a.waiting));
    return row;
  }));
}

function draw(canvas, lines, fixedMax) {
  const g = canvas.getContext('2d'), w = canvas.width, h = canvas.height, pad = 22;
  const max = fixedMax || Math.max(1, ...lines.flatMap(l => l.values));
  g.clearRect(0, 0, w, h);
  g.strokeStyle = '#d8dce4'; g.fillStyle = '#687083'; g.font = '11px system-ui';
  g.beginPath(); g.moveTo(pad, 4); g.lineTo(pad, h - pad); g.lineTo(w - 4, h - pad); g.stroke();
  g.fillText(max.toFixed(max < 10 ? 1 : 0), 0, 12);
  g.fillText('0', 8, h - pad);
  g.fillText('last ' + POINTS + ' s', w - 70, h - 6);
  for (const line of lines) {
    g.strokeStyle = line.color; g.lineWidth = 2; g.beginPath();
    line.values.forEach((v, i) => {
      const x = pad + (w - pad - 4) * i / (POINTS - 1), y = h - pad - (h - pad - 4) * v / max;
      if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
    });
    g.stroke();
  }
  canvas.dataset.points = String(lines[0].values.length);
  canvas.dataset.last = String(lines[0].values.length ? lines[0].values[lines[0].values.length - 1] : 0);
}

// ---- generation: one streaming request ----

function targetBody(target, mixText, status) {
  if (target === 'mix…') {
    const adapters = mixText.split(',').map(part => part.trim()).filter(Boolean).map(part => {
      const at = part.lastIndexOf(':');
      return at < 0 ? { id: part, weight: 1 } : { id: part.slice(0, at).trim(), weight: Number(part.slice(at + 1)) };
    });
    return { model: status.model, adapters };
  }
  return { model: target };
}

async function stream(path, body, onText, onFirst) {
  const response = await api(path, { method: 'POST', body: Object.assign({}, body, { stream: true }) });
  if (!response.ok) throw await errorOf(response);
  const reader = response.body.getReader(), decoder = new TextDecoder();
  let buffer = '', first = true, tokens = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split('\n')) {
        if (!line.startsWith('data: ')) continue;
        const data = line.slice(6);
        if (data === '[DONE]') continue;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new ApiError(chunk.error.message, 500);
        const choice = chunk.choices && chunk.choices[0];
        if (first) { first = false; onFirst(chunk, choice); }
        const text = choice ? (choice.text !== undefined ? choice.text : choice.delta && choice.delta.content) : null;
        if (text) { tokens++; onText(text); }
      }
    }
  }
  return tokens;
}

function generationRequest(mode, prompt, options) {
  const sampling = { max_tokens: options.maxTokens, temperature: options.temperature, top_p: options.topP };
  return mode === 'chat'
    ? { path: '/v1/chat/completions', body: Object.assign({ messages: [{ role: 'user', content: prompt }] }, sampling) }
    : { path: '/v1/completions', body: Object.assign({ prompt }, sampling) };
}

$('play-target').addEventListener('change', () => { $('play-mix-label').hidden = $('play-target').value !== 'mix…'; });

$('play-form').addEventListener('submit', async event => {
  event.preventDefault();
  const status = state.status;
  if (!status) return;
  const prompt = $('play-prompt').value, target = $('play-target').value;
  $('play-output').textContent = ''; $('play-error').textContent = ''; $('play-stats').textContent = ''; $('play-mix-chosen').textContent = '';
  const history = el('li', target + ': ' + prompt);
  $('play-history').prepend(history);
  const request = generationRequest($('play-mode').value, prompt, {
    maxTokens: Number($('play-max-tokens').value), temperature: Number($('play-temperature').value), topP: Number($('play-top-p').value) });
  Object.assign(request.body, targetBody(target, $('play-mix').value, status));
  $('play-run').disabled = true;
  const started = performance.now();
  let firstAt = null;
  try {
    const tokens = await stream(request.path, request.body, text => {
      if (firstAt === null) firstAt = performance.now();
      $('play-output').textContent += text;
    }, (chunk, choice) => {
      const mix = (choice && choice.adapters) || chunk.adapters;
      if (mix) $('play-mix-chosen').textContent = 'auto chose: ' + mix.map(a => a.id + ' × ' + Number(a.weight).toFixed(2)).join(', ');
    });
    const total = (performance.now() - started) / 1000;
    $('play-stats').textContent = tokens + ' tokens, ' + (tokens / total).toFixed(1) + ' tokens/s, first token after ' + (((firstAt || performance.now()) - started)).toFixed(0) + ' ms';
    $('play-output').dataset.done = 'true';
  } catch (error) {
    $('play-error').textContent = error.message;
  } finally {
    $('play-run').disabled = false;
  }
});

// ---- compare: the same prompt on up to four targets, streaming together (they share the server's batches) ----

$('compare-form').addEventListener('submit', async event => {
  event.preventDefault();
  const status = state.status;
  if (!status) return;
  const targets = [...document.querySelectorAll('.compare-target')].map(s => s.value).filter(Boolean);
  const prompt = $('compare-prompt').value, maxTokens = Number($('compare-max-tokens').value);
  const started = performance.now();
  let peak = 0;
  const watcher = setInterval(async () => {
    try { const r = await api('/v1/status'); if (r.ok) peak = Math.max(peak, (await r.json()).requests.running); } catch { /* the next tick */ }
  }, 200);
  const panels = targets.map(target => {
    const panel = el('div', null, 'panel');
    panel.dataset.target = target;
    const output = el('pre', '', 'output'), stats = el('p', '', 'muted'), bar = el('div', null, 'timeline'), span = el('span');
    bar.append(span);
    panel.append(el('h4', target), output, bar, stats);
    return { target, panel, output, stats, span, first: null, end: null, tokens: 0 };
  });
  $('compare-panels').replaceChildren(...panels.map(p => p.panel));
  $('compare-batch').textContent = 'Running ' + targets.length + ' streams together…';
  await Promise.all(panels.map(async p => {
    const request = generationRequest('completion', prompt, { maxTokens, temperature: 0, topP: 1 });
    Object.assign(request.body, { model: p.target });
    try {
      p.tokens = await stream(request.path, request.body, text => {
        if (p.first === null) p.first = performance.now();
        p.output.textContent += text;
      }, () => {});
    } catch (error) {
      p.output.textContent = '';
      p.stats.append(el('span', error.message, 'error'));
    }
    p.end = performance.now();
  }));
  clearInterval(watcher);
  const span = Math.max(1, ...panels.map(p => p.end - started));
  for (const p of panels) {
    const first = (p.first || p.end) - started, total = (p.end - started) / 1000;
    p.span.style.left = (100 * first / span) + '%';
    p.span.style.width = Math.max(1, 100 * (p.end - started - first) / span) + '%';
    p.stats.prepend(el('span', 'TTFT ' + first.toFixed(0) + ' ms · ' + (p.tokens / Math.max(0.001, total)).toFixed(1) + ' tokens/s · ' + p.tokens + ' tokens'));
    p.panel.dataset.done = 'true';
  }
  $('compare-batch').textContent = 'The ' + targets.length + ' streams overlapped in time; up to ' + peak + ' requests ran in the same engine batch.';
});

// The page says whether the server needs a key, so a first visit asks for one instead of failing a call.
if (document.querySelector('meta[name=serving-auth]').content === 'required' && !sessionStorage.getItem(KEY)) showKeyDialog('');
else refresh();
setInterval(() => { if ($('key-dialog').hidden) refresh(); }, 1000);
