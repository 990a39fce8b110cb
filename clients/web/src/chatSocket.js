// One device's socket: heartbeats (timer cleared on close), reconnect with backoff, resume
// with `since`, de-duplication by messageId. Mirrors libs/chat-client (the Python client).
//
// Resume: the socket reopens with `since=<cursor>`; the server replays what was missed and
// sends `replay_done`. A server that does not (an older one) or a truncated replay is caught
// up over REST `GET /sync`, and without that route from each conversation's newest page.

// Close codes (chat_core.close_codes): stop for refusals, back off for 1008/1013.
const STOP = new Set([1009, 4001, 4002, 4003, 4029]);
const BACK_OFF = new Set([1008, 1013]);

export function socketUrl(wsBase, userId, token, since) {
  const base = wsBase.replace(/\/$/, "");
  let url = `${base}/ws/${encodeURIComponent(userId)}?token=${encodeURIComponent(token)}`;
  if (since) url += `&since=${encodeURIComponent(since)}`;
  return url;
}

export function backoffDelay(attempt, { initial = 500, maximum = 30000, slow = false } = {}) {
  const base = slow ? 5000 : initial;
  const ceiling = Math.min(maximum, base * 2 ** attempt);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

export class ChatSocket {
  constructor({ wsBase, userId, token, api, since = null, heartbeatMs = 30000, replayTimeoutMs = 4000,
                backoff = {}, onEvent = () => {}, onState = () => {} }) {
    Object.assign(this, { wsBase, userId, token, api, heartbeatMs, replayTimeoutMs, backoff,
                          onEvent, onState });
    this.cursor = since;
    this.seen = new Set();
    this.seenOrder = [];
    this.attempt = 0;
    this.stopped = false;
    this.ws = null;
    this.timers = new Set();
  }

  start() {
    this.stopped = false;
    this._open();
  }

  stop() {
    this.stopped = true;
    this._clearTimers();
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000, "signed out");
  }

  // For tests and "reconnect now": drop the current socket as a network loss would.
  drop() {
    if (this.ws) this.ws.close(3000, "dropped by the client");
  }

  send(frame) {
    if (this.ws?.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  typing(conversationId) { return this.send({ event: "typing", conversationId }); }
  markRead(conversationId, messageId) {
    return this.send({ event: "message_read", conversationId, messageId });
  }
  setStatus(status) { return this.send({ event: "status_change", status }); }

  _later(fn, ms) {
    const id = setTimeout(() => { this.timers.delete(id); fn(); }, ms);
    this.timers.add(id);
    return id;
  }

  _clearTimers() {
    for (const id of this.timers) { clearTimeout(id); clearInterval(id); }
    this.timers.clear();
  }

  _open() {
    const since = this.cursor;
    const ws = new WebSocket(socketUrl(this.wsBase, this.userId, this.token, since));
    this.ws = ws;
    let received = false;
    let replayDone = null;
    let resolveReplay;
    const replay = new Promise((resolve) => { resolveReplay = resolve; });
    let heartbeat = null;

    ws.onopen = () => {
      this.onState({ state: "connected", resumed: Boolean(since) });
      heartbeat = setInterval(() => this.send({ event: "heartbeat" }), this.heartbeatMs);
      this.timers.add(heartbeat);
      if (since) this._catchUp(since, replay, ws);
    };
    ws.onmessage = (message) => {
      received = true;
      let data;
      try { data = JSON.parse(message.data); } catch { return; }
      if (data?.event === "replay_done") {
        if (data.nextSince) this.cursor = data.nextSince;
        replayDone = data;
        resolveReplay(data);
        return;
      }
      if (data?.event === "new_message") {
        this._deliver(data);
        return;
      }
      this.onEvent(data);
    };
    ws.onclose = (event) => {
      clearInterval(heartbeat);
      this.timers.delete(heartbeat);
      resolveReplay(replayDone);
      if (this.ws === ws) this.ws = null;
      if (this.stopped) {
        this.onState({ state: "closed", code: event.code });
        return;
      }
      if (STOP.has(event.code)) {
        this.stopped = true;
        this.onState({ state: "refused", code: event.code, reason: event.reason });
        return;
      }
      if (received) this.attempt = 0;
      const delay = backoffDelay(this.attempt++, { ...this.backoff, slow: BACK_OFF.has(event.code) });
      this.onState({ state: "reconnecting", code: event.code, reason: event.reason, retryIn: delay });
      this._later(() => { if (!this.stopped) this._open(); }, delay);
    };
  }

  // Marks a message the app already has (from REST) so catch-up does not fetch it again.
  remember(messageId) {
    if (this.seen.has(messageId)) return false;
    this.seen.add(messageId);
    this.seenOrder.push(messageId);
    if (this.seenOrder.length > 10000) this.seen.delete(this.seenOrder.shift());
    return true;
  }

  _deliver(message) {
    // Tombstones (a seq whose send died) carry no message.
    if (message.tombstone || !message.messageId) return;
    if (!this.remember(message.messageId)) return;
    this.cursor = message.messageId;
    this.onEvent({ ...message, event: "new_message" });
  }

  async _catchUp(since, replay, ws) {
    const timeout = new Promise((resolve) => this._later(() => resolve(null), this.replayTimeoutMs));
    const done = await Promise.race([replay, timeout]);
    if (this.ws !== ws) return;
    if (done && !done.truncated) {
      this.onState({ state: "caught_up", via: "replay" });
      return;
    }
    let start = done?.nextSince || since;
    try {
      for (;;) {
        const page = await this.api.sync(start, 200);
        // Conversations created while away, announced like the live event.
        for (const c of page.conversations || []) this.onEvent({ ...c, event: "conversation_created" });
        for (const item of page.items || []) this._deliver(item);
        if (page.nextSince) { start = page.nextSince; this.cursor = start; }
        if (!page.hasMore) break;
      }
      this.onState({ state: "caught_up", via: "sync" });
    } catch (error) {
      if (error.status !== 404 && error.status !== 405) {
        this.onState({ state: "catch_up_failed", error: String(error) });
        return;
      }
      // No /sync on this server: each conversation's newest page is the best we can do.
      const listing = await this.api.conversations();
      for (const summary of listing.items || []) {
        const last = summary.lastMessage;
        if (!last || this.seen.has(last.messageId)) continue;
        const page = await this.api.history(summary.id, { limit: 50 });
        for (const item of [...(page.items || [])].reverse()) this._deliver(item);
      }
      this.onState({ state: "caught_up", via: "history" });
    }
  }
}
