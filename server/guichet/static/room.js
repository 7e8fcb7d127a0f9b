// Guichet waiting room page: join, follow the queue (SSE, else polling), get admitted.
// No framework, no build step. Every string lives in I18N below; text goes in via
// textContent only (the page runs under a strict CSP with Trusted Types enforced).
'use strict';

(() => {
  const I18N = {
    fr: {
      doc_title: 'File d’attente',
      brand: 'Guichet',
      title: 'Salle d’attente',
      lang_hint: 'Changer de langue',
      other_lang_name: 'English',
      other_lang_code: 'en',
      state_heading: 'Où en êtes-vous',
      position_label: 'Votre place dans la file',
      ahead_label: 'Personnes devant vous',
      eta_label: 'Attente estimée',
      number_label: 'Votre numéro',
      progress_label: 'Progression',
      progress_text: '{pct} du chemin parcouru',
      actions_heading: 'Actions',
      leave: 'Quitter la file',
      leave_question: 'Vous perdrez votre place. Quitter la file ?',
      leave_yes: 'Oui, quitter la file',
      leave_no: 'Non, rester',
      continue: 'Si rien ne se passe, continuer vers le site',
      help_heading: 'Bon à savoir',
      help_keep_open:
        'Gardez cette page ouverte : vous serez redirigé automatiquement quand ce sera votre tour.',
      help_no_reload:
        'Inutile de recharger la page : votre place est conservée et se met à jour toute seule.',
      help_one_tab:
        'Un seul onglet suffit : ouvrir plusieurs onglets ne vous fait pas avancer plus vite.',
      state_loading: 'Connexion à la file d’attente…',
      state_prequeue:
        'La file n’est pas encore ouverte. Gardez cette page ouverte : votre place vous sera attribuée à l’ouverture.',
      state_waiting:
        'Vous êtes dans la file. Gardez cette page ouverte : vous passerez automatiquement à votre tour.',
      state_ready: 'C’est votre tour ! Ouverture du site…',
      state_redirecting: 'C’est votre tour ! Redirection vers le site…',
      state_admitted: 'Vous avez déjà été admis avec ce ticket.',
      state_expired:
        'Votre tour est passé pendant votre absence et votre ticket a expiré.',
      state_closed: 'La file d’attente est fermée.',
      state_sold_out: 'Tout a été vendu. Nous sommes désolés.',
      state_session_ended: 'Votre visite avec ce ticket est terminée.',
      state_left: 'Vous avez quitté la file.',
      state_no_token:
        'Ouvrez cette page depuis le lien du site de billetterie : il vous identifie pour rejoindre la file.',
      state_auth:
        'Votre connexion a expiré. Revenez au site de billetterie et rouvrez la file d’attente : votre place est conservée.',
      state_unknown_room: 'Cette file d’attente n’existe pas.',
      state_error: 'Une erreur empêche de suivre votre place. Rechargez la page dans un instant.',
      announce_waiting:
        'Votre place dans la file : {position}. Personnes devant vous : {ahead}. Attente estimée : {eta}.',
      opens_at: 'Ouverture de la file : {time}.',
      eta_unknown: 'pas encore connue',
      eta_now: 'c’est imminent',
      eta_lt_minute: 'moins d’une minute',
      eta_minute: 'environ 1 minute',
      eta_minutes: 'environ {n} minutes',
      eta_hour: 'environ 1 heure',
      eta_hours: 'environ {n} heures',
      eta_hour_minutes: 'environ 1 heure et {m} minutes',
      eta_hours_minutes: 'environ {n} heures et {m} minutes',
      error_network: 'Connexion perdue. Nouvel essai dans {s} s…',
      error_busy: 'Le service est très sollicité. Nouvel essai dans {s} s…',
      error_full: 'Le site est complet pour l’instant. Nouvel essai dans {s} s…',
      error_problem: 'Erreur : {detail}',
      error_leave: 'Impossible de quitter la file pour l’instant : {detail}',
      error_redirect: 'Adresse de redirection invalide. Contactez l’organisateur.',
      state_rejecting: 'La salle ne laisse entrer personne pour le moment. Nouvel essai dans un instant…',
      mode_random:
        'Vous participez à un tirage au sort : {n} personnes, {rate} admises par minute. Pas de rang : chacun a la même chance à chaque tirage.',
      mode_passthrough: 'Pas d’attente en ce moment : accès direct au site.',
      mode_reject: 'La salle ne laisse entrer personne pour le moment. Votre place est conservée.',
      challenge_progress: 'Vérification de votre navigateur… {pct}',
    },
    en: {
      doc_title: 'Waiting room',
      brand: 'Guichet',
      title: 'Waiting room',
      lang_hint: 'Change language',
      other_lang_name: 'Français',
      other_lang_code: 'fr',
      state_heading: 'Where you stand',
      position_label: 'Your place in line',
      ahead_label: 'People ahead of you',
      eta_label: 'Estimated wait',
      number_label: 'Your number',
      progress_label: 'Progress',
      progress_text: '{pct} of the way there',
      actions_heading: 'Actions',
      leave: 'Leave the queue',
      leave_question: 'You will lose your place. Leave the queue?',
      leave_yes: 'Yes, leave the queue',
      leave_no: 'No, stay in line',
      continue: 'If nothing happens, continue to the site',
      help_heading: 'Good to know',
      help_keep_open: 'Keep this page open: you will be taken to the site automatically when it is your turn.',
      help_no_reload: 'No need to reload: your place is kept and updates by itself.',
      help_one_tab: 'One tab is enough: opening several tabs does not move you forward faster.',
      state_loading: 'Connecting to the queue…',
      state_prequeue:
        'The queue has not opened yet. Keep this page open: you will get your place in line when it opens.',
      state_waiting:
        'You are in line. Keep this page open: you will be let in automatically when it is your turn.',
      state_ready: 'It’s your turn! Opening the site…',
      state_redirecting: 'It’s your turn! Taking you to the site…',
      state_admitted: 'You have already been let in with this ticket.',
      state_expired: 'Your turn came while you were away and your ticket has expired.',
      state_closed: 'The waiting room is closed.',
      state_sold_out: 'Everything has been sold. We are sorry.',
      state_session_ended: 'Your visit with this ticket has ended.',
      state_left: 'You have left the queue.',
      state_no_token:
        'Open this page from the link on the ticketing site: it identifies you to join the queue.',
      state_auth:
        'Your sign-in has expired. Go back to the ticketing site and open the waiting room again: your place is kept.',
      state_unknown_room: 'This waiting room does not exist.',
      state_error: 'An error stops us following your place. Reload the page in a moment.',
      announce_waiting:
        'Your place in line: {position}. People ahead of you: {ahead}. Estimated wait: {eta}.',
      opens_at: 'The queue opens on {time}.',
      eta_unknown: 'not known yet',
      eta_now: 'any moment now',
      eta_lt_minute: 'less than a minute',
      eta_minute: 'about 1 minute',
      eta_minutes: 'about {n} minutes',
      eta_hour: 'about 1 hour',
      eta_hours: 'about {n} hours',
      eta_hour_minutes: 'about 1 hour and {m} minutes',
      eta_hours_minutes: 'about {n} hours and {m} minutes',
      error_network: 'Connection lost. Trying again in {s} s…',
      error_busy: 'The service is very busy. Trying again in {s} s…',
      error_full: 'The site is full right now. Trying again in {s} s…',
      error_problem: 'Error: {detail}',
      error_leave: 'Could not leave the queue right now: {detail}',
      error_redirect: 'Invalid redirect address. Please contact the organiser.',
      state_rejecting: 'The room is not letting anyone in right now. Trying again shortly…',
      mode_random:
        'You are in a random draw: {n} people, {rate} admitted per minute. There is no place in line: everyone has the same chance at each draw.',
      mode_passthrough: 'No wait right now: straight in to the site.',
      mode_reject: 'The room is not letting anyone in right now. Your place is kept.',
      challenge_progress: 'Checking your browser… {pct}',
    },
  };

  const LANGS = Object.keys(I18N);
  const DEFAULT_LANG = 'fr';
  const LANG_KEY = 'guichet:lang';
  // A polite live region read on every tick would drown a screen-reader user: position
  // changes are announced at most this often (state changes at once).
  const ANNOUNCE_MIN_INTERVAL_MS = 8000;
  const TERMINAL = new Set(['admitted', 'expired', 'closed', 'sold_out']);
  const HOLDS_PLACE = new Set(['prequeue', 'waiting']);
  const ROOM_PATH = /^\/rooms\/([a-z0-9][a-z0-9-]{0,47})\/?$/;

  const $ = (id) => document.getElementById(id);
  const el = {
    root: document.documentElement,
    main: $('main'),
    state: $('state'),
    stateText: $('state-text'),
    figures: $('figures'),
    position: $('position'),
    ahead: $('ahead'),
    eta: $('eta'),
    number: $('number'),
    progressBlock: $('progress-block'),
    progress: $('progress'),
    progressText: $('progress-text'),
    opens: $('opens'),
    mode: $('mode'),
    cont: $('continue'),
    contLink: $('continue-link'),
    error: $('error'),
    actions: $('actions'),
    leave: $('leave'),
    confirm: $('leave-confirm'),
    question: $('leave-question'),
    leaveYes: $('leave-yes'),
    leaveNo: $('leave-no'),
    langToggle: $('lang-toggle'),
    announce: $('announce'),
    challenge: $('challenge'),
  };

  const match = ROOM_PATH.exec(location.pathname);
  const room = match ? match[1] : null;
  const api = room ? `/v1/rooms/${room}` : '';

  let lang = initialLang();
  let token = null;
  let ticket = null;
  let last = null; // the last Status (or Joined) received
  let seen = null; // its signed `seen`: sent back, no server answers behind it
  // A page-side state overriding the server's, once there is nothing more to follow:
  // no_token, auth, unknown_room, closed, expired, session_ended, left, error, redirecting.
  let clientState = null;
  let errorMsg = null; // {key, params} of the error shown under the figures (role=alert)
  let baseline = null; // `ahead` when this ticket was first seen: the progress bar's 0 %
  let stream = null;
  let streamFailed = false;
  let pollTimer = 0;
  const retryTimers = { retry: 0, admit: 0 };
  let admitBusy = false;
  let stopped = false;
  let failures = 0;
  let challengeShare = null; // share of the expected tries done while solving the door's puzzle
  let doorTries = 0; // challenges solved for this join (each refusal brings a fresh one)
  const DOOR_MAX_TRIES = 5;
  const DOOR_BATCH = 256; // digests asked of Web Crypto at once
  const DOOR_YIELD_MS = 50; // longest stretch of solving without letting the page repaint
  let redirectUrl = null;
  const announced = { key: null, at: 0, timer: 0 };

  // --- small helpers ---------------------------------------------------------------------

  function storage(kind) {
    try {
      return kind === 'local' ? window.localStorage : window.sessionStorage;
    } catch {
      return null; // storage disabled
    }
  }

  function store(kind, key, value) {
    const s = storage(kind);
    if (!s) return;
    try {
      if (value === null) s.removeItem(key);
      else s.setItem(key, value);
    } catch {
      // quota or privacy mode: the page works without it
    }
  }

  function recall(kind, key) {
    const s = storage(kind);
    try {
      return s ? s.getItem(key) : null;
    } catch {
      return null;
    }
  }

  function initialLang() {
    const saved = recall('local', LANG_KEY);
    if (saved && LANGS.includes(saved)) return saved;
    const served = (document.documentElement.lang || '').slice(0, 2).toLowerCase();
    return LANGS.includes(served) ? served : DEFAULT_LANG;
  }

  function t(key, params) {
    const text = I18N[lang][key] ?? I18N[DEFAULT_LANG][key] ?? key;
    if (!params) return text;
    return text.replace(/\{(\w+)\}/g, (whole, name) =>
      Object.prototype.hasOwnProperty.call(params, name) ? String(params[name]) : whole,
    );
  }

  function num(n) {
    return new Intl.NumberFormat(lang).format(n);
  }

  function etaWords(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) {
      return t('eta_unknown');
    }
    if (seconds <= 0) return t('eta_now');
    if (seconds < 60) return t('eta_lt_minute');
    const minutes = Math.round(seconds / 60);
    if (minutes < 60) return minutes === 1 ? t('eta_minute') : t('eta_minutes', { n: num(minutes) });
    let hours = Math.floor(minutes / 60);
    let rest = Math.round((minutes - hours * 60) / 5) * 5;
    if (rest === 60) {
      hours += 1;
      rest = 0;
    }
    if (rest === 0) return hours === 1 ? t('eta_hour') : t('eta_hours', { n: num(hours) });
    return hours === 1
      ? t('eta_hour_minutes', { m: num(rest) })
      : t('eta_hours_minutes', { n: num(hours), m: num(rest) });
  }

  function whenWords(iso) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return '';
    const sameDay = date.toDateString() === new Date().toDateString();
    const options = sameDay
      ? { hour: '2-digit', minute: '2-digit' }
      : { dateStyle: 'full', timeStyle: 'short' };
    return new Intl.DateTimeFormat(lang, options).format(date);
  }

  function jitter(ms) {
    return Math.round(ms * (0.9 + Math.random() * 0.2));
  }

  function backoffMs() {
    failures += 1;
    return jitter(Math.min(30000, 1000 * 2 ** Math.min(failures - 1, 5)));
  }

  function retryAfterS(res, fallback) {
    const header = res.headers.get('Retry-After');
    if (header) {
      const seconds = Number(header);
      if (Number.isFinite(seconds)) return Math.min(300, Math.max(1, Math.ceil(seconds)));
      const date = Date.parse(header);
      if (!Number.isNaN(date)) {
        return Math.min(300, Math.max(1, Math.ceil((date - Date.now()) / 1000)));
      }
    }
    return fallback;
  }

  async function problemOf(res) {
    const type = res.headers.get('Content-Type') || '';
    if (!type.includes('json')) return { status: res.status };
    try {
      const body = await res.json();
      const slug = typeof body.type === 'string' ? body.type.split('/').pop() : '';
      return { ...body, slug, status: res.status };
    } catch {
      return { status: res.status };
    }
  }

  function safeUrl(raw) {
    try {
      const url = new URL(raw, location.href);
      return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null;
    } catch {
      return null;
    }
  }

  function authHeaders(withTicket) {
    const headers = { Accept: 'application/json', Authorization: `Bearer ${token}` };
    if (withTicket && ticket) headers['X-Queue-Ticket'] = ticket;
    return headers;
  }

  function request(path, method, headers, body) {
    return fetch(api + path, { method, headers, body, credentials: 'same-origin', cache: 'no-store' });
  }

  // --- the token from the URL fragment ---------------------------------------------------

  function takeToken() {
    const key = `guichet:token:${room}`;
    if (location.hash.length > 1) {
      const params = new URLSearchParams(location.hash.slice(1));
      const fresh = params.get('token');
      if (fresh !== null) {
        params.delete('token');
        const rest = params.toString();
        // The token must not stay in the address bar, the history or a bookmark.
        history.replaceState(history.state, '', location.pathname + location.search + (rest ? `#${rest}` : ''));
        if (/^[\w.~+/=-]+$/.test(fresh)) {
          store('session', key, fresh);
          store('session', `guichet:left:${room}`, null); // a fresh link: ask the server again
          return fresh;
        }
      }
    }
    return recall('session', key);
  }

  // --- rendering -------------------------------------------------------------------------

  function phase() {
    if (clientState) return clientState;
    return last ? last.state : 'loading';
  }

  function setValue(node, raw, text) {
    node.dataset.value = raw === null || raw === undefined ? '' : String(raw);
    node.textContent = text;
  }

  function applyStatic() {
    el.root.lang = lang;
    for (const node of document.querySelectorAll('[data-i18n]')) {
      node.textContent = t(node.dataset.i18n);
    }
    el.langToggle.textContent = t('other_lang_name');
    el.langToggle.lang = t('other_lang_code');
  }

  function render() {
    const p = phase();
    const s = last;
    el.state.dataset.state = p;
    el.stateText.textContent = t(`state_${p}`);
    el.main.setAttribute('aria-busy', p === 'loading' ? 'true' : 'false');

    const placed = s && s.number !== null && s.number !== undefined && s.position !== null
      && s.position !== undefined && ['waiting', 'ready', 'redirecting'].includes(p);
    el.figures.hidden = !placed;
    el.progressBlock.hidden = !placed;
    if (placed) {
      const ready = p !== 'waiting';
      const ahead = ready ? 0 : s.ahead ?? Math.max(0, s.position - 1);
      setValue(el.position, s.position, num(s.position));
      setValue(el.ahead, ahead, num(ahead));
      setValue(el.eta, ready ? 0 : s.eta_s ?? null, ready ? t('eta_now') : etaWords(s.eta_s));
      setValue(el.number, s.number, num(s.number));
      const max = Math.max(1, baseline ?? ahead);
      const done = ready ? max : Math.min(max, Math.max(0, max - ahead));
      el.progress.max = max;
      el.progress.value = done;
      el.progressText.textContent = t('progress_text', {
        pct: new Intl.NumberFormat(lang, { style: 'percent' }).format(done / max),
      });
    }
    document.title = placed && p === 'waiting'
      ? `(${num(s.position)}) ${t('doc_title')}`
      : t('doc_title');

    // The queueing mode, when it changes what waiting means (docs: "Queueing modes").
    const modeKey = s && ['prequeue', 'waiting', 'ready'].includes(p)
      && { random: 'mode_random', passthrough: 'mode_passthrough', reject: 'mode_reject' }[s.mode];
    const modeShown = Boolean(modeKey) && !(s.mode === 'random' && p !== 'waiting');
    el.mode.hidden = !modeShown;
    el.mode.dataset.mode = s && s.mode ? s.mode : '';
    el.mode.textContent = modeShown ? t(modeKey, {
      n: num(s.in_draw ?? 0),
      rate: num(Math.round((s.admission_rate || 0) * 60)),
    }) : '';

    el.opens.hidden = !(p === 'prequeue' && s && s.opens_at);
    if (!el.opens.hidden) el.opens.textContent = t('opens_at', { time: whenWords(s.opens_at) });

    el.cont.hidden = !(p === 'redirecting' && redirectUrl);
    if (!el.cont.hidden) el.contLink.href = redirectUrl;

    el.challenge.hidden = challengeShare === null;
    if (!el.challenge.hidden) {
      el.challenge.dataset.value = String(challengeShare);
      el.challenge.textContent = t('challenge_progress', {
        pct: new Intl.NumberFormat(lang, { style: 'percent' }).format(challengeShare),
      });
    }

    el.error.hidden = !errorMsg;
    el.error.textContent = errorMsg ? t(errorMsg.key, errorMsg.params) : '';

    const canLeave = HOLDS_PLACE.has(p) && Boolean(ticket);
    el.actions.hidden = !canLeave;
    if (!canLeave) {
      el.leave.hidden = true;
      el.confirm.hidden = true;
    } else if (el.confirm.hidden) {
      el.leave.hidden = false;
    }
  }

  function announcement() {
    const p = phase();
    const s = last;
    if (p === 'waiting' && s && s.position !== null && s.position !== undefined) {
      const ahead = s.ahead ?? Math.max(0, s.position - 1);
      return {
        key: `waiting|${s.position}`,
        text: t('announce_waiting', {
          position: num(s.position),
          ahead: num(ahead),
          eta: etaWords(s.eta_s),
        }),
      };
    }
    return { key: p, text: t(`state_${p}`) };
  }

  function announce() {
    const { key, text } = announcement();
    if (key === announced.key) return;
    const stateChanged = key.split('|')[0] !== (announced.key || '').split('|')[0];
    const wait = announced.at + ANNOUNCE_MIN_INTERVAL_MS - Date.now();
    if (stateChanged || wait <= 0) {
      clearTimeout(announced.timer);
      announced.timer = 0;
      announced.key = key;
      announced.at = Date.now();
      el.announce.textContent = text;
    } else if (!announced.timer) {
      // Say the latest position once the quiet interval is over.
      announced.timer = setTimeout(() => {
        announced.timer = 0;
        announce();
      }, wait);
    }
  }

  function update() {
    render();
    if (phase() !== 'loading') announce();
  }

  function showError(key, params) {
    errorMsg = { key, params };
    update();
  }

  function finish(state) {
    clientState = state;
    stop();
    update();
  }

  // --- following the queue ---------------------------------------------------------------

  function stop() {
    stopped = true;
    closeStream();
    clearTimeout(pollTimer);
    clearTimeout(retryTimers.retry);
    clearTimeout(retryTimers.admit);
  }

  function later(fn, ms, slot = 'retry') {
    clearTimeout(retryTimers[slot]);
    retryTimers[slot] = setTimeout(fn, ms);
  }

  async function failure(res, retry, slot = 'retry') {
    // Network errors (res null) and overload are retried; anything else will not change by
    // asking again: say what it is and stop.
    if (res === null) {
      const ms = backoffMs();
      showError('error_network', { s: Math.ceil(ms / 1000) });
      later(retry, ms, slot);
      return;
    }
    const problem = await problemOf(res);
    if (res.status === 401) {
      store('session', `guichet:token:${room}`, null);
      token = null;
      finish('auth');
      return;
    }
    if (res.status === 404) {
      finish('unknown_room');
      return;
    }
    if (res.status === 429 || res.status >= 500) {
      const s = retryAfterS(res, Math.ceil(backoffMs() / 1000));
      showError('error_busy', { s });
      later(retry, s * 1000, slot);
      return;
    }
    if (problem.slug === 'room-closed') {
      finish('closed');
      return;
    }
    if (problem.slug === 'ticket-expired') {
      finish('expired');
      return;
    }
    if (problem.slug === 'session-ended') {
      finish('session_ended');
      return;
    }
    if (problem.slug === 'room-rejecting') {  // mode reject: say so, ask again later
      clientState = 'rejecting';
      update();
      later(() => {
        clientState = null;
        retry();
      }, 30_000, slot);
      return;
    }
    errorMsg = {
      key: 'error_problem',
      params: { detail: problem.detail || problem.title || `HTTP ${res.status}` },
    };
    finish('error');
  }

  function onStatus(status) {
    if (!status || typeof status !== 'object' || status.room !== room || stopped) return;
    last = status;
    failures = 0;
    if (!(errorMsg && errorMsg.key === 'error_full' && status.state === 'ready')) errorMsg = null;
    if (status.ticket) ticket = status.ticket;
    if (typeof status.seen === 'string') seen = status.seen;
    if (status.number !== null && status.number !== undefined && status.ahead !== null
        && status.ahead !== undefined) {
      const key = `guichet:first-ahead:${room}:${status.number}`;
      const saved = Number(recall('session', key));
      baseline = Number.isFinite(saved) && saved > 0 ? Math.max(saved, status.ahead) : status.ahead;
      if (baseline !== saved) store('session', key, String(baseline));
    }
    update();
    if (status.state === 'ready') admit();
    else if (TERMINAL.has(status.state)) stop();
  }

  // A POST whose JSON answer is needed: {res, body}, null where the network or JSON failed.
  async function post(path, withTicket, json) {
    let res = null;
    try {
      const headers = authHeaders(withTicket);
      if (json) headers['Content-Type'] = 'application/json';
      res = await request(path, 'POST', headers, json ? JSON.stringify(json) : undefined);
    } catch {
      res = null;
    }
    let body = null;
    if (res && res.ok) {
      try {
        body = await res.json();
      } catch {
        body = null;
      }
    }
    return { res, body };
  }

  async function join(proof) {
    if (stopped) return;
    const { res, body } = await post('/join', false, proof);
    if (res && res.status === 403 && (await passDoor(res.clone()))) return;
    if (res && res.ok) {
      if (!body || !body.ticket) {
        finish('error');
        return;
      }
      ticket = body.ticket;
      doorTries = 0;
      onStatus(body);
      if (!stopped) follow();
      return;
    }
    await failure(res, join);
  }

  // --- the proof-of-work door (a room with challenge_bits > 0; server: room/challenge.py) ----

  // A 403 challenge-required: solve the attached challenge and join with the proof (a few
  // times at most: each refusal brings a fresh challenge). False when it is another 403.
  async function passDoor(res) {
    const problem = await problemOf(res);
    const offer = problem.challenge;
    if (problem.slug !== 'challenge-required' || !offer || typeof offer.token !== 'string'
        || offer.algorithm !== 'sha256-leading-zero-bits' || !(offer.bits >= 0 && offer.bits <= 30)
        || doorTries >= DOOR_MAX_TRIES || !(crypto && crypto.subtle)) {
      return false;
    }
    doorTries += 1;
    const proof = await solveChallenge(offer.token, offer.bits);
    if (stopped) return true;
    join(proof);
    return true;
  }

  function zeroBits(bytes) {
    let bits = 0;
    for (const byte of bytes) {
      if (byte === 0) {
        bits += 8;
        continue;
      }
      return bits + Math.clz32(byte) - 24;
    }
    return bits;
  }

  // Hashcash with Web Crypto: the first counter n such that SHA-256(token + ':' + n) starts
  // with `bits` zero bits. Digests go out in batches; every DOOR_YIELD_MS the page yields to
  // the UI and shows how far it is, as a share of the 2^bits tries expected (never 100 %).
  async function solveChallenge(token, bits) {
    const started = performance.now();
    const encoder = new TextEncoder();
    const expected = 2 ** bits;
    const prefix = `${token}:`;
    let yielded = started;
    challengeShare = 0;
    update();
    for (let n = 0; ; n += DOOR_BATCH) {
      const batch = [];
      for (let i = 0; i < DOOR_BATCH; i += 1) {
        batch.push(crypto.subtle.digest('SHA-256', encoder.encode(prefix + (n + i))));
      }
      const digests = await Promise.all(batch);
      for (let i = 0; i < DOOR_BATCH; i += 1) {
        if (zeroBits(new Uint8Array(digests[i])) >= bits) {
          const solveMs = Math.min(600000, Math.round(performance.now() - started));
          el.challenge.dataset.tries = String(n + i + 1);
          el.challenge.dataset.solveMs = String(solveMs);
          challengeShare = null;
          update();
          return { challenge: token, solution: String(n + i), solve_ms: solveMs };
        }
      }
      if (performance.now() - yielded >= DOOR_YIELD_MS) {
        challengeShare = Math.min(0.99, (n + DOOR_BATCH) / expected);
        render();
        await new Promise((resolve) => setTimeout(resolve, 0));
        yielded = performance.now();
        if (stopped) return null;
      }
    }
  }

  function follow() {
    if (stopped) return;
    if (streamFailed || typeof window.EventSource !== 'function') {
      schedulePoll();
      return;
    }
    closeStream();
    const since = seen ? `&seen=${encodeURIComponent(seen)}` : '';
    const source = new EventSource(`${api}/events?ticket=${encodeURIComponent(ticket)}${since}`);
    let errors = 0;
    stream = source;
    source.addEventListener('open', () => {
      errors = 0;
    });
    source.addEventListener('status', (event) => {
      errors = 0;
      let status = null;
      try {
        status = JSON.parse(event.data);
      } catch {
        return;
      }
      onStatus(status);
    });
    source.addEventListener('error', () => {
      errors += 1;
      // CLOSED: the server refused the stream; twice in a row: the network or a proxy is
      // in the way. Either way, fall back to polling at the server's pace.
      if (source.readyState === EventSource.CLOSED || errors >= 2) {
        closeStream();
        streamFailed = true;
        if (!stopped) schedulePoll(0);
      }
    });
  }

  function closeStream() {
    if (stream) {
      stream.close();
      stream = null;
    }
  }

  function schedulePoll(ms) {
    clearTimeout(pollTimer);
    if (stopped) return;
    const wait = ms ?? jitter(last && last.poll_after_ms > 0 ? last.poll_after_ms : 5000);
    pollTimer = setTimeout(poll, wait);
  }

  async function poll() {
    if (stopped) return;
    let res = null;
    try {
      const headers = { Accept: 'application/json', 'X-Queue-Ticket': ticket };
      if (seen) headers['X-Queue-Seen'] = seen;
      res = await fetch(`${api}/status`, {
        headers,
        credentials: 'same-origin',
        cache: 'no-store',
      });
    } catch {
      res = null;
    }
    if (res && res.ok) {
      try {
        onStatus(await res.json());
      } catch {
        // a garbled answer: try again at the usual pace
      }
      schedulePoll();
      return;
    }
    if (res && res.status === 400 && seen) {
      seen = null; // a mark this server no longer accepts (new secret): ask without it
      schedulePoll(0);
      return;
    }
    if (res && (res.status === 401 || res.status === 403 || res.status === 404) && token) {
      // The ticket is not (or no longer) recognised: joining again is idempotent.
      later(join, jitter(1000));
      return;
    }
    await failure(res, poll);
  }

  async function admit() {
    if (admitBusy || stopped) return;
    admitBusy = true;
    const { res, body } = await post('/admit', true);
    if (res && res.ok) {
      const url = body ? safeUrl(body.redirect_url) : null;
      if (!url) {
        admitBusy = false;
        errorMsg = { key: 'error_redirect' };
        finish('error');
        return;
      }
      redirectUrl = url;
      errorMsg = null;
      finish('redirecting');
      window.location.assign(url);
      return;
    }
    const retry = () => {
      admitBusy = false;
      if (last && last.state === 'ready') admit();
    };
    if (res && res.status === 409) {
      const problem = await problemOf(res.clone());
      if (problem.slug === 'room-full' || problem.slug === 'not-ready') {
        const s = retryAfterS(res, 2);
        if (problem.slug === 'room-full') showError('error_full', { s });
        later(retry, s * 1000, 'admit');
        return;
      }
    }
    await failure(res, retry, 'admit');
  }

  // --- buttons ---------------------------------------------------------------------------

  function openConfirm() {
    el.leave.hidden = true;
    el.confirm.hidden = false;
    el.question.focus();
  }

  function closeConfirm() {
    el.confirm.hidden = true;
    el.leave.hidden = false;
    el.leave.focus();
  }

  async function leaveQueue() {
    el.leaveYes.disabled = true;
    let res = null;
    try {
      res = await request('/leave', 'POST', authHeaders(true));
    } catch {
      res = null;
    }
    el.leaveYes.disabled = false;
    if (res && res.ok) {
      if (last && last.number !== null && last.number !== undefined) {
        store('session', `guichet:first-ahead:${room}:${last.number}`, null);
      }
      // A ticket that left can never be admitted: remember it, so that reloading the page
      // does not show a place that no longer counts.
      store('session', `guichet:left:${room}`, '1');
      ticket = null;
      errorMsg = null;
      el.confirm.hidden = true;
      finish('left');
      el.main.focus();
      return;
    }
    const problem = res ? await problemOf(res) : {};
    const detail = problem.detail || problem.title || (res ? `HTTP ${res.status}` : '—');
    showError('error_leave', { detail });
    closeConfirm();
  }

  function toggleLang() {
    lang = lang === 'fr' ? 'en' : 'fr';
    store('local', LANG_KEY, lang);
    applyStatic();
    render();
  }

  function bind() {
    el.langToggle.addEventListener('click', toggleLang);
    el.leave.addEventListener('click', openConfirm);
    el.leaveNo.addEventListener('click', closeConfirm);
    el.leaveYes.addEventListener('click', leaveQueue);
    el.confirm.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') {
        event.preventDefault();
        closeConfirm();
      }
    });
    document.addEventListener('visibilitychange', () => {
      // Timers are throttled in background tabs: catch up as soon as the page is seen.
      if (document.visibilityState === 'visible' && !stopped && !stream && ticket && pollTimer) {
        schedulePoll(0);
      }
    });
  }

  function start() {
    applyStatic();
    bind();
    if (!room) {
      finish('unknown_room');
      return;
    }
    token = takeToken();
    if (!token) {
      finish('no_token');
      return;
    }
    if (recall('session', `guichet:left:${room}`)) {
      finish('left');
      return;
    }
    render();
    join();
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start, { once: true });
  } else {
    start();
  }
})();
