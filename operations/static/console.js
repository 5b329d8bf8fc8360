// Operator console page: reads the server-sent event stream with fetch (so that the token can
// travel in the Authorization header, never in a URL), draws the camera and the map, and
// sends commands as JSON. The server decides everything; this page only shows and asks.
'use strict';

const DRIVE_PERIOD_MS = 200;  // a held button repeats its command (the planner drops stale ones)
const RECONNECT_MS = 1000;
const LATENCY_WINDOW = 200;

const $ = (id) => document.getElementById(id);
const stats = { frames: 0, latencies: [], connected: false, lastState: null };
window.consoleStats = stats;  // read by the browser test and by curious operators
let limits = { linear: 0, reverse: 0, angular: 0 };
let openRequest = null;
let driveTimer = null;

function token() { return sessionStorage.getItem('operatorToken') || ''; }

function headers(extra) {
  const result = Object.assign({}, extra || {});
  if (token()) result.Authorization = 'Bearer ' + token();
  return result;
}

function showMessage(text, accepted) {
  const element = $('message');
  element.textContent = text;
  element.className = 'message ' + (accepted ? 'accepted' : 'refused');
}

async function send(action, extra) {
  const body = Object.assign({ action, operator: $('operator').value, note: $('note').value }, extra || {});
  let reply;
  try {
    const response = await fetch('/api/command', {
      method: 'POST', headers: headers({ 'Content-Type': 'application/json' }), body: JSON.stringify(body),
    });
    reply = await response.json();
    if (response.status === 401 || response.status === 403) $('token-row').hidden = false;
  } catch (error) {
    reply = { status: 0, message: 'console not reachable: ' + error };
  }
  if (action !== 'manual_cmd' || reply.status !== 200) showMessage(reply.message, reply.status === 200);
  return reply;
}

function setBadge(element, text, kind) {
  element.textContent = text;
  element.className = 'badge ' + kind;
}

function showState(state) {
  stats.lastState = state;
  const safety = state.safety || {};
  const safetyState = safety.state || '-';
  $('safety-state').textContent = safetyState;
  $('safety-state').className = 'state-' + safetyState;
  $('safety-reason').textContent = safety.reason ? '(' + safety.reason + ')' : '';
  $('safety-message').textContent = safety.message || '';
  const kind = { CLEAR: 'ok', LIMIT: 'warn', STOP: 'error', ESTOP: 'error' }[safetyState] || 'stale';
  setBadge($('safety-badge'), 'safety: ' + safetyState, kind);
  const health = state.health || {};
  $('health-level').textContent = health.level || 'no report';
  $('health-level').className = 'level-' + (health.level || 'STALE');
  $('health-message').textContent = health.message || '';
  if (state.last_reset) {
    const r = state.last_reset;
    $('reset-result').textContent = 'safety monitor: ' + r.message;
    $('reset-result').className = 'message ' + (r.success ? 'accepted' : 'refused');
  }
  openRequest = state.request;
  const request = $('request');
  if (openRequest) {
    request.className = 'open';
    request.textContent = '[' + (openRequest.kind || 'help') + '] ' + (openRequest.question || openRequest.reason || '')
      + (openRequest.reason && openRequest.question ? ' (' + openRequest.reason + ')' : '') + ' id ' + openRequest.id;
  } else {
    request.className = 'muted';
    request.textContent = state.request_problem || 'no open request';
  }
  $('approve').disabled = $('decline').disabled = !(openRequest && openRequest.id);
  limits = state.limits || limits;
  $('limits').textContent = 'capped at ' + limits.linear + ' m/s forward, ' + limits.reverse
    + ' m/s back, ' + limits.angular + ' rad/s';
  $('manual-toggle').checked = !!state.manual_mode;
  document.querySelectorAll('[data-drive]').forEach((b) => { b.disabled = !state.manual_mode; });
  if (state.token_required && !token()) $('token-row').hidden = false;
  const list = $('actions');
  list.textContent = '';
  (state.actions || []).slice().reverse().forEach((a) => {
    const item = document.createElement('li');
    item.textContent = a.time.slice(11, 19) + ' ' + (a.who || '?') + ': ' + a.action + ' ' + a.result
      + (a.why ? ' (' + a.why + ')' : '') + (a.result === 'refused' ? ': ' + a.message : '');
    list.appendChild(item);
  });
  drawMap(state);
}

function showCamera(frame) {
  $('camera').src = 'data:image/jpeg;base64,' + frame.jpeg;
  stats.frames += 1;
  const latency = Date.now() / 1000 - frame.stamp;
  // Stamps on simulated time are not comparable with this clock: show nothing then.
  if (latency > -1 && latency < 60) {
    stats.latencies.push(latency);
    if (stats.latencies.length > LATENCY_WINDOW) stats.latencies.shift();
    const sorted = stats.latencies.slice().sort((a, b) => a - b);
    $('latency').textContent = 'camera ' + (1000 * sorted[Math.floor(sorted.length / 2)]).toFixed(0) + ' ms old';
  }
}

