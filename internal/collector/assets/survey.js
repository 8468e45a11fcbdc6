/*
 * Rapport survey intercept, served by the feedback collector at /v1/survey.js.
 *
 * <script src="https://feedback.example.com/v1/survey.js" defer
 *   data-namespace="shop" data-experiment="checkout-redesign"
 *   data-touchpoint="checkout" data-question="How easy was checking out today?"
 *   data-trigger="click:#place-order" data-sample="0.2"></script>
 *
 * It asks one question on the experiment's scale to a sampled share of the
 * customers that Rapport's gateway route served (those with the signed
 * assignment cookie), at most once per customer per run, and posts the
 * answer with that cookie's value to the collector's public endpoint. It
 * makes no other request, sets no cookie but its own (rapport-survey-<experiment>),
 * and sends the optional comment nowhere: the page gets it in the
 * "rapport:answer" event (also: rapport:skip, rapport:dismiss, rapport:error).
 * Documented in docs/measurement.md.
 */
(function () {
  'use strict';
  var script = document.currentScript;
  if (!script) return;
  var d = script.dataset;
  var ns = d.namespace, exp = d.experiment;
  if (!ns || !exp) {
    warn('data-namespace and data-experiment are required');
    return;
  }
  var api = new URL(script.src, location.href).origin + '/v1/public/namespaces/' +
    encodeURIComponent(ns) + '/experiments/' + encodeURIComponent(exp);
  var own = 'rapport-survey-' + exp;
  var sample = d.sample === undefined ? 1 : parseFloat(d.sample);
  if (!(sample >= 0 && sample <= 1)) sample = 1;

  function warn(msg) {
    if (window.console) console.warn('rapport survey: ' + msg);
  }

  function emit(name, detail) {
    detail.namespace = ns;
    detail.experiment = exp;
    detail.touchpoint = d.touchpoint || '';
    document.dispatchEvent(new CustomEvent('rapport:' + name, { detail: detail }));
  }

  function readCookie(name) {
    var parts = document.cookie ? document.cookie.split('; ') : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf('=');
      if (parts[i].slice(0, eq) === name) return parts[i].slice(eq + 1);
    }
    return '';
  }

  // Own state: <respondent>.<run>.<state>; state is p (shown, unanswered),
  // a (answered), d (dismissed), s (not sampled) or x (refused).
  function readState() {
    var f = readCookie(own).split('.');
    return { id: /^[A-Za-z0-9_-]{8,64}$/.test(f[0]) ? f[0] : '', run: f[1] || '', state: f[2] || '' };
  }

  function writeState(st) {
    document.cookie = own + '=' + st.id + '.' + st.run + '.' + st.state +
      '; Path=/; Max-Age=31536000; SameSite=Lax' + (location.protocol === 'https:' ? '; Secure' : '');
  }

  function newId() {
    var b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return btoa(String.fromCharCode.apply(null, b)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  // skip tells the page why no question is shown (rapport:skip).
  function skip(reason) {
    emit('skip', { reason: reason });
  }

  var started = false;
  function start() {
    if (started) return;
    started = true;
    fetch(api, { credentials: 'omit' }).then(function (r) {
      if (!r.ok) throw new Error('settings: HTTP ' + r.status);
      return r.json();
    }).then(function (s) {
      if (!s.accepting) return skip('not-accepting');
      var assignment = readCookie(d.cookie || s.cookie);
      // Customers the experiment's route did not serve carry no assignment.
      if (!assignment) return skip('no-assignment');
      if (assignment.split('~')[3] !== String(s.run)) return skip('other-run');
      var st = readState();
      if (!st.id) st.id = newId();
      if (st.run !== String(s.run)) {
        st.run = String(s.run);
        st.state = '';
      }
      if (st.state && st.state !== 'p') return skip(st.state === 's' ? 'sampled-out' : 'already-asked'); // once per customer and run
      if (!st.state) {
        st.state = Math.random() < sample ? 'p' : 's';
        writeState(st);
        if (st.state === 's') return skip('sampled-out');
      }
      show(s, st, assignment);
    }).catch(function (e) {
      warn(e.message);
      skip('settings-unavailable');
    });
  }

  var css =
    ':host{all:initial}' +
    '.box{position:fixed;bottom:16px;right:16px;z-index:2147483647;max-width:min(360px,calc(100vw - 32px));' +
    'box-sizing:border-box;background:#fff;color:#1f2328;border:1px solid #8c959f;border-radius:8px;' +
    'box-shadow:0 4px 16px rgba(0,0,0,.2);padding:16px;font:15px/1.4 system-ui,sans-serif}' +
    '.box.left{right:auto;left:16px}' +
    '@media (prefers-reduced-motion:no-preference){.box{animation:in .2s ease-out}}' +
    '@keyframes in{from{opacity:0;transform:translateY(8px)}to{opacity:1;transform:none}}' +
    '.q{margin:0 28px 12px 0;font-weight:600}' +
    '.scale{display:flex;flex-wrap:wrap;gap:4px}' +
    'button{font:inherit;cursor:pointer;border-radius:6px}' +
    '.opt{min-width:36px;min-height:36px;border:1px solid #57606a;background:#f6f8fa;color:#1f2328}' +
    '.opt[aria-checked=true]{background:#0b5cd5;border-color:#0b5cd5;color:#fff}' +
    '.hint{display:flex;justify-content:space-between;gap:8px;font-size:13px;color:#57606a;margin:4px 0 12px}' +
    'label{display:block;font-size:13px;margin-bottom:4px}' +
    'textarea{box-sizing:border-box;width:100%;min-height:64px;font:inherit;margin-bottom:12px;border:1px solid #57606a;border-radius:6px}' +
    '.send{border:0;background:#0b5cd5;color:#fff;padding:8px 16px}' +
    '.send:disabled{background:#8c959f;cursor:default}' +
    '.close{position:absolute;top:8px;right:8px;border:0;background:none;color:#57606a;font-size:20px;width:32px;height:32px}' +
    ':focus-visible{outline:3px solid #0b5cd5;outline-offset:2px}' +
    '.status{margin:8px 0 0;min-height:1em}';

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text) e.textContent = text;
    return e;
  }

  function show(s, st, assignment) {
    var nps = s.metric === 'NPS';
    var host = el('div', { 'data-rapport-survey': exp });
    var root = host.attachShadow({ mode: 'open' });
    try {
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(css);
      root.adoptedStyleSheets = [sheet];
    } catch (e) {
      root.appendChild(el('style', {}, css)); // browsers without constructable sheets
    }
    var id = 'rapport-' + exp;
    var box = el('div', { 'class': 'box' + (d.position === 'bottom-left' ? ' left' : ''), role: 'dialog',
      'aria-modal': 'false', 'aria-labelledby': id + '-q', lang: d.lang || document.documentElement.lang || 'en' });
    var close = el('button', { 'class': 'close', type: 'button', 'aria-label': d.closeLabel || 'Close' }, '\u00d7');
    var q = el('p', { 'class': 'q', id: id + '-q' }, d.question ||
      (nps ? 'How likely are you to recommend us to a friend or colleague?' : 'How satisfied are you with your experience today?'));
    var low = d.lowLabel || (nps ? 'Not at all likely' : 'Very dissatisfied');
    var high = d.highLabel || (nps ? 'Extremely likely' : 'Very satisfied');
    var group = el('div', { 'class': 'scale', role: 'radiogroup', 'aria-labelledby': id + '-q', 'aria-describedby': id + '-h' });
    var hint = el('div', { 'class': 'hint', id: id + '-h' });
    hint.appendChild(el('span', {}, s.scaleMin + ' = ' + low));
    hint.appendChild(el('span', {}, s.scaleMax + ' = ' + high));
    var send = el('button', { 'class': 'send', type: 'button', disabled: '' }, d.submitLabel || 'Send');
    var status = el('p', { 'class': 'status', role: 'status', 'aria-live': 'polite' });
    var comment = null;
    var opts = [];
    var score = null;

    function select(i, focus) {
      score = s.scaleMin + i;
      for (var j = 0; j < opts.length; j++) {
        opts[j].setAttribute('aria-checked', j === i ? 'true' : 'false');
        opts[j].tabIndex = j === i ? 0 : -1;
      }
      if (focus) opts[i].focus();
      send.disabled = false;
    }

    for (var v = s.scaleMin; v <= s.scaleMax; v++) {
      var label = String(v) + (v === s.scaleMin ? ', ' + low : v === s.scaleMax ? ', ' + high : '');
      var o = el('button', { 'class': 'opt', type: 'button', role: 'radio', 'aria-checked': 'false',
        'aria-label': label, 'data-score': String(v), tabindex: v === s.scaleMin ? '0' : '-1' }, String(v));
      o.addEventListener('click', select.bind(null, v - s.scaleMin, false));
      opts.push(o);
      group.appendChild(o);
    }
    group.addEventListener('keydown', function (e) {
      var i = opts.indexOf(root.activeElement);
      if (i < 0) return;
      var n = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[e.key];
      if (e.key === 'Home') i = 0;
      else if (e.key === 'End') i = opts.length - 1;
      else if (n) i = (i + n + opts.length) % opts.length;
      else return;
      e.preventDefault();
      select(i, true);
    });

    box.appendChild(close);
    box.appendChild(q);
    box.appendChild(group);
    box.appendChild(hint);
    if (d.comment === 'true') {
      comment = el('textarea', { id: id + '-c', maxlength: '1000' });
      box.appendChild(el('label', { 'for': id + '-c' }, d.commentLabel || 'Tell us more (optional)'));
      box.appendChild(comment);
    }
    box.appendChild(send);
    box.appendChild(status);
    root.appendChild(box);

    var before = document.activeElement;
    function done() {
      host.remove();
      if (moved && before && before.focus) before.focus();
    }
    function dismiss() {
      st.state = 'd';
      writeState(st);
      emit('dismiss', {});
      done();
    }
    close.addEventListener('click', dismiss);
    box.addEventListener('keydown', function (e) {
      if (e.key === 'Escape') dismiss();
    });
    send.addEventListener('click', function () {
      if (score === null) return;
      send.disabled = true;
      var text = comment ? comment.value : '';
      fetch(api + '/responses', {
        method: 'POST', credentials: 'omit', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ assignment: assignment, respondent: st.id, score: score })
      }).then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (b) {
          if (r.status === 202) {
            st.state = 'a';
            writeState(st);
            status.textContent = d.thanks || 'Thank you!';
            group.hidden = true;
            hint.hidden = true;
            send.hidden = true;
            if (comment) comment.disabled = true;
            emit('answer', { score: score, comment: text, duplicate: !!b.duplicates });
            setTimeout(done, 2500);
            return;
          }
          if (r.status >= 400 && r.status < 500 && r.status !== 429) {
            st.state = 'x'; // refused for good: do not ask again this run
            writeState(st);
          }
          throw { status: r.status, message: b.error || 'HTTP ' + r.status };
        });
      }).catch(function (e) {
        status.textContent = d.error || 'Sorry, your answer could not be sent.';
        send.disabled = st.state === 'x';
        emit('error', { status: e.status || 0, message: e.message || String(e) });
      });
    });

    document.body.appendChild(host);
    var moved = d.trigger && d.trigger.indexOf('click:') === 0 || d.focus === 'true';
    if (moved) opts[0].focus();
  }

  var trigger = d.trigger || 'pageview';
  function arm() {
    if (trigger.indexOf('click:') === 0) {
      var sel = trigger.slice(6);
      document.addEventListener('click', function (e) {
        if (e.target && e.target.closest && e.target.closest(sel)) start();
      }, true);
    } else if (trigger.indexOf('delay:') === 0) {
      setTimeout(start, (parseFloat(trigger.slice(6)) || 0) * 1000);
    } else {
      start();
    }
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', arm);
  else arm();
})();
