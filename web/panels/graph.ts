/**
 * The block graph as a live SVG: BlockBackends (the drives) on top, then their nodes layer by
 * layer, each box with its node-name and driver; edges labelled with the child role (file,
 * backing, ...). Backends show their I/O counters (query-blockstats), nodes the requests that
 * reached them (the worker's per-node counters: QEMU accounts only at backends). The picture is
 * polled once a second and redrawn whenever the graph or a counter changed; the running jobs
 * (query-jobs) are listed under it.
 */
import type { NodeCounters } from '../../src/client/index.ts';
import type { App } from '../lib/app.ts';
import { byId, formatBytes } from '../lib/dom.ts';

interface XdbgGraph {
  nodes: { id: number; type: 'block-backend' | 'block-driver'; name: string }[];
  edges: { parent: number; child: number; name: string }[];
}

interface JobInfo {
  id: string;
  type: string;
  status: string;
  'current-progress': number;
  'total-progress': number;
}

interface Stats {
  rd_bytes: number;
  wr_bytes: number;
  rd_operations: number;
  wr_operations: number;
  flush_operations: number;
}

const SVG = 'http://www.w3.org/2000/svg';
const BOX = { w: 180, h: 62, gapX: 24, gapY: 56 };
const POLL_MS = 1000;

export class GraphPanel {
  private readonly svg = byId('graph-svg') as unknown as SVGSVGElement;
  private readonly jobs = byId('graph-jobs');
  private last = '';

  constructor(private readonly app: App) {
    app.onChange(() => void this.update());
    setInterval(() => void this.update(), POLL_MS);
  }

  async update(): Promise<void> {
    const client = this.app.client;
    const [graph, named, stats, perNode, jobs] = await Promise.all([
      client.execute<XdbgGraph>('x-debug-query-block-graph'),
      client.execute<{ 'node-name': string; drv: string }[]>('query-named-block-nodes'),
      client.execute<{ device: string; stats: Stats }[]>('query-blockstats'),
      client.nodeCounters(),
      client.execute<JobInfo[]>('query-jobs'),
    ]).catch(() => [undefined, [], [], {}, []] as const);
    if (!graph) return;
    const drivers = new Map(named.map((n) => [n['node-name'], n.drv]));
    const counters = new Map(stats.map((s) => [s.device, s.stats]));
    const key = JSON.stringify([graph, [...drivers], [...counters], perNode, jobs]);
    if (key === this.last) return;
    this.last = key;
    this.jobs.textContent = jobs.length ? `Jobs: ${jobs.map(describeJob).join('; ')}` : '';
    this.draw(graph, drivers, counters, perNode);
  }

  private draw(
    graph: XdbgGraph,
    drivers: Map<string, string>,
    counters: Map<string, Stats>,
    perNode: Readonly<Record<string, NodeCounters>>,
  ): void {
    const layer = layers(graph);
    const rows = new Map<number, number[]>();
    for (const node of graph.nodes)
      rows.set(layer.get(node.id)!, [...(rows.get(layer.get(node.id)!) ?? []), node.id]);
    const pos = new Map<number, { x: number; y: number }>();
    let width = 0;
    for (const [depth, ids] of rows) {
      ids.forEach((id, i) =>
        pos.set(id, { x: 10 + i * (BOX.w + BOX.gapX), y: 10 + depth * (BOX.h + BOX.gapY) }),
      );
      width = Math.max(width, 10 + ids.length * (BOX.w + BOX.gapX));
    }
    const height = 10 + rows.size * (BOX.h + BOX.gapY);
    const size = { width: Math.max(width, 200), height: Math.max(height, 60) };
    this.svg.setAttribute('viewBox', `0 0 ${size.width} ${size.height}`);
    this.svg.setAttribute('width', String(size.width));
    this.svg.setAttribute('height', String(size.height));
    const parts: SVGElement[] = [];
    for (const edge of graph.edges) {
      const a = pos.get(edge.parent)!;
      const b = pos.get(edge.child)!;
      const [x1, y1, x2, y2] = [a.x + BOX.w / 2, a.y + BOX.h, b.x + BOX.w / 2, b.y];
      parts.push(el('line', { x1, y1, x2, y2, class: 'edge', 'marker-end': 'url(#arrow)' }));
      parts.push(el('text', { x: (x1 + x2) / 2 + 4, y: (y1 + y2) / 2, class: 'role' }, edge.name));
    }
    for (const node of graph.nodes) {
      const { x, y } = pos.get(node.id)!;
      const backend = node.type === 'block-backend';
      const g = el('g', { class: backend ? 'backend' : 'node', 'data-name': node.name });
      g.append(el('rect', { x, y, width: BOX.w, height: BOX.h, rx: 6 }));
      g.append(el('text', { x: x + 8, y: y + 18, class: 'name' }, node.name));
      const stats = counters.get(node.name);
      const detail = backend
        ? stats
          ? `rd ${formatBytes(stats.rd_bytes)} wr ${formatBytes(stats.wr_bytes)}`
          : 'drive'
        : (drivers.get(node.name) ?? '');
      g.append(el('text', { x: x + 8, y: y + 36, class: 'detail' }, detail));
      const io = perNode[node.name];
      if (io) {
        const text = `rd ${formatBytes(io.readBytes)} wr ${formatBytes(io.writeBytes)}`;
        g.append(el('text', { x: x + 8, y: y + 53, class: 'counters' }, text));
        g.append(el('title', {}, `${node.name}: ${io.readOps} reads, ${io.writeOps} writes`));
      }
      if (stats) {
        const ops = `${stats.rd_operations} reads, ${stats.wr_operations} writes, ${stats.flush_operations} flushes`;
        g.append(el('title', {}, `${node.name}: ${ops}`));
      }
      parts.push(g);
    }
    const defs = el('defs', {});
    const marker = el('marker', {
      id: 'arrow',
      viewBox: '0 0 10 10',
      refX: 10,
      refY: 5,
      markerWidth: 8,
      markerHeight: 8,
      orient: 'auto',
    });
    marker.append(el('path', { d: 'M0,0 L10,5 L0,10 z' }));
    defs.append(marker);
    this.svg.replaceChildren(defs, ...parts);
  }
}

function describeJob(job: JobInfo): string {
  const pct = Math.floor((job['current-progress'] * 100) / Math.max(job['total-progress'], 1));
  return `${job.id} (${job.type}, ${job.status}, ${pct} %)`;
}

/** Each node's depth: the longest path to it from a node nothing points at. */
function layers(graph: XdbgGraph): Map<number, number> {
  const depth = new Map<number, number>(graph.nodes.map((n) => [n.id, 0]));
  // Longest-path relaxation; a graph of n nodes settles within n rounds (it has no cycles).
  for (let round = 0; round < graph.nodes.length; round++) {
    let moved = false;
    for (const e of graph.edges) {
      if (depth.get(e.child)! < depth.get(e.parent)! + 1) {
        depth.set(e.child, depth.get(e.parent)! + 1);
        moved = true;
      }
    }
    if (!moved) break;
  }
  return depth;
}

function el(tag: string, attrs: Record<string, string | number>, text?: string): SVGElement {
  const node = document.createElementNS(SVG, tag) as SVGElement;
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}
