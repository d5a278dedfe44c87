// The mesh as a picture: this node in the middle, each peer around it, a
// link to each coloured by the peer's state (the classes of `stateOf`) and
// labelled with its RTT. SVG built with DOM calls: no markup, no inline style.

import { stateOf } from "./views.js";

/** @typedef {import("./api-types.js").MeshNode} MeshNode */

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 320;
/** Height with one peer (side by side) and with more (around this node). */
const LOW = 64;
const HIGH = 180;
const RADIUS = 62;

/** @param {MeshNode[]} views this node's view of every node */
export function drawTopology(views) {
  const here = views.find((node) => node.thisNode) ?? views[0];
  const peers = views.filter((node) => node !== here);
  const height = peers.length > 1 ? HIGH : LOW;
  const svg = svgElement("svg", { viewBox: `0 0 ${WIDTH} ${height}`, role: "img" });
  // One peer: the two side by side; more: around this node.
  const center = { x: peers.length === 1 ? 90 : WIDTH / 2, y: peers.length > 1 ? HIGH / 2 : 24 };
  const rx = peers.length === 1 ? 140 : 1.6 * RADIUS;
  svg.setAttribute("aria-label", `${here?.name ?? "this node"} and ${peers.length} peer(s)`);
  const placed = peers.map((node, index) => {
    // The first peer to the right, the others around the circle.
    const angle = (2 * Math.PI * index) / peers.length;
    const ry = peers.length > 1 ? RADIUS : 0;
    return { node, x: center.x + rx * Math.cos(angle), y: center.y + ry * Math.sin(angle) };
  });
  for (const { node, x, y } of placed) {
    const [state, css] = stateOf(node);
    const link = svgElement("line", { x1: center.x, y1: center.y, x2: x, y2: y, class: `link ${css}` });
    link.append(title(`${here?.name} – ${node.name}: ${state}`));
    svg.append(link);
    const rtt = node.online && node.rttMs != null ? `${node.rttMs.toFixed(1)} ms` : state.split(" ")[0];
    svg.append(text(rtt, (center.x + x) / 2, (center.y + y) / 2 - 5, `rtt ${css}`));
  }
  for (const { node, x, y } of placed) svg.append(...nodeMark(node, x, y, stateOf(node)[1]));
  if (here) svg.append(...nodeMark(here, center.x, center.y, "here"));
  document.getElementById("topology").replaceChildren(svg);
}

function nodeMark(node, x, y, css) {
  const dot = svgElement("circle", { cx: x, cy: y, r: 9, class: `dot ${css}` });
  dot.append(title(`${node.name} (${node.role})`));
  return [dot, text(node.name, x, y + 22, "name")];
}

function text(words, x, y, css) {
  const element = svgElement("text", { x, y, class: css, "text-anchor": "middle" });
  element.textContent = words;
  return element;
}

function title(words) {
  const element = svgElement("title", {});
  element.textContent = words;
  return element;
}

function svgElement(name, attributes) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  return element;
}
