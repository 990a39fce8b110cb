import { describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.js";

const served = (body) => async () => ({ ok: true, json: async () => body });
const missing = async () => { throw new TypeError("fetch failed"); };
const hostile = "https://chat.example/?api=https://elsewhere.example&ws=wss://elsewhere.example"
  + "&presence=https://elsewhere.example";

describe("config", () => {
  it("takes its URLs from the served config.json, never from the page's query string", async () => {
    const config = await loadConfig(new URL(hostile), served({
      wsBase: "wss://chat.example/ws", apiBase: "api/messaging", presenceBase: "api/presence",
    }));
    expect(config.apiBase).toBe("https://chat.example/api/messaging");
    expect(config.presenceBase).toBe("https://chat.example/api/presence");
    expect(config.wsBase).toBe("wss://chat.example/ws");
    expect(JSON.stringify(config)).not.toContain("elsewhere");
  });

  it("falls back to this host's make-run ports, still ignoring the query string", async () => {
    const config = await loadConfig(new URL(hostile), missing);
    expect(config.apiBase).toBe("https://chat.example:8001");
    expect(config.presenceBase).toBe("https://chat.example:8002");
    expect(config.wsBase).toBe("wss://chat.example:8000");
  });
});
