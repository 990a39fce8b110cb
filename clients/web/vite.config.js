import { defineConfig } from "vite";

// No React plugin: esbuild compiles JSX with the automatic runtime, which is all this app
// needs (no fast refresh), and keeps the dependency tree to what installs here.
export default defineConfig({
  base: "./",
  esbuild: { jsx: "automatic" },
  build: { outDir: "dist", emptyOutDir: true },
  test: { environment: "node" },
});