function drawMap(state) {
  const canvas = $('map');
  const context = canvas.getContext('2d');
  context.clearRect(0, 0, canvas.width, canvas.height);
  const lines = [[state.route || [], '#2563eb', 3], [state.trail || [], '#9ca3af', 2], [state.path || [], '#16a34a', 3]];
  const points = lines.flatMap((l) => l[0]).concat(state.pose ? [state.pose] : []);
  if (!points.length) return;
  $('map-frame').textContent = state.frame_id ? 'frame ' + state.frame_id : '';
  const xs = points.map((p) => p[0]); const ys = points.map((p) => p[1]);
  const minX = Math.min(...xs) - 2, maxX = Math.max(...xs) + 2, minY = Math.min(...ys) - 2, maxY = Math.max(...ys) + 2;
  const scale = Math.min(canvas.width / (maxX - minX), canvas.height / (maxY - minY));
  const toCanvas = (p) => [(p[0] - minX) * scale, canvas.height - (p[1] - minY) * scale];
  for (const [line, colour, width] of lines) {
    if (line.length < 2) continue;
    context.strokeStyle = colour; context.lineWidth = width; context.beginPath();
    line.forEach((p, i) => { const [x, y] = toCanvas(p); if (i) context.lineTo(x, y); else context.moveTo(x, y); });
    context.stroke();
  }
  if (state.pose) {  // the robot: a triangle pointing along its heading
    const [x, y] = toCanvas(state.pose); const yaw = state.pose[2];
    context.fillStyle = '#111'; context.beginPath();
    context.moveTo(x + 10 * Math.cos(yaw), y - 10 * Math.sin(yaw));
    context.lineTo(x + 6 * Math.cos(yaw + 2.5), y - 6 * Math.sin(yaw + 2.5));
    context.lineTo(x + 6 * Math.cos(yaw - 2.5), y - 6 * Math.sin(yaw - 2.5));
    context.fill();
  }
}

function dispatch(block) {
  let kind = 'message'; const data = [];
  for (const line of block.split('\n')) {
    if (line.startsWith('event:')) kind = line.slice(6).trim();
    else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
  }
  if (!data.length) return;
  const payload = JSON.parse(data.join('\n'));
  if (kind === 'state') showState(payload);
  else if (kind === 'camera') showCamera(payload);
}

async function listen() {
  for (;;) {
    try {
      const response = await fetch('/api/events', { headers: headers(), cache: 'no-store' });
      if (response.status === 401 || response.status === 403) {
        $('token-row').hidden = false;
        setBadge($('connection'), response.status === 401 ? 'token required' : 'wrong token', 'error');
      } else if (response.ok) {
        stats.connected = true;
        setBadge($('connection'), 'live', 'ok');
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          let end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            dispatch(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
          }
        }
      }
    } catch (error) {
      // the console went away or the network dropped: show it and try again
    }
    stats.connected = false;
    if (!$('connection').textContent.includes('token')) setBadge($('connection'), 'disconnected', 'stale');
    await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
  }
}

function driveCommand(direction) {
  return {
    forward: { linear: limits.linear, angular: 0 }, back: { linear: -limits.reverse, angular: 0 },
    left: { linear: 0, angular: limits.angular }, right: { linear: 0, angular: -limits.angular },
  }[direction];
}

function startDriving(direction) {
  stopDriving(false);
  const command = driveCommand(direction);
  send('manual_cmd', command);
  driveTimer = setInterval(() => send('manual_cmd', command), DRIVE_PERIOD_MS);
}

function stopDriving(sendZero) {
  if (driveTimer) { clearInterval(driveTimer); driveTimer = null; }
  if (sendZero && $('manual-toggle').checked) send('manual_cmd', { linear: 0, angular: 0 });
}

function wire() {
  const saved = sessionStorage.getItem('operatorName');
  if (saved) $('operator').value = saved;
  $('operator').addEventListener('change', () => sessionStorage.setItem('operatorName', $('operator').value));
  $('token-row').addEventListener('submit', (event) => event.preventDefault());
  $('token').addEventListener('change', () => sessionStorage.setItem('operatorToken', $('token').value.trim()));
  $('estop').addEventListener('click', () => send('estop'));
  $('release').addEventListener('click', () => send('release_estop'));
  $('reset').addEventListener('click', () => send('reset'));
  $('approve').addEventListener('click', () => openRequest && send('assist_response', { id: openRequest.id, decision: 'approve' }));
  $('decline').addEventListener('click', () => openRequest && send('assist_response', { id: openRequest.id, decision: 'decline' }));
  $('manual-toggle').addEventListener('change', async (event) => {
    stopDriving(false);
    const reply = await send('manual_mode', { enabled: event.target.checked });
    if (reply.status !== 200) event.target.checked = !event.target.checked;
  });
  document.querySelectorAll('[data-drive]').forEach((button) => {
    const direction = button.dataset.drive;
    button.addEventListener('pointerdown', () => startDriving(direction));
    for (const end of ['pointerup', 'pointerleave', 'pointercancel']) button.addEventListener(end, () => driveTimer && stopDriving(true));
  });
  const keys = { ArrowUp: 'forward', ArrowDown: 'back', ArrowLeft: 'left', ArrowRight: 'right' };
  document.addEventListener('keydown', (event) => {
    if (keys[event.key] && $('manual-toggle').checked && !event.repeat && event.target.tagName !== 'INPUT') startDriving(keys[event.key]);
  });
  document.addEventListener('keyup', (event) => { if (keys[event.key] && driveTimer) stopDriving(true); });
  listen();
}

document.addEventListener('DOMContentLoaded', wire);
