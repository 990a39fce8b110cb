// The REST calls (messaging and presence), Bearer-authenticated like the socket.

export class ApiError extends Error {
  constructor(status, detail, retryAfter) {
    super(`HTTP ${status}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
    Object.assign(this, { status, detail, retryAfter });
  }
}

export class Api {
  constructor({ apiBase, presenceBase, token }) {
    this.apiBase = apiBase.replace(/\/$/, "");
    this.presenceBase = presenceBase.replace(/\/$/, "");
    this.token = token;
  }

  async _call(base, method, path, { params, body } = {}) {
    const query = params
      ? "?" + new URLSearchParams(Object.entries(params).filter(([, v]) => v != null)).toString()
      : "";
    const response = await fetch(`${base}${path}${query}`, {
      method,
      headers: {
        Authorization: `Bearer ${this.token}`,
        ...(body ? { "Content-Type": "application/json" } : {}),
      },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = text; }
    if (!response.ok) {
      const retry = response.headers.get("Retry-After");
      throw new ApiError(response.status, data?.detail ?? data, retry ? Number(retry) : null);
    }
    return data;
  }

  conversations(params) { return this._call(this.apiBase, "GET", "/conversations", { params }); }
  createConversation(participantIds, name) {
    return this._call(this.apiBase, "POST", "/conversations", {
      body: name ? { participantIds, name } : { participantIds },
    });
  }
  sendMessage(conversationId, content, clientMessageId) {
    return this._call(this.apiBase, "POST", `/conversations/${conversationId}/messages`, {
      body: { content, messageType: "text", clientMessageId },
    });
  }
  history(conversationId, { limit = 30, before } = {}) {
    return this._call(this.apiBase, "GET", `/conversations/${conversationId}/messages`, {
      params: { limit, before },
    });
  }
  message(conversationId, messageId) {
    return this._call(this.apiBase, "GET", `/conversations/${conversationId}/messages/${messageId}`);
  }
  sync(since, limit) { return this._call(this.apiBase, "GET", "/sync", { params: { since, limit } }); }
  presence(userIds) {
    return this._call(this.presenceBase, "GET", "/presence", { params: { userIds: userIds.join(",") } });
  }
}
