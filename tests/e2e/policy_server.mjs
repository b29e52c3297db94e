// The MCP server of the policy rounds, built on either TypeScript SDK (E2E_SDK):
//   v1  `@modelcontextprotocol/sdk` 1.32.2: McpServer over StreamableHTTPServerTransport,
//       stateful sessions, revision 2025-11-25 and earlier only;
//   v2  `@modelcontextprotocol/server` 2.4.0: createMcpHandler, revision 2026-07-28 (no
//       sessions, Mcp-Method / Mcp-Name headers) with its stateless fallback for 2025-era clients.
// It trusts the edge in front of it (which runs with --strip-authorization) and checks nothing.
//
// Tools, the same on both: `read_notes` (what the policy leaves to the base scope) and
// `admin_reset` (what the policy keeps for mcp:admin). Each answers with the X-Auth-Scopes the
// edge passed on, so a client sees which token the call went out with. `read_notes` takes a
// `topic` that its schema mirrors into an `Mcp-Param-Topic` header (`x-mcp-header`): clients of
// 2026-07-28 send it, and the v2 server checks it against the body.
//
// Side door, never through the edge: GET /_seen answers one entry per request that reached /mcp
// (HTTP method, the JSON-RPC methods and tool names in its body, MCP-Protocol-Version, Mcp-Method,
// Mcp-Name, Mcp-Param-Topic, X-Auth-Scopes), so the checks see what the policy let through. Prints
// `MCP_READY port=PORT` once it listens; exits on SIGTERM or SIGINT.

import http from 'node:http';
import { randomUUID } from 'node:crypto';

import { z } from 'zod';

const SDK = process.env.E2E_SDK || 'v1';
if (!['v1', 'v2'].includes(SDK)) {
  console.error(`E2E_SDK must be v1 or v2, got ${SDK}`);
  process.exit(2);
}

const seen = [];
const NOTES = 'the notes: nothing secret here';

/** What a tool says back: its own text, and the scopes of the token the edge let through. */
const answer = (text, scopes) => ({
  content: [{ type: 'text', text: `${text} (token scopes: ${scopes || 'none'})` }],
  structuredContent: { text, scopes: scopes ?? null },
});

/** Registers the two tools on an McpServer of either SDK; `scopesOf` reads X-Auth-Scopes from a handler's context. */
function addTools(server, scopesOf) {
  server.registerTool(
    'read_notes',
    { description: 'Reads the shared notes (base scope)', inputSchema: { topic: z.string().meta({ 'x-mcp-header': 'Topic' }) } },
    async ({ topic }, ctx) => answer(`${NOTES} on ${topic}`, scopesOf(ctx)),
  );
  server.registerTool('admin_reset', { description: 'Resets the notes (needs mcp:admin)' }, async (ctx) =>
    answer('reset done', scopesOf(ctx)));
  return server;
}

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks);
}

/** The JSON-RPC methods and tool names of a body, for the /_seen log. */
function operations(body) {
  try {
    const parsed = JSON.parse(body.toString('utf8'));
    return (Array.isArray(parsed) ? parsed : [parsed]).map((m) => ({ method: m?.method ?? null, name: m?.params?.name ?? null }));
  } catch {
    return [];
  }
}

function send(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
}

// --- v1: sessions, one transport each ------------------------------------------------------------
async function v1() {
  const { McpServer } = await import('@modelcontextprotocol/sdk/server/mcp.js');
  const { StreamableHTTPServerTransport } = await import('@modelcontextprotocol/sdk/server/streamableHttp.js');
  const { isInitializeRequest } = await import('@modelcontextprotocol/sdk/types.js');
  const transports = new Map();
  const scopesOf = (extra) => extra?.requestInfo?.headers?.['x-auth-scopes'];
  const serve = async (req, res, body) => {
    const sid = req.headers['mcp-session-id'];
    const json = body.length ? JSON.parse(body.toString('utf8')) : undefined;
    let transport = sid ? transports.get(sid) : undefined;
    if (sid && !transport) return send(res, 404, { jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null });
    if (!transport) {
      if (req.method !== 'POST' || !isInitializeRequest(json)) {
        return send(res, 400, { jsonrpc: '2.0', error: { code: -32000, message: 'Bad Request: No valid session ID provided' }, id: null });
      }
      transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => transports.set(id, transport),
        onsessionclosed: (id) => transports.delete(id),
      });
      transport.onclose = () => transport.sessionId && transports.delete(transport.sessionId);
      await addTools(new McpServer({ name: 'e2e-policy-ts-v1', version: '1.0.0' }), scopesOf).connect(transport);
    }
    await transport.handleRequest(req, res, json);
  };
  return { serve, close: async () => Promise.all([...transports.values()].map((t) => t.close().catch(() => {}))) };
}

// --- v2: a web-standard handler, adapted to node:http here -----------------------------------------
async function v2() {
  const { McpServer, createMcpHandler } = await import('@modelcontextprotocol/server');
  const scopesOf = (ctx) => ctx?.http?.req?.headers?.get?.('x-auth-scopes') ?? ctx?.requestInfo?.headers?.['x-auth-scopes'];
  const handler = createMcpHandler(() => addTools(new McpServer({ name: 'e2e-policy-ts-v2', version: '1.0.0' }), scopesOf));
  const serve = async (req, res, body) => {
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) headers.set(k, Array.isArray(v) ? v.join(', ') : v);
    const abort = new AbortController();
    res.on('close', () => abort.abort());
    const request = new Request(`http://${req.headers.host ?? '127.0.0.1'}${req.url}`, {
      method: req.method,
      headers,
      body: ['GET', 'HEAD'].includes(req.method) ? undefined : body,
      signal: abort.signal,
    });
    const response = await handler.fetch(request);
    res.writeHead(response.status, Object.fromEntries(response.headers));
    if (response.body) {
      for await (const chunk of response.body) res.write(chunk);
    }
    res.end();
  };
  return { serve, close: () => handler.close() };
}

const mcp = SDK === 'v1' ? await v1() : await v2();

const httpServer = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://upstream');
  if (url.pathname === '/_seen' && req.method === 'GET') return send(res, 200, seen);
  if (url.pathname !== '/mcp') return send(res, 404, { error: 'not_found', path: url.pathname });
  try {
    const body = await readBody(req);
    seen.push({
      http: req.method,
      ops: operations(body),
      version: req.headers['mcp-protocol-version'] ?? null,
      mcp_method: req.headers['mcp-method'] ?? null,
      mcp_name: req.headers['mcp-name'] ?? null,
      mcp_param_topic: req.headers['mcp-param-topic'] ?? null,
      scopes: req.headers['x-auth-scopes'] ?? null,
    });
    await mcp.serve(req, res, body);
  } catch (e) {
    console.error('policy_server.mjs:', e);
    if (!res.headersSent) send(res, 500, { jsonrpc: '2.0', error: { code: -32603, message: String(e) }, id: null });
    else res.end();
  }
});

await new Promise((resolve, reject) => {
  httpServer.once('error', reject);
  httpServer.listen(0, '127.0.0.1', resolve);
});

const stop = (signal) => {
  process.stderr.write(`policy_server.mjs: ${signal}, stopping\n`);
  mcp.close().catch(() => {});
  httpServer.close(() => process.exit(0));
  httpServer.closeAllConnections?.();
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));

process.stdout.write(`MCP_READY port=${httpServer.address().port} sdk=${SDK}\n`);
