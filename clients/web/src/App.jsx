import { useCallback, useEffect, useReducer, useRef, useState } from "react";
import { Api } from "./api.js";
import { ChatSocket } from "./chatSocket.js";
import { initialState, isAfter, isReadByOthers, reducer } from "./store.js";

const STATUSES = ["available", "away", "busy"];
const TYPING_SHOW_MS = 3000;
const TYPING_SEND_EVERY_MS = 2000;
const REFUSALS = {
  4001: "Sign-in refused: invalid or missing token.",
  4002: "Sign-in refused: the token belongs to another user.",
  4003: "This account is disabled.",
  4029: "Too many devices are connected for this account.",
};

function newClientMessageId() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`;
}

function title(conversation, me) {
  if (conversation.name) return conversation.name;
  const others = (conversation.participantIds || []).filter((id) => id !== me);
  return others.join(", ") || "(just you)";
}

function formatTime(timestamp) {
  const when = new Date(timestamp);
  return Number.isNaN(when.getTime()) ? "" : when.toLocaleTimeString();
}

export function SignIn({ authMode, onSignIn }) {
  const [mode, setMode] = useState(authMode === "firebase" ? "firebase" : "dev");
  const [phone, setPhone] = useState("");
  const [userId, setUserId] = useState("");
  const [token, setToken] = useState("");
  const submit = (event) => {
    event.preventDefault();
    const id = (mode === "dev" ? phone : userId).replace(/\s+/g, "");
    if (!id) return;
    onSignIn({ userId: id, token: mode === "dev" ? id : token.trim() });
  };
  return (
    <form className="sign-in" onSubmit={submit} data-testid="signin">
      <h1>Chat</h1>
      <div className="modes">
        <label><input type="radio" checked={mode === "dev"} onChange={() => setMode("dev")} />
          Phone number (dev)</label>
        <label><input type="radio" checked={mode === "firebase"}
                      onChange={() => setMode("firebase")} data-testid="signin-firebase" />
          Firebase ID token</label>
      </div>
      {mode === "dev" ? (
        <input data-testid="signin-phone" placeholder="+84912345678" value={phone}
               onChange={(e) => setPhone(e.target.value)} autoFocus />
      ) : (
        <>
          <input data-testid="signin-user" placeholder="user id" value={userId}
                 onChange={(e) => setUserId(e.target.value)} />
          <textarea data-testid="signin-token" placeholder="Firebase ID token" value={token}
                    onChange={(e) => setToken(e.target.value)} />
        </>
      )}
      <button type="submit" data-testid="signin-submit">Sign in</button>
    </form>
  );
}

function NewConversation({ onCreate }) {
  const [participants, setParticipants] = useState("");
  const [name, setName] = useState("");
  const [error, setError] = useState(null);
  const submit = async (event) => {
    event.preventDefault();
    const ids = participants.split(/[,\s]+/).filter(Boolean);
    if (!ids.length) return;
    try {
      await onCreate(ids, name.trim() || null);
      setParticipants("");
      setName("");
      setError(null);
    } catch (e) {
      setError(String(e.message || e));
    }
  };
  return (
    <form className="new-conversation" onSubmit={submit}>
      <input data-testid="new-conversation-participants" placeholder="+84987654321, ..."
             value={participants} onChange={(e) => setParticipants(e.target.value)} />
      <input data-testid="new-conversation-name" placeholder="name (optional)" value={name}
             onChange={(e) => setName(e.target.value)} />
      <button type="submit" data-testid="new-conversation-submit">New chat</button>
      {error && <div className="error" data-testid="new-conversation-error">{error}</div>}
    </form>
  );
}

function PresenceDot({ userId, status }) {
  return (
    <span className={`dot ${status || "offline"}`} title={`${userId}: ${status || "offline"}`}
          data-testid={`presence-${userId}`} data-status={status || "offline"} />
  );
}

export default function App({ config }) {
  const [session, setSession] = useState(null);
  const [state, dispatch] = useReducer(reducer, initialState);
  const [connection, setConnection] = useState({ state: "signed-out" });
  const [activeId, setActiveId] = useState(null);
  const [draft, setDraft] = useState("");
  const [error, setError] = useState(null);
  const api = useRef(null);
  const socket = useRef(null);
  const activeRef = useRef(null);
  const lastTypingSent = useRef(0);
  const listRef = useRef(null);
  const stateRef = useRef(state);
  activeRef.current = activeId;
  stateRef.current = state;

  const me = session?.userId;

  const remember = (messages) => {
    for (const m of messages) if (m?.messageId) socket.current?.remember(m.messageId);
  };

  const loadConversations = useCallback(async () => {
    const listing = await api.current.conversations({ limit: 200 });
    const items = listing.items || [];
    dispatch({ type: "conversations", items });
    remember(items.map((c) => c.lastMessage));
    // Resume needs a cursor even before the first live message: the newest one we know.
    const newest = items.map((c) => c.lastMessage).filter(Boolean)
      .reduce((a, b) => (isAfter(b, a) ? b : a), null);
    if (newest && socket.current && !socket.current.cursor) socket.current.cursor = newest.messageId;
    const contacts = [...new Set(items.flatMap((c) => c.participantIds || []))]
      .filter((id) => id !== session.userId);
    if (contacts.length) {
      try {
        const found = await api.current.presence(contacts);
        dispatch({ type: "presence",
                   statuses: Object.fromEntries((found.items || []).map((p) => [p.userId, p.status])) });
      } catch {
        // Presence is decoration; the socket's user_status_change events still arrive.
      }
    }
  }, [session]);

  // One socket per signed-in session; torn down (timers included) on sign-out or unmount.
  useEffect(() => {
    if (!session) return undefined;
    api.current = new Api({ apiBase: config.apiBase, presenceBase: config.presenceBase,
                            token: session.token });
    const onEvent = (event) => {
      switch (event.event) {
        case "new_message":
          dispatch({ type: "message", message: event, me: session.userId,
                     activeId: activeRef.current });
          if (event.conversationId === activeRef.current && event.senderId !== session.userId
              && document.visibilityState === "visible") {
            socket.current?.markRead(event.conversationId, event.messageId);
          }
          if (!stateRef.current.conversations[event.conversationId]) {
            loadConversations().catch(() => {});
          }
          break;
        case "typing":
          if (event.userId !== session.userId) {
            dispatch({ type: "typing", conversationId: event.conversationId, userId: event.userId,
                       until: Date.now() + TYPING_SHOW_MS });
          }
          break;
        case "message_read":
          dispatch({ type: "read", conversationId: event.conversationId, userId: event.userId,
                     messageId: event.messageId });
          if (event.userId === session.userId) {
            dispatch({ type: "opened", conversationId: event.conversationId });
          }
          break;
        case "user_status_change":
          dispatch({ type: "presence", statuses: { [event.userId]: event.status } });
          break;
        case "status_change_ack":
          dispatch({ type: "my_status", status: event.status });
          break;
        case "conversation_created":
          dispatch({ type: "conversation", conversation: event });
          break;
        case "error":
          setError(event.message);
          break;
        default:
          break; // heartbeat_ack and events this version does not know
      }
    };
    const chat = new ChatSocket({
      wsBase: config.wsBase, userId: session.userId, token: session.token, api: api.current,
      backoff: config.backoff || {}, onEvent,
      onState: (s) => {
        if (s.state === "caught_up") return setConnection((c) => ({ ...c, caughtUp: s.via }));
        setConnection(s);
        if (s.state === "connected" && !s.resumed) loadConversations().catch((e) => setError(String(e)));
      },
    });
    socket.current = chat;
    chat.start();
    const sweep = setInterval(() => dispatch({ type: "typing_expired", now: Date.now() }), 500);
    return () => {
      clearInterval(sweep);
      chat.stop();
      socket.current = null;
      dispatch({ type: "reset" });
    };
  }, [session, config, loadConversations]);

  const openConversation = useCallback(async (id) => {
    setActiveId(id);
    dispatch({ type: "opened", conversationId: id });
    let thread = stateRef.current.messages[id];
    if (!thread?.loaded) {
      const page = await api.current.history(id, { limit: 30 });
      remember(page.items || []);
      dispatch({ type: "history", conversationId: id, items: page.items || [],
                 hasMore: page.hasMore });
      thread = { items: [...(page.items || [])].filter((m) => m.messageId).reverse() };
    }
    const items = thread.items || [];
    const newest = items[items.length - 1];
    if (newest) socket.current?.markRead(id, newest.messageId);
    // Seed read ticks: who has read my newest message (REST readBy).
    const mine = [...items].reverse().find((m) => m.senderId === me);
    if (mine) {
      try {
        const detail = await api.current.message(id, mine.messageId);
        for (const mark of detail.readBy || []) {
          dispatch({ type: "read", conversationId: id, userId: mark.userId,
                     messageId: mine.messageId });
        }
      } catch {
        // Ticks then start from the next message_read.
      }
    }
  }, [me]);

  const loadOlder = useCallback(async () => {
    const thread = stateRef.current.messages[activeId];
    if (!thread?.hasMore || !thread.items.length) return;
    const box = listRef.current;
    const before = box ? box.scrollHeight - box.scrollTop : 0;
    const page = await api.current.history(activeId, { limit: 30,
                                                        before: thread.items[0].messageId });
    remember(page.items || []);
    dispatch({ type: "history", conversationId: activeId, items: page.items || [],
               hasMore: page.hasMore });
    requestAnimationFrame(() => { if (box) box.scrollTop = box.scrollHeight - before; });
  }, [activeId]);

  const thread = activeId ? state.messages[activeId] : null;
  const lastId = thread?.items[thread.items.length - 1]?.messageId;
  useEffect(() => {
    const box = listRef.current;
    if (box) box.scrollTop = box.scrollHeight;
  }, [lastId, activeId]);

  const send = async (event) => {
    event.preventDefault();
    const content = draft.trim();
    if (!content || !activeId) return;
    setDraft("");
    try {
      const message = await api.current.sendMessage(activeId, content, newClientMessageId());
      socket.current?.remember(message.messageId);
      dispatch({ type: "message", message, me, activeId });
    } catch (e) {
      setError(String(e.message || e));
      setDraft(content);
    }
  };

  const onDraft = (value) => {
    setDraft(value);
    const now = Date.now();
    if (activeId && value && now - lastTypingSent.current > TYPING_SEND_EVERY_MS) {
      if (socket.current?.typing(activeId)) lastTypingSent.current = now;
    }
  };

  const createConversation = async (participantIds, name) => {
    const conversation = await api.current.createConversation(participantIds, name);
    dispatch({ type: "conversation", conversation });
    const statuses = await api.current.presence(conversation.participantIds.filter((id) => id !== me))
      .catch(() => ({ items: [] }));
    dispatch({ type: "presence",
               statuses: Object.fromEntries((statuses.items || []).map((p) => [p.userId, p.status])) });
    await openConversation(conversation.id);
  };

  if (!session) {
    return <SignIn authMode={config.authMode} onSignIn={(s) => {
      setConnection({ state: "connecting" });
      setSession(s);
    }} />;
  }

  const conversations = Object.values(state.conversations).sort((a, b) => {
    const ta = a.lastMessage?.timestamp || a.lastActivityAt || a.createdAt || "";
    const tb = b.lastMessage?.timestamp || b.lastActivityAt || b.createdAt || "";
    return tb.localeCompare(ta);
  });
  const active = activeId ? state.conversations[activeId] : null;
  const typingHere = Object.keys((activeId && state.typing[activeId]) || {});

  return (
    <div className="app">
      <header>
        <span className="me" data-testid="me">{me}</span>
        <span className={`connection ${connection.state}`} data-testid="connection"
              data-state={connection.state} data-caught-up={connection.caughtUp || ""}>
          {connection.state === "connected" ? "Connected"
            : connection.state === "refused" ? (REFUSALS[connection.code] || `Refused (${connection.code})`)
              : connection.state === "reconnecting" ? "Reconnecting…" : "Connecting…"}
        </span>
        <span className="status-controls">
          {STATUSES.map((status) => (
            <button key={status} data-testid={`status-${status}`}
                    className={state.myStatus === status ? "selected" : ""}
                    onClick={() => socket.current?.setStatus(status)}>{status}</button>
          ))}
          <span data-testid="my-status" data-status={state.myStatus || ""}>
            {state.myStatus ? `You are ${state.myStatus}` : ""}
          </span>
        </span>
        <button className="sign-out" onClick={() => { setSession(null); setActiveId(null); }}>
          Sign out
        </button>
      </header>
      {error && <div className="error" data-testid="error" onClick={() => setError(null)}>{error}</div>}
      <main>
        <aside>
          <NewConversation onCreate={createConversation} />
          <ul className="conversations" data-testid="conversations">
            {conversations.map((c) => (
              <li key={c.id} data-testid={`conversation-${c.id}`} data-conversation-id={c.id}
                  className={c.id === activeId ? "active" : ""} onClick={() => openConversation(c.id)}>
                <div className="row">
                  <span className="dots">
                    {(c.participantIds || []).filter((id) => id !== me).slice(0, 3).map((id) => (
                      <PresenceDot key={id} userId={id} status={state.presence[id]} />
                    ))}
                  </span>
                  <span className="title">{title(c, me)}</span>
                  {c.unreadCount > 0 && (
                    <span className="badge" data-testid={`unread-${c.id}`}>{c.unreadCount}</span>
                  )}
                </div>
                <div className="last" data-testid={`last-${c.id}`}>
                  {c.lastMessage ? `${c.lastMessage.senderId === me ? "You" : c.lastMessage.senderId}: ${c.lastMessage.content}` : "No messages yet"}
                </div>
              </li>
            ))}
          </ul>
        </aside>
        <section className="thread">
          {active ? (
            <>
              <h2 data-testid="thread-title">{title(active, me)}</h2>
              <div className="messages" ref={listRef} data-testid="messages"
                   onScroll={(e) => { if (e.currentTarget.scrollTop === 0) loadOlder(); }}>
                {thread?.hasMore && (
                  <button className="older" data-testid="load-older" onClick={loadOlder}>
                    Load older messages
                  </button>
                )}
                {(thread?.items || []).map((m) => {
                  const mine = m.senderId === me;
                  const read = mine && isReadByOthers(state, m);
                  return (
                    <div key={m.messageId} className={`message ${mine ? "mine" : ""}`}
                         data-testid="message" data-message-id={m.messageId}
                         data-sender={m.senderId} data-read={read ? "true" : "false"}>
                      {!mine && <div className="sender">{m.senderId}</div>}
                      <div className="content">{m.content}</div>
                      <div className="meta">
                        {formatTime(m.timestamp)}
                        {mine && <span className={`ticks ${read ? "read" : ""}`}
                                       title={read ? "read" : "sent"}>{read ? "✓✓" : "✓"}</span>}
                      </div>
                    </div>
                  );
                })}
              </div>
              <div className="typing" data-testid="typing-indicator">
                {typingHere.length > 0 && `${typingHere.join(", ")} ${typingHere.length > 1 ? "are" : "is"} typing…`}
              </div>
              <form className="composer" onSubmit={send}>
                <input data-testid="composer-input" placeholder="Type a message…" value={draft}
                       onChange={(e) => onDraft(e.target.value)} />
                <button type="submit" data-testid="composer-send">Send</button>
              </form>
            </>
          ) : (
            <div className="empty">Pick a conversation or start a new one.</div>
          )}
        </section>
      </main>
    </div>
  );
}
