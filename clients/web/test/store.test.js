import { describe, expect, it } from "vitest";
import { backoffDelay, socketUrl } from "../src/chatSocket.js";
import { initialState, isReadByOthers, reducer } from "../src/store.js";

const ME = "+84911111111";
const BOB = "+84922222222";

function message(id, seconds, sender = BOB, extra = {}) {
  return {
    messageId: id, conversationId: "c1", senderId: sender, content: id, messageType: "text",
    timestamp: `2025-01-31T09:30:${String(seconds).padStart(2, "0")}.000+00:00`, ...extra,
  };
}

function withConversation() {
  return reducer(initialState, {
    type: "conversations",
    items: [{ id: "c1", participantIds: [ME, BOB], name: null, unreadCount: 0, lastMessage: null }],
  });
}

describe("store", () => {
  it("counts a message once, however often it arrives", () => {
    let state = withConversation();
    state = reducer(state, { type: "history", conversationId: "c1", items: [], hasMore: false });
    for (let i = 0; i < 3; i += 1) {
      state = reducer(state, { type: "message", message: message("m1", 1), me: ME, activeId: null });
    }
    expect(state.messages.c1.items.map((m) => m.messageId)).toEqual(["m1"]);
    expect(state.conversations.c1.unreadCount).toBe(1);
  });

  it("keeps history in time order when catch-up delivers older messages late", () => {
    let state = withConversation();
    state = reducer(state, { type: "history", conversationId: "c1", items: [message("m3", 3)],
                             hasMore: false });
    state = reducer(state, { type: "message", message: message("m2", 2), me: ME, activeId: "c1" });
    state = reducer(state, { type: "message", message: message("m4", 4), me: ME, activeId: "c1" });
    expect(state.messages.c1.items.map((m) => m.messageId)).toEqual(["m2", "m3", "m4"]);
    expect(state.conversations.c1.lastMessage.messageId).toBe("m4");
    expect(state.conversations.c1.unreadCount).toBe(0);
  });

  it("orders by seq when the server sends it", () => {
    let state = withConversation();
    state = reducer(state, { type: "history", conversationId: "c1", items: [], hasMore: false });
    state = reducer(state, { type: "message", message: message("b", 5, BOB, { seq: 2 }), me: ME });
    state = reducer(state, { type: "message", message: message("a", 5, BOB, { seq: 1 }), me: ME });
    expect(state.messages.c1.items.map((m) => m.messageId)).toEqual(["a", "b"]);
  });

  it("ticks my messages up to the one another member read", () => {
    let state = withConversation();
    state = reducer(state, { type: "history", conversationId: "c1", hasMore: false,
                             items: [message("m2", 2, ME), message("m1", 1, ME)] });
    state = reducer(state, { type: "read", conversationId: "c1", userId: BOB, messageId: "m1" });
    const [first, second] = state.messages.c1.items;
    expect(isReadByOthers(state, first)).toBe(true);
    expect(isReadByOthers(state, second)).toBe(false);
    state = reducer(state, { type: "read", conversationId: "c1", userId: ME, messageId: "m2" });
    expect(isReadByOthers(state, second)).toBe(false);
  });
});

describe("socket helpers", () => {
  it("encodes the plus sign and the resume cursor", () => {
    expect(socketUrl("ws://h:1/", "+84911111111", "+84911111111", "abc")).toBe(
      "ws://h:1/ws/%2B84911111111?token=%2B84911111111&since=abc",
    );
  });

  it("backs off exponentially up to the cap", () => {
    for (let attempt = 0; attempt < 10; attempt += 1) {
      const delay = backoffDelay(attempt, { initial: 100, maximum: 1000 });
      const ceiling = Math.min(1000, 100 * 2 ** attempt);
      expect(delay).toBeGreaterThanOrEqual(ceiling / 2);
      expect(delay).toBeLessThanOrEqual(ceiling);
    }
  });
});

describe("history", () => {
  it("skips tombstones (a seq whose send died)", () => {
    let state = withConversation();
    state = reducer(state, { type: "history", conversationId: "c1", hasMore: false, items: [
      message("m3", 3, BOB, { seq: 3 }),
      { conversationId: "c1", seq: 2, tombstone: true, timestamp: "2025-01-31T09:30:02.000+00:00" },
      message("m1", 1, BOB, { seq: 1 }),
    ] });
    expect(state.messages.c1.items.map((m) => m.messageId)).toEqual(["m1", "m3"]);
  });
});
