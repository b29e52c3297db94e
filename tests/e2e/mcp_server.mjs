// A real MCP server (the TypeScript SDK's McpServer over StreamableHTTPServerTransport, stateful
// sessions, SSE responses) on 127.0.0.1 with an ephemeral port, at path /mcp: the upstream the
// edge's gate forwards to in the gate, jwt and introspect rounds.
//
// With E2E_MCP_AUTH=verify (the default; the gate round, where the edge runs with
// `--token-check presence`) this server validates the bearer token itself, as the README says it
// must: a JWT access token from the provider, checked against the provider's JWKS (found through
// its metadata) with `iss` = ISSUER and `aud` = RESOURCE_URL. A request without a valid token gets
// this server's own 401 (which a presence edge passes through).
//
// With E2E_MCP_AUTH=edge (the jwt and introspect rounds) it trusts the edge, which verified the
// token: nothing is checked here, and what the edge passed on is reported instead (the
// Authorization header, or X-Auth-Subject and X-Auth-Scopes under `--strip-authorization`, and
// X-Auth-Dpop-Jkt and any DPoP header in the DPoP round).
//
// Tools:
//   whoami     what the server saw: the verified token's claims, the first characters of the
//              token, the X-Auth-* and X-Forwarded-* headers and the session id
//   countdown  sends `steps` logging notifications (and progress notifications when the client
//              asked for progress), `gap_ms` apart, on the POST's SSE stream, then its result
//   broadcast  sends a logging notification on the standalone GET SSE stream (not tied to the
//              request), then its result
//
// Side door, never through the edge: GET /_seen answers the log of every request that reached
// /mcp (method, path, query, selected headers, token verdict), so the checks can see what the
// edge forwarded. It prints `MCP_READY port=PORT` once it listens; exits on SIGTERM or SIGINT.
//
// Env: ISSUER, RESOURCE_URL, EDGE_URL (for the resource_metadata of its own 401).

import http from 'node:http';
import { randomUUID } from 'node:crypto';

import { createRemoteJWKSet, jwtVerify } from 'jose';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';

const ISSUER = process.env.ISSUER;
const RESOURCE = process.env.RESOURCE_URL;
const EDGE = process.env.EDGE_URL;
const AUTH = process.env.E2E_MCP_AUTH || 'verify';
if (!['verify', 'edge'].includes(AUTH)) {
  console.error(`E2E_MCP_AUTH must be verify or edge, got ${AUTH}`);
  process.exit(2);
}
if (!ISSUER || !RESOURCE || !EDGE) {
  console.error('ISSUER, RESOURCE_URL and EDGE_URL must be set (run.sh sets them)');
  process.exit(2);
}

// The provider's JWKS, as a resource server finds it: through the issuer's metadata.
const meta = AUTH === 'edge' ? undefined : await fetch(`${ISSUER}/.well-known/openid-configuration`, { signal: AbortSignal.timeout(5000) }).then((r) => r.json());
const jwks = meta && createRemoteJWKSet(new URL(meta.jwks_uri), { timeoutDuration: 5000 });
const PRM_URL = `${new URL(RESOURCE).origin}/.well-known/oauth-protected-resource${new URL(RESOURCE).pathname}`;

const seen = [];
const SEEN_HEADERS = [
  'authorization', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'host', 'mcp-session-id',
  'mcp-protocol-version', 'accept', 'content-type', 'connection', 'keep-alive', 'te', 'upgrade',
  'proxy-authorization', 'x-hop', 'last-event-id', 'origin', 'user-agent', 'x-auth-subject', 'x-auth-scopes',
  'dpop', 'x-auth-dpop-jkt',
];

async function verify(header) {
  const m = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/.exec(header ?? '');
  if (!m) return { ok: false, reason: header ? 'not a bearer token' : 'no Authorization header' };
  try {
    const { payload, protectedHeader } = await jwtVerify(m[1], jwks, {
      issuer: ISSUER,
      audience: RESOURCE,
      algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA'],
      typ: 'at+jwt',
    });
    return { ok: true, token: m[1], payload, alg: protectedHeader.alg };
  } catch (e) {
    return { ok: false, reason: `${e.code ?? e.name}: ${e.message}` };
  }
}

function headerSubset(req) {
  const out = {};
  for (const name of SEEN_HEADERS) {
    if (req.headers[name] !== undefined) out[name] = name === 'authorization' ? `${req.headers[name].slice(0, 19)}…` : req.headers[name];
  }
  return out;
}

