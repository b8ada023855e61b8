/** The web UI's entry: the server serves index.html, which loads this bundle. */
import "../dag/dag.css";
import "./ui.css";
import { render } from "preact";
import { App } from "./app";

const root = document.getElementById("app");
if (root) {
  root.replaceChildren();
  render(<App />, root);
}
