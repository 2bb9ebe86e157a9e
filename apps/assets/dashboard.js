/* cantor dashboard: live plots and a sample gallery over the dashboard's REST API.
 * Plain JavaScript and <canvas>; no libraries, nothing fetched from anywhere but this server.
 *
 * Every second: GET /api/runs (series, status), then for each run whose series have news
 * GET /api/runs/{id}/scalars?since=STEP&max=N (only what is new), and its samples when their
 * count changes. A run's "generation" grows when points already served were dropped (a
 * restarted run, a truncated file): the page then forgets that run's points and fetches again.
 * Drawing keeps the lowest and highest value per pixel column, so 100,000 points per series
 * draw in a few milliseconds; zooming in fetches the zoomed range at full resolution. */
'use strict';
(function () {
  const params = new URLSearchParams(location.search);
  const intParam = (k, d) => { const v = parseInt(params.get(k), 10); return isFinite(v) && v >= 0 ? v : d; };
  const POLL_MS = Math.max(200, intParam('poll', 1000));   /* ?poll=MS */
  const OVERVIEW_MAX = intParam('max', 4000);   /* ?max=N points per series per request (0: all) */
  const DETAIL_MAX = 3000;
  const GALLERY_MAX = 48;
  const COLORS = ['#2f5d8a', '#c0392b', '#27864a', '#8e44ad', '#d68910', '#138d90', '#6d4c41', '#d81b60'];
  const CHARTS = [
    {id: 'loss', title: 'loss', series: ['train_loss', 'valid_loss']},
    {id: 'tokens_per_s', title: 'tokens / s', series: ['tokens_per_s']},
    {id: 'lr', title: 'learning rate', series: ['lr']},
    {id: 'grad_norm', title: 'gradient norm (before clipping)', series: ['grad_norm']},
  ];
  const HIDDEN_SERIES = new Set(['skipped', 'tokens', 'valid_tokens']);   /* counts, not curves */

  const state = {
    runs: new Map(), order: [], charts: new Map(), seriesChart: new Map(),
    xaxis: 'step', zoom: null, zoomSeq: 0, paused: false, polls: 0, drawQueued: false, dirty: true,
  };

  /* ---- helpers ------------------------------------------------------------------------------ */
  const $ = (sel, root) => (root || document).querySelector(sel);
  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) {
      if (k === 'text') e.textContent = attrs[k];
      else if (k === 'class') e.className = attrs[k];
      else e.setAttribute(k, attrs[k]);
    }
    for (const c of children || []) if (c) e.appendChild(c);
    return e;
  }
  async function getJSON(url) {
    const r = await fetch(url, {cache: 'no-store'});
    if (!r.ok) {
      let msg = r.status + ' ' + r.statusText;
      try { msg = (await r.json()).error || msg; } catch (e) { /* not JSON */ }
      throw new Error(msg);
    }
    return r.json();
  }
  const enc = encodeURIComponent;
  function fmtNum(v) {
    if (v === null || v === undefined || !isFinite(v)) return '–';
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(2);
    if (a >= 100) return Math.round(v).toLocaleString('en-US');
    return String(+v.toPrecision(4));
  }
  function fmtStep(v) {
    const a = Math.abs(v);
    if (a < 1e4) return String(Math.round(v));
    if (a < 1e6) return +(v / 1e3).toPrecision(4) + 'k';
    return +(v / 1e6).toPrecision(4) + 'M';
  }
  function fmtInt(v) { return v === null || v === undefined ? '–' : Math.round(v).toLocaleString('en-US'); }
  function fmtDur(s) {
    if (s === null || s === undefined || !isFinite(s)) return '–';
    s = Math.max(0, Math.round(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), x = s % 60;
    if (h) return h + ' h ' + m + ' min';
    if (m) return m + ' min ' + x + ' s';
    return x + ' s';
  }
  function fmtClock(s) {
    if (!isFinite(s)) return '';
    const neg = s < 0; s = Math.abs(s);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), x = s % 60;
    const xs = (x < 10 ? '0' : '') + (Number.isInteger(x) ? x : x.toFixed(1));
    return (neg ? '-' : '') + (h ? h + ':' + (m < 10 ? '0' : '') + m + ':' + xs : m + ':' + xs);
  }
  function niceStep(span, n) {
    const raw = span / Math.max(1, n), p = Math.pow(10, Math.floor(Math.log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * p;
  }
  function linTicks(lo, hi, n) {
    if (!(hi > lo)) return [lo];
    const st = niceStep(hi - lo, n), out = [];
    for (let v = Math.ceil(lo / st) * st; v <= hi + st * 1e-9; v += st) out.push(Math.abs(v) < st * 1e-9 ? 0 : v);
    return out;
  }

  /* ---- runs and series ---------------------------------------------------------------------- */
  function getRun(info) {
    let run = state.runs.get(info.id);
    if (!run) {
      run = {id: info.id, color: COLORS[state.order.length % COLORS.length], visible: true, gen: null,
             series: new Map(), samples: [], nsamples: -1, info: null, model: null, ckptKey: null, detail: null};
      state.runs.set(info.id, run);
      state.order.push(info.id);
      addRunRow(run);
    }
    return run;
  }

  function resetRun(run, gen) {
    run.series.clear();
    run.samples = [];
    run.nsamples = -1;
    run.detail = null;
    run.gen = gen;
  }

  function chartFor(name, source) {
    let id = state.seriesChart.get(name);
    if (id) return state.charts.get(id);
    for (const c of CHARTS) if (c.series.includes(name)) id = c.id;
    if (!id) {
      id = 'series:' + name;
      if (!state.charts.has(id)) makeChart({id, title: name + (source === 'external' ? ' (external)' : ''), series: [name]});
    }
    state.seriesChart.set(name, id);
    return state.charts.get(id);
  }

  function mergeSeries(run, s) {
    let local = run.series.get(s.name);
    if (!local) {
      local = {steps: [], times: [], values: [], last: -1, source: s.source, down: false};
      run.series.set(s.name, local);
    }
    for (let i = 0; i < s.steps.length; i++) {
      if (s.steps[i] <= local.last) continue;
      local.steps.push(s.steps[i]);
      local.times.push(s.times[i]);
      local.values.push(s.values[i]);
      local.last = s.steps[i];
    }
    if (s.downsampled) local.down = true;
    if (!HIDDEN_SERIES.has(s.name)) chartFor(s.name, s.source);
    if (s.steps.length) state.dirty = true;
  }

  async function updateRun(info) {
    const run = getRun(info);
    run.info = info;
    if (run.gen !== info.generation) { resetRun(run, info.generation); clearGalleryOf(run.id); state.dirty = true; }
    const news = info.series.filter(s => {
      const local = run.series.get(s.name);
      return !local || (s.last_step !== null && s.last_step > local.last);
    });
    if (news.length) {
      let since = Infinity;
      for (const s of news) { const l = run.series.get(s.name); since = Math.min(since, l ? l.last : -1); }
      const r = await getJSON('/api/runs/' + enc(run.id) + '/scalars?since=' + since + '&max=' + OVERVIEW_MAX);
      if (r.generation !== run.gen) { run.gen = null; return; }   /* changed meanwhile: next poll starts over */
      for (const s of r.series) mergeSeries(run, s);
    }
    const ck = info.status && info.status.checkpoint;
    const ckKey = ck ? ck.file + '@' + ck.wall : null;
    if (ckKey && ckKey !== run.ckptKey) {
      run.ckptKey = ckKey;
      getJSON('/api/runs/' + enc(run.id) + '/config').then(c => { run.model = c.model; updateRunRow(run); })
        .catch(() => { /* not a cantor checkpoint */ });
    }
    if (info.samples !== run.nsamples) {
      const r = await getJSON('/api/runs/' + enc(run.id) + '/samples?limit=' + GALLERY_MAX);
      if (r.generation === run.gen) { run.samples = r.samples; run.nsamples = info.samples; }
    }
    updateRunRow(run);
  }

  async function poll() {
    if (!state.paused) {
      try {
        const data = await getJSON('/api/runs');
        for (const info of data.runs) await updateRun(info);
        setConn(true, data.runs.length + (data.runs.length === 1 ? ' run' : ' runs'));
        state.polls++;
        document.body.dataset.polls = String(state.polls);
        updateGallery();
        if (state.dirty) { state.dirty = false; scheduleDraw(); }   /* nothing new: nothing to draw */
      } catch (e) {
        setConn(false, 'no connection: ' + e.message);
      }
    }
    setTimeout(poll, POLL_MS);
  }

  function setConn(ok, text) {
    const c = $('#conn');
    c.className = 'conn ' + (ok ? 'ok' : 'bad');
    c.textContent = ok ? 'live · ' + text : text;
  }

  /* ---- run rows (legend + status line) ---------------------------------------------------- */
  function addRunRow(run) {
    const box = el('input', {type: 'checkbox', title: 'show this run'});
    box.checked = true;
    box.addEventListener('change', () => {
      run.visible = box.checked;
      run.row.classList.toggle('hidden', !run.visible);
      updateGallery();
      scheduleDraw();
      if (run.visible && state.zoom && state.xaxis === 'step') fetchDetail(state.zoomSeq, state.zoom);
    });
    const sw = el('span', {class: 'swatch'});
    sw.style.background = run.color;
    run.statusEl = el('span', {class: 'status', text: 'waiting for data…'});
    run.row = el('div', {class: 'run', 'data-run': run.id}, [
      el('label', {}, [box, document.createTextNode(' '), sw, document.createTextNode(' '), el('span', {class: 'name', text: run.id})]),
      run.statusEl]);
    $('#runs').appendChild(run.row);
  }

  function updateRunRow(run) {
    const info = run.info, st = info && info.status;
    if (!st) return;
    const parts = [];
    const stateEl = el('span', {class: 'state-' + st.state, text: st.state});
    if (st.step !== null) parts.push('step ' + fmtInt(st.step) + (st.total_steps ? ' / ' + fmtInt(st.total_steps) : ''));
    if (st.epoch !== null) parts.push('epoch ' + st.epoch);
    if (st.eta_s !== null && st.state === 'running') parts.push('ETA ' + fmtDur(st.eta_s));
    if (st.time !== null) parts.push(fmtDur(st.time) + ' elapsed');
    if (st.device) parts.push(st.device);
    if (run.model) parts.push(run.model);
    const tl = run.series.get('train_loss'), vl = run.series.get('valid_loss');
    if (tl && tl.values.length) parts.push('loss ' + fmtNum(tl.values[tl.values.length - 1]));
    if (vl && vl.values.length) parts.push('valid ' + fmtNum(vl.values[vl.values.length - 1]));
    if (st.checkpoint) {
      const ago = Date.now() / 1000 - st.checkpoint.wall;
      parts.push('last checkpoint ' + st.checkpoint.file + (st.checkpoint.step !== null ? ' (step ' + fmtInt(st.checkpoint.step) + ', ' : ' (') + fmtDur(ago) + ' ago)');
    } else {
      parts.push('no checkpoint yet');
    }
    if (st.updated_ago_s !== null) parts.push('updated ' + fmtDur(st.updated_ago_s) + ' ago');
    let bad = 0;
    for (const f in info.files) bad += info.files[f].bad_lines;
    if (bad) parts.push('⚠ ' + bad + ' malformed line' + (bad > 1 ? 's' : '') + ' skipped');
    run.statusEl.textContent = '';
    run.statusEl.appendChild(stateEl);
    run.statusEl.appendChild(document.createTextNode(' · ' + parts.join(' · ')));
  }

  /* ---- charts ------------------------------------------------------------------------------- */
  function makeChart(def) {
    const log = el('input', {type: 'checkbox', class: 'log'});
    const canvas = el('canvas', {'data-chart': def.id, 'data-points': '0', 'aria-label': def.title});
    const tip = el('div', {class: 'tip'});
    const legend = el('span', {class: 'legend'});
    const root = el('div', {class: 'chart', 'data-chart': def.id}, [
      el('div', {class: 'head'}, [el('span', {class: 'title', text: def.title}), legend,
        el('label', {title: 'logarithmic y axis'}, [log, document.createTextNode(' log')])]),
      canvas, tip]);
    const ch = {id: def.id, title: def.title, series: def.series.slice(), root, canvas, tip, legend, log: false,
                sel: null, frame: null, points: 0};
    log.addEventListener('change', () => { ch.log = log.checked; scheduleDraw(); });
    attachInteraction(ch);
    state.charts.set(def.id, ch);
    $('#plots').appendChild(root);
    return ch;
  }

  /* The points of one series to draw: the zoomed detail (when fetched) then newer overview points. */
  function segmentsOf(run, name) {
    const s = run.series.get(name);
    if (!s) return [];
    const d = run.detail && run.detail.seq === state.zoomSeq ? run.detail.series.get(name) : null;
    if (!d || !d.steps.length) return [{s, from: 0}];
    const lastD = d.steps[d.steps.length - 1];
    let i = s.steps.length;
    while (i > 0 && s.steps[i - 1] > lastD) i--;
    return [{s: d, from: 0}, {s, from: i}];
  }

  function linesOf(ch) {
    const lines = [];
    for (const id of state.order) {
      const run = state.runs.get(id);
      if (!run.visible) continue;
      ch.series.forEach((name, k) => {
        const segs = segmentsOf(run, name);
        if (segs.length) lines.push({run, name, dash: k > 0, segs});
      });
    }
    return lines;
  }

  function xsOf(seg) { return state.xaxis === 'step' ? seg.s.steps : seg.s.times; }

  function drawChart(ch) {
    const cv = ch.canvas, dpr = window.devicePixelRatio || 1;
    const W = cv.clientWidth, H = cv.clientHeight;
    if (!W || !H) return;
    if (cv.width !== Math.round(W * dpr) || cv.height !== Math.round(H * dpr)) {
      cv.width = Math.round(W * dpr);
      cv.height = Math.round(H * dpr);
    }
    const g = cv.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, W, H);
    const P = {l: 62, r: 12, t: 8, b: 28};
    const pw = W - P.l - P.r, ph = H - P.t - P.b;
    const lines = linesOf(ch);
    const log = ch.log;
    /* x range: the zoom, or the data */
    let x0 = Infinity, x1 = -Infinity;
    if (state.zoom) { x0 = state.zoom[0]; x1 = state.zoom[1]; }
    else for (const ln of lines) for (const seg of ln.segs) {
      const xs = xsOf(seg);
      for (let i = seg.from; i < xs.length; i++) { const x = xs[i]; if (x === null) continue; if (x < x0) x0 = x; if (x > x1) x1 = x; }
    }
    /* y range over the points in the x range */
    let y0 = Infinity, y1 = -Infinity, count = 0;
    for (const ln of lines) for (const seg of ln.segs) {
      const xs = xsOf(seg), vs = seg.s.values;
      for (let i = seg.from; i < xs.length; i++) {
        const x = xs[i], v = vs[i];
        if (x === null || v === null || x < x0 || x > x1 || (log && v <= 0)) continue;
        const y = log ? Math.log10(v) : v;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
        count++;
      }
    }
    ch.points = count;
    cv.dataset.points = String(count);
    ch.legend.textContent = '';
    const seenRuns = new Set();
    for (const ln of lines) {
      const i = el('i', {class: ln.dash ? 'dash' : ''});
      i.style.borderTopColor = ln.run.color;
      ch.legend.appendChild(i);
      ch.legend.appendChild(document.createTextNode((state.order.length > 1 && !seenRuns.has(ln.run.id) ? ln.run.id + ' ' : '') + ln.name));
      seenRuns.add(ln.run.id);
    }
    g.font = '11px system-ui, sans-serif';
    g.fillStyle = '#6b6b70';
    if (!count) {
      g.textAlign = 'center';
      g.fillText(lines.length ? 'no points in this range' + (log ? ' (log scale: values must be > 0)' : '') : 'waiting for data…', W / 2, H / 2);
      ch.frame = null;
      return;
    }
    if (x1 <= x0) { x0 -= 1; x1 += 1; }
    if (y1 <= y0) { const d = Math.abs(y0) * 0.05 || 0.5; y0 -= d; y1 += d; }
    else { const d = (y1 - y0) * 0.05; y0 -= d; y1 += d; }
    const X = x => P.l + (x - x0) / (x1 - x0) * pw;
    const Y = y => P.t + (1 - (y - y0) / (y1 - y0)) * ph;
    ch.frame = {x0, x1, y0, y1, P, pw, ph, W, H};
    /* grid and axes */
    g.strokeStyle = '#ececE6';
    g.lineWidth = 1;
    g.textAlign = 'right';
    g.textBaseline = 'middle';
    let yt;
    if (log && y1 - y0 >= 1) { yt = []; for (let k = Math.ceil(y0); k <= y1; k++) yt.push(k); }
    else if (log) yt = linTicks(Math.pow(10, y0), Math.pow(10, y1), 5).filter(v => v > 0).map(v => Math.log10(v));
    else yt = linTicks(y0, y1, 5);
    for (const t of yt) {
      const y = Math.round(Y(t)) + 0.5;
      g.beginPath(); g.moveTo(P.l, y); g.lineTo(P.l + pw, y); g.stroke();
      g.fillText(fmtNum(log ? Math.pow(10, t) : t), P.l - 6, y);
    }
    g.textAlign = 'center';
    g.textBaseline = 'top';
    const xt = linTicks(x0, x1, Math.max(2, Math.floor(pw / 90)));
    for (const t of xt) {
      const x = Math.round(X(t)) + 0.5;
      g.beginPath(); g.moveTo(x, P.t); g.lineTo(x, P.t + ph); g.stroke();
      const label = state.xaxis === 'step' ? fmtStep(t) : fmtClock(t), half = g.measureText(label).width / 2;
      g.fillText(label, Math.min(Math.max(x, half + 2), W - half - 2), P.t + ph + 6);
    }
    g.strokeStyle = '#b9b9b2';
    g.strokeRect(P.l + 0.5, P.t + 0.5, pw, ph);
    g.fillText(state.xaxis === 'step' ? 'step' : 'time since start', P.l + pw / 2, P.t + ph + 16);
    /* the lines: per pixel column its first, lowest, highest and last point */
    g.save();
    g.beginPath(); g.rect(P.l, P.t, pw, ph); g.clip();
    for (const ln of lines) {
      g.strokeStyle = ln.run.color;
      g.fillStyle = ln.run.color;
      g.lineWidth = 1.5;
      g.setLineDash(ln.dash ? [5, 3] : []);
      g.beginPath();
      let col = null, first = 0, last = 0, mn = 0, mx = 0, started = false, n = 0;
      const dots = [];
      const flush = () => {
        if (col === null) return;
        if (!started) { g.moveTo(col, first); started = true; } else g.lineTo(col, first);
        if (mn !== mx) { g.lineTo(col, mn); g.lineTo(col, mx); }
        g.lineTo(col, last);
      };
      const plot = (x, v, inRange) => {
        const px = Math.round(X(x)), py = Y(log ? Math.log10(v) : v);
        if (inRange) { n++; if (n <= 400) dots.push([px, py]); }
        if (px !== col) { flush(); col = px; first = last = mn = mx = py; }
        else { last = py; if (py < mn) mn = py; if (py > mx) mx = py; }
      };
      let before = null, done = false;   /* the points just outside the range keep the line going to the edges */
      for (const seg of ln.segs) {
        const xs = xsOf(seg), vs = seg.s.values;
        for (let i = seg.from; i < xs.length && !done; i++) {
          const x = xs[i], v = vs[i];
          if (x === null || v === null || (log && v <= 0)) continue;
          if (x < x0) { before = [x, v]; continue; }
          if (before) { plot(before[0], before[1], false); before = null; }
          plot(x, v, x <= x1);
          if (x > x1) done = true;
        }
      }
      flush();
      g.stroke();
      g.setLineDash([]);
      if (n < 60) for (const [px, py] of dots) { g.beginPath(); g.arc(px, py, 2.2, 0, 2 * Math.PI); g.fill(); }
    }
    g.restore();
    if (ch.sel) {
      const a = Math.max(P.l, Math.min(ch.sel[0], ch.sel[1])), b = Math.min(P.l + pw, Math.max(ch.sel[0], ch.sel[1]));
      g.fillStyle = 'rgba(47, 93, 138, 0.12)';
      g.fillRect(a, P.t, b - a, ph);
    }
  }

  function drawAll() {
    state.drawQueued = false;
    const t0 = performance.now();
    let total = 0;
    for (const ch of state.charts.values()) { drawChart(ch); total += ch.points; }
    const ms = performance.now() - t0;
    document.body.dataset.drawMs = ms.toFixed(1);
    if (params.has('log-draw') && total > 0) console.log('cantor-dashboard: drew ' + total + ' points in ' + ms.toFixed(1) + ' ms');
    document.body.dataset.points = String(total);
    if (total > 0) document.body.dataset.ready = '1';
  }
  function scheduleDraw() {
    if (state.drawQueued) return;
    state.drawQueued = true;
    requestAnimationFrame(drawAll);
  }

  /* ---- zoom, tooltip ------------------------------------------------------------------------ */
  function attachInteraction(ch) {
    const cv = ch.canvas;
    const px = e => e.clientX - cv.getBoundingClientRect().left;
    let dragging = false;
    cv.addEventListener('pointerdown', e => {
      if (!ch.frame || e.button !== 0) return;
      dragging = true;
      ch.sel = [px(e), px(e)];
      cv.setPointerCapture(e.pointerId);
    });
    cv.addEventListener('pointermove', e => {
      if (dragging) { ch.sel[1] = px(e); scheduleDraw(); return; }
      showTip(ch, e);
    });
    cv.addEventListener('pointerup', () => {
      if (!dragging) return;
      dragging = false;
      const f = ch.frame, s = ch.sel;
      ch.sel = null;
      if (f && Math.abs(s[1] - s[0]) > 4) {
        const inv = p => f.x0 + (Math.min(Math.max(p, f.P.l), f.P.l + f.pw) - f.P.l) / f.pw * (f.x1 - f.x0);
        setZoom([inv(Math.min(s[0], s[1])), inv(Math.max(s[0], s[1]))]);
      }
      scheduleDraw();
    });
    cv.addEventListener('pointerleave', () => { ch.tip.style.display = 'none'; });
    cv.addEventListener('dblclick', () => setZoom(null));
  }

  function setZoom(z) {
    state.zoom = z;
    state.zoomSeq++;
    for (const run of state.runs.values()) run.detail = null;
    scheduleDraw();
    if (z && state.xaxis === 'step') fetchDetail(state.zoomSeq, z);
  }

  /* Zoomed into a range that was downsampled: fetch it at full resolution (up to DETAIL_MAX). */
  async function fetchDetail(seq, z) {
    for (const run of state.runs.values()) {
      if (!run.visible) continue;
      const detail = {seq, series: new Map()};
      for (const [name, s] of run.series) {
        if (!s.down) continue;
        try {
          const r = await getJSON('/api/runs/' + enc(run.id) + '/scalars?name=' + enc(name) + '&since=' +
            (Math.floor(z[0]) - 1) + '&until=' + Math.ceil(z[1]) + '&max=' + DETAIL_MAX);
          if (seq !== state.zoomSeq) return;
          const d = r.series[0];
          detail.series.set(name, {steps: d.steps, times: d.times, values: d.values});
        } catch (e) { /* keep the overview */ }
      }
      if (seq === state.zoomSeq) run.detail = detail;
    }
    scheduleDraw();
  }

  function showTip(ch, e) {
    const f = ch.frame;
    if (!f) return;
    const rect = ch.canvas.getBoundingClientRect(), mx = e.clientX - rect.left;
    if (mx < f.P.l || mx > f.P.l + f.pw) { ch.tip.style.display = 'none'; return; }
    const xv = f.x0 + (mx - f.P.l) / f.pw * (f.x1 - f.x0);
    const rows = [];
    for (const ln of linesOf(ch)) {
      let best = null, bd = Infinity;
      for (const seg of ln.segs) {
        const xs = xsOf(seg);
        for (let i = seg.from; i < xs.length; i++) {
          if (xs[i] === null || seg.s.values[i] === null) continue;
          const d = Math.abs(xs[i] - xv);
          if (d < bd) { bd = d; best = [seg.s.steps[i], seg.s.times[i], seg.s.values[i]]; }
        }
      }
      if (best) rows.push((state.order.length > 1 ? ln.run.id + ' ' : '') + ln.name + ' ' + fmtNum(best[2]) +
        '  (step ' + fmtInt(best[0]) + (best[1] !== null ? ', ' + fmtClock(best[1]) : '') + ')');
    }
    if (!rows.length) { ch.tip.style.display = 'none'; return; }
    ch.tip.textContent = '';
    rows.forEach((r, i) => { if (i) ch.tip.appendChild(el('br')); ch.tip.appendChild(document.createTextNode(r)); });
    ch.tip.style.display = 'block';
    const left = mx + 14 + ch.tip.offsetWidth > rect.width ? mx - 14 - ch.tip.offsetWidth : mx + 14;
    ch.tip.style.left = (left + ch.canvas.offsetLeft) + 'px';
    ch.tip.style.top = (ch.canvas.offsetTop + 10) + 'px';
  }

  /* ---- the sample gallery ------------------------------------------------------------------- */
  const cards = new Map();   /* "run:step" -> element */

  function clearGalleryOf(id) {
    for (const [k, c] of cards) if (c.dataset.run === id) { c.remove(); cards.delete(k); }
  }

  function updateGallery() {
    const want = [];
    for (const id of state.order) {
      const run = state.runs.get(id);
      if (!run.visible) continue;
      for (const s of run.samples) want.push({run, s});
    }
    want.sort((a, b) => b.s.step - a.s.step || state.order.indexOf(a.run.id) - state.order.indexOf(b.run.id));
    want.length = Math.min(want.length, GALLERY_MAX);
    const gallery = $('#gallery');
    const keep = new Set();
    let next = null;
    for (let i = want.length - 1; i >= 0; i--) {
      const {run, s} = want[i];
      const key = run.id + ':' + s.step + ':' + s.midi;
      keep.add(key);
      let card = cards.get(key);
      if (!card) { card = makeCard(run, s); cards.set(key, card); }
      else refreshCard(card, s);
      if (card.parentNode !== gallery || card.nextSibling !== next) gallery.insertBefore(card, next);
      next = card;
    }
    for (const [k, c] of cards) if (!keep.has(k)) { c.remove(); cards.delete(k); }
    const empty = $('.empty', gallery);
    if (empty) empty.style.display = want.length ? 'none' : '';
  }

  function audioPart(s) {
    if (s.audio_url && s.audio_exists) {
      return el('audio', {controls: '', preload: 'none', src: s.audio_url, 'data-step': String(s.step)});
    }
    return el('p', {class: 'missing', text: s.audio ? 'audio not rendered yet' : 'no audio for this sample'});
  }

  function makeCard(run, s) {
    const roll = el('canvas', {class: 'roll', 'data-notes': '0'});
    const links = el('div', {class: 'links'}, [el('a', {href: s.midi_url, download: s.midi.split('/').pop(), text: 'download MIDI'})]);
    if (s.audio_url) links.appendChild(el('a', {href: s.audio_url, download: s.audio.split('/').pop(), text: 'download audio'}));
    const title = el('span', {class: 'title', text: 'step ' + fmtInt(s.step)});
    const sw = el('span', {class: 'sub', text: run.id});
    sw.style.color = run.color;
    const card = el('div', {class: 'sample', 'data-run': run.id, 'data-step': String(s.step)}, [
      el('div', {class: 'head'}, [title, sw]), roll, audioPart(s), links]);
    card.audioReady = !!(s.audio_url && s.audio_exists);
    card.midiReady = false;
    loadRoll(run, s, roll, card);
    return card;
  }

  function refreshCard(card, s) {
    if (!card.audioReady && s.audio_url && s.audio_exists) {
      card.replaceChild(audioPart(s), card.querySelector('.missing'));
      card.audioReady = true;
    }
    if (!card.midiReady && !card.failed && s.midi_exists && !card.loading) loadRoll({id: card.dataset.run}, s, $('canvas.roll', card), card);
  }

  function loadRoll(run, s, canvas, card) {
    if (!s.midi_exists) { drawRollMessage(canvas, 'MIDI file not written yet'); return; }
    card.loading = true;
    getJSON('/api/runs/' + enc(run.id) + '/pianoroll?file=' + enc(s.midi))
      .then(r => { card.midiReady = true; canvas.roll = r; drawRoll(canvas); })
      .catch(e => { card.failed = true; drawRollMessage(canvas, e.message); })
      .finally(() => { card.loading = false; });
  }

  function sizeCanvas(cv) {
    const dpr = window.devicePixelRatio || 1, W = cv.clientWidth || 340, H = cv.clientHeight || 150;
    cv.width = Math.round(W * dpr);
    cv.height = Math.round(H * dpr);
    const g = cv.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    return [g, W, H];
  }

  function drawRollMessage(cv, text) {
    const [g, W, H] = sizeCanvas(cv);
    g.fillStyle = '#8a2a1e';
    g.font = '12px system-ui, sans-serif';
    g.textAlign = 'center';
    g.fillText(text, W / 2, H / 2);
  }

  function drawRoll(cv) {
    const r = cv.roll;
    if (!r) return;
    const [g, W, H] = sizeCanvas(cv);
    const notes = r.notes;
    cv.dataset.notes = String(notes.length);
    if (!notes.length) { drawRollMessage(cv, 'no notes'); return; }
    let lo = 127, hi = 0, end = r.end_s || 0, drums = false;
    for (const n of notes) {
      if (n[5]) { drums = true; continue; }
      if (n[2] < lo) lo = n[2];
      if (n[2] > hi) hi = n[2];
      if (n[1] > end) end = n[1];
    }
    if (lo > hi) { lo = 60; hi = 72; }
    lo = Math.max(0, lo - 2); hi = Math.min(127, hi + 2);
    const drumH = drums ? 14 : 0, rows = hi - lo + 1, rh = (H - drumH) / rows;
    const X = t => t / (end || 1) * W;
    for (let p = lo; p <= hi; p++) {   /* black keys shaded, C lines */
      const y = (hi - p) * rh;
      if ([1, 3, 6, 8, 10].includes(p % 12)) { g.fillStyle = '#f1f1ec'; g.fillRect(0, y, W, rh); }
      if (p % 12 === 0) { g.fillStyle = '#dcdcd4'; g.fillRect(0, y + rh - 1, W, 1); }
    }
    for (const n of notes) {
      const x = X(n[0]), w = Math.max(1.5, X(n[1]) - x);
      const a = 0.35 + 0.65 * n[3] / 127;
      if (n[5]) { g.fillStyle = 'rgba(90,90,90,' + a + ')'; g.fillRect(x, H - drumH + 2, 2, drumH - 4); continue; }
      g.fillStyle = 'hsla(' + ((n[4] * 47 + 210) % 360) + ', 55%, 40%, ' + a + ')';
      g.fillRect(x, (hi - n[2]) * rh + 0.5, w, Math.max(1, rh - 1));
    }
    g.fillStyle = '#6b6b70';
    g.font = '10px system-ui, sans-serif';
    g.textAlign = 'right';
    g.fillText(fmtClock(end), W - 4, 11);
  }

  /* ---- start ------------------------------------------------------------------------------ */
  function start() {
    for (const c of CHARTS) makeChart(c);
    for (const r of document.querySelectorAll('input[name=xaxis]'))
      r.addEventListener('change', () => { state.xaxis = r.value; setZoom(null); });
    $('#reset-zoom').addEventListener('click', () => setZoom(null));
    $('#pause').addEventListener('change', e => { state.paused = e.target.checked; });
    window.addEventListener('resize', () => {
      scheduleDraw();
      for (const c of document.querySelectorAll('canvas.roll')) drawRoll(c);
    });
    if (params.has('log-draw')) setInterval(scheduleDraw, 500);   /* ?log-draw: redraw and log the time */
    poll();
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
