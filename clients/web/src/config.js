// Where the services are: /config.json from the server that serves this bundle
// (scripts/serve_web.py writes it for the stack it fronts), else defaults for `make run` on
// this host. Never from the page's address: a link with `?api=https://elsewhere` would send
// the user's ID token to whoever wrote it.

export async function loadConfig(here = window.location, fetchConfig = fetch) {
  const config = {
    wsBase: `${here.protocol === "https:" ? "wss" : "ws"}://${here.hostname}:8000`,
    apiBase: `${here.protocol}//${here.hostname}:8001`,
    presenceBase: `${here.protocol}//${here.hostname}:8002`,
    authMode: "dev",
  };
  try {
    const response = await fetchConfig("config.json", { cache: "no-store" });
    if (response.ok) Object.assign(config, await response.json());
  } catch {
    // No config.json (e.g. `vite dev`): the defaults stand.
  }
  // Relative bases (the serving proxy's /api/...) are resolved against this page.
  for (const key of ["apiBase", "presenceBase"]) {
    config[key] = new URL(config[key], here.href).href.replace(/\/$/, "");
  }
  if (config.wsBase.startsWith("/")) {
    config.wsBase = `${here.protocol === "https:" ? "wss" : "ws"}://${here.host}${config.wsBase}`;
  }
  return config;
}