function newServer() {
  const server = new McpServer({ name: 'e2e-upstream', version: '1.0.0' }, { capabilities: { logging: {} } });
  server.registerTool(
    'whoami',
    { description: 'What the MCP server saw of this request' },
    async (extra) => {
      const h = extra.requestInfo?.headers ?? {};
      const auth = extra.authInfo;
      const report = {
        token_verified: Boolean(auth?.extra?.verified),
        token_prefix: auth?.token.slice(0, 12),
        client_id: auth?.clientId,
        scopes: auth?.scopes,
        aud: auth?.extra?.aud,
        iss: auth?.extra?.iss,
        alg: auth?.extra?.alg,
        authorization: h.authorization === undefined ? null : `${String(h.authorization).slice(0, 19)}…`,
        x_auth_subject: h['x-auth-subject'] ?? null,
        x_auth_scopes: h['x-auth-scopes'] ?? null,
        x_auth_dpop_jkt: h['x-auth-dpop-jkt'] ?? null,
        dpop: h.dpop === undefined ? null : 'present',
        x_forwarded_for: h['x-forwarded-for'],
        x_forwarded_proto: h['x-forwarded-proto'],
        x_forwarded_host: h['x-forwarded-host'],
        session_id: extra.sessionId,
      };
      return { content: [{ type: 'text', text: JSON.stringify(report) }], structuredContent: report };
    },
  );
  server.registerTool(
    'countdown',
    {
      description: 'Sends notifications spaced in time, then answers',
      inputSchema: { steps: z.number().int().min(1).max(10), gap_ms: z.number().int().min(0).max(2000) },
    },
    async ({ steps, gap_ms }, extra) => {
      const progressToken = extra._meta?.progressToken;
      for (let i = 1; i <= steps; i++) {
        await extra.sendNotification({
          method: 'notifications/message',
          params: { level: 'info', logger: 'countdown', data: `step ${i} of ${steps} at ${Date.now()}` },
        });
        if (progressToken !== undefined) {
          await extra.sendNotification({
            method: 'notifications/progress',
            params: { progressToken, progress: i, total: steps, message: `step ${i}` },
          });
        }
        await new Promise((r) => setTimeout(r, gap_ms));
      }
      return { content: [{ type: 'text', text: `done after ${steps} steps at ${Date.now()}` }] };
    },
  );
  server.registerTool(
    'broadcast',
    { description: 'Sends a notification on the standalone SSE stream', inputSchema: { text: z.string() } },
    async ({ text }) => {
      // No relatedRequestId: the transport sends it on the GET stream, if the client opened one.
      await server.server.notification({ method: 'notifications/message', params: { level: 'notice', logger: 'broadcast', data: text } });
      return { content: [{ type: 'text', text: `sent ${text}` }] };
    },
  );
  return server;
}

const transports = new Map();

async function readJson(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : undefined;
}

function send(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
}

const httpServer = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://upstream');
  if (url.pathname === '/_seen' && req.method === 'GET') return send(res, 200, seen);
  const entry = { method: req.method, path: url.pathname, query: url.search, headers: headerSubset(req), at: Date.now() };
  seen.push(entry);
  if (url.pathname !== '/mcp') return send(res, 404, { error: 'not_found', path: url.pathname });

  if (AUTH === 'edge') {
    // The edge checked the token; this server takes its word.
    entry.token = 'not checked';
    const bearer = /^(?:Bearer|DPoP) (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
    req.auth = {
      token: bearer ?? '',
      clientId: undefined,
      scopes: String(req.headers['x-auth-scopes'] ?? '').split(' ').filter(Boolean),
      extra: { verified: false, sub: req.headers['x-auth-subject'] },
    };
    return serveMcp(req, res);
  }
  const v = await verify(req.headers.authorization);
  entry.token = v.ok ? 'valid' : v.reason;
  if (!v.ok) {
    const desc = v.reason.replace(/["\\]/g, "'");
    return send(res, 401, { error: 'invalid_token', error_description: v.reason }, {
      'www-authenticate': `Bearer error="invalid_token", error_description="${desc}", resource_metadata="${PRM_URL}"`,
    });
  }
  req.auth = {
    token: v.token,
    clientId: v.payload.client_id,
    scopes: String(v.payload.scope ?? '').split(' ').filter(Boolean),
    expiresAt: v.payload.exp,
    extra: { verified: true, iss: v.payload.iss, aud: v.payload.aud, sub: v.payload.sub, alg: v.alg },
  };
  return serveMcp(req, res);
});

async function serveMcp(req, res) {
  try {
    const sid = req.headers['mcp-session-id'];
    let body;
    if (req.method === 'POST') body = await readJson(req);
    let transport = sid ? transports.get(sid) : undefined;
    if (sid && !transport) return send(res, 404, { jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null });
    if (!transport) {
      if (req.method !== 'POST' || !isInitializeRequest(body)) {
        return send(res, 400, { jsonrpc: '2.0', error: { code: -32000, message: 'Bad Request: No valid session ID provided' }, id: null });
      }
      transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => transports.set(id, transport),
        onsessionclosed: (id) => transports.delete(id),
      });
      transport.onclose = () => transport.sessionId && transports.delete(transport.sessionId);
      await newServer().connect(transport);
    }
    await transport.handleRequest(req, res, body);
  } catch (e) {
    console.error('mcp_server.mjs:', e);
    if (!res.headersSent) send(res, 500, { jsonrpc: '2.0', error: { code: -32603, message: String(e) }, id: null });
  }
}

await new Promise((resolve, reject) => {
  httpServer.once('error', reject);
  httpServer.listen(0, '127.0.0.1', resolve);
});

const stop = (signal) => {
  process.stderr.write(`mcp_server.mjs: ${signal}, stopping\n`);
  for (const t of transports.values()) t.close().catch(() => {});
  httpServer.close(() => process.exit(0));
  httpServer.closeAllConnections?.();
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));

process.stdout.write(`MCP_READY port=${httpServer.address().port}\n`);
