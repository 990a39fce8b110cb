// The chat state as one reducer: every REST result and socket event is an action, so the
// order they arrive in cannot leave two copies of the truth.

export const initialState = {
  conversations: {}, // id -> {id, participantIds, name, lastMessage, unreadCount, ...}
  messages: {}, // conversationId -> {items: [oldest..newest], hasMore, loaded}
  typing: {}, // conversationId -> {userId: until (ms)}
  presence: {}, // userId -> status
  reads: {}, // conversationId -> {userId: messageId} (how far each member has read)
  myStatus: null,
};

// Position of a message for "read up to" comparisons: seq when the server sends it, else the
// timestamp (ISO-8601 UTC, same precision, so strings compare in time order).
function position(message) {
  return message.seq != null ? [0, message.seq] : [1, message.timestamp];
}

export function isAfter(a, b) {
  if (!b) return true;
  const [ka, va] = position(a);
  const [kb, vb] = position(b);
  if (ka !== kb) return a.timestamp > b.timestamp;
  return va > vb;
}

function summarise(items) {
  return Object.fromEntries(items.map((c) => [c.id, c]));
}

function addMessage(state, message, me, activeId) {
  const id = message.conversationId;
  const conversation = state.conversations[id];
  const thread = state.messages[id];
  const known = thread?.items.some((m) => m.messageId === message.messageId)
    || conversation?.lastMessage?.messageId === message.messageId;
  if (known) return state;
  const messages = thread
    ? { ...state.messages, [id]: { ...thread, items: insertInOrder(thread.items, message) } }
    : state.messages;
  if (!conversation) return { ...state, messages };
  const newer = isAfter(message, conversation.lastMessage);
  const unread = message.senderId !== me && id !== activeId && newer
    ? (conversation.unreadCount || 0) + 1
    : conversation.unreadCount || 0;
  const typing = state.typing[id] ? { ...state.typing[id] } : null;
  if (typing) delete typing[message.senderId];
  return {
    ...state,
    messages,
    typing: typing ? { ...state.typing, [id]: typing } : state.typing,
    conversations: {
      ...state.conversations,
      [id]: {
        ...conversation,
        lastMessage: newer ? message : conversation.lastMessage,
        unreadCount: unread,
      },
    },
  };
}

function insertInOrder(items, message) {
  const result = [...items];
  let index = result.length;
  while (index > 0 && isAfter(result[index - 1], message)) index -= 1;
  result.splice(index, 0, message);
  return result;
}

export function reducer(state, action) {
  switch (action.type) {
    case "reset":
      return initialState;
    case "conversations": {
      const merged = { ...state.conversations };
      for (const [id, summary] of Object.entries(summarise(action.items))) {
        merged[id] = { ...merged[id], ...summary };
      }
      return { ...state, conversations: merged };
    }
    case "conversation": {
      const current = state.conversations[action.conversation.id];
      return {
        ...state,
        conversations: {
          ...state.conversations,
          [action.conversation.id]: { unreadCount: 0, lastMessage: null, ...current,
                                      ...action.conversation },
        },
      };
    }
    case "history": {
      const thread = state.messages[action.conversationId] || { items: [], hasMore: true };
      const ids = new Set(thread.items.map((m) => m.messageId));
      const older = action.items
        .filter((m) => m.messageId && !m.tombstone && !ids.has(m.messageId))
        .reverse();
      return {
        ...state,
        messages: {
          ...state.messages,
          [action.conversationId]: {
            items: [...older, ...thread.items], hasMore: action.hasMore, loaded: true,
          },
        },
      };
    }
    case "message":
      return addMessage(state, action.message, action.me, action.activeId);
    case "opened": {
      const conversation = state.conversations[action.conversationId];
      if (!conversation) return state;
      return {
        ...state,
        conversations: { ...state.conversations,
                         [action.conversationId]: { ...conversation, unreadCount: 0 } },
      };
    }
    case "typing": {
      const current = state.typing[action.conversationId] || {};
      return {
        ...state,
        typing: { ...state.typing,
                  [action.conversationId]: { ...current, [action.userId]: action.until } },
      };
    }
    case "typing_expired": {
      const typing = {};
      for (const [id, users] of Object.entries(state.typing)) {
        const alive = Object.fromEntries(Object.entries(users).filter(([, t]) => t > action.now));
        if (Object.keys(alive).length) typing[id] = alive;
      }
      return { ...state, typing };
    }
    case "read": {
      const current = state.reads[action.conversationId] || {};
      return {
        ...state,
        reads: { ...state.reads,
                 [action.conversationId]: { ...current, [action.userId]: action.messageId } },
      };
    }
    case "presence":
      return { ...state, presence: { ...state.presence, ...action.statuses } };
    case "my_status":
      return { ...state, myStatus: action.status };
    default:
      return state;
  }
}

// Whether someone other than the sender has read `message` (a read mark at it or later).
export function isReadByOthers(state, message) {
  const marks = state.reads[message.conversationId] || {};
  const thread = state.messages[message.conversationId]?.items || [];
  return Object.entries(marks).some(([userId, messageId]) => {
    if (userId === message.senderId) return false;
    if (messageId === message.messageId) return true;
    const marked = thread.find((m) => m.messageId === messageId);
    return marked ? !isAfter(message, marked) : false;
  });
}
