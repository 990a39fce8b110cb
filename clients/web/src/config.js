// Where the services are, decided at run time: /config.json from the server that serves this
// bundle (scripts/serve_web.py writes it for the stack it fronts), then `?ws=&api=&presence=`
// query parameters, then defaults for `make run` on this host.

export async function loadConfig() {
  const here = window.location;
  const config = {
    wsBase: `${here.protocol === "https:" ? "wss" : "ws"}://${here.hostname}:8000`,
    apiBase: `${here.protocol}//${here.hostname}:8001`,
    presenceBase: `${here.protocol}//${here.hostname}:8002`,
    authMode: "dev",
  };
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    if (response.ok) Object.assign(config, await response.json());
  } catch {
    // No config.json (e.g. `vite dev`): the defaults stand.
  }
  const params = new URLSearchParams(here.search);
  for (const [param, key] of [["ws", "wsBase"], ["api", "apiBase"], ["presence", "presenceBase"]]) {
    if (params.get(param)) config[key] = params.get(param);
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
