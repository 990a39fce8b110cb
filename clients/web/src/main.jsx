import { createRoot } from "react-dom/client";
import App from "./App.jsx";
import { loadConfig } from "./config.js";
import "./styles.css";

loadConfig().then((config) => {
  createRoot(document.getElementById("root")).render(<App config={config} />);
});
