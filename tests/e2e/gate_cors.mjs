// A browser's view of the gate (`--upstream`), with plain `fetch`: the preflights a browser sends
// before the MCP TypeScript SDK's POST, GET and DELETE on /mcp, then what the browser lets the page
// read of the answers: the gate's own 401 and 400, and the responses forwarded from the MCP
// server. Node's fetch does not enforce CORS, so the checks read the headers a browser enforces
// (Fetch standard: a cross-origin response is readable only with Access-Control-Allow-Origin
// matching, and only the safelisted headers plus Access-Control-Expose-Headers are visible).
//
// Env (set by run.sh): EDGE_URL, RESOURCE_URL, ISSUER, SCOPES, MCP_URL, E2E_CLIENT_ID,
// E2E_CLIENT_SECRET.

import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';

import { Checks, clientCredentialsToken, env } from './checks.mjs';

const EDGE = env('EDGE_URL');
const RESOURCE = env('RESOURCE_URL');
const ISSUER = env('ISSUER');
const SCOPES = env('SCOPES');
const ORIGIN = 'https://app.example';
const PRM_URL = `${EDGE}/.well-known/oauth-protected-resource${new URL(RESOURCE).pathname}`;
const c = new Checks('gate_cors');

const list = (v) => (v ?? '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
const allowsOrigin = (h) => h.get('access-control-allow-origin') === '*' || h.get('access-control-allow-origin') === ORIGIN;
const exposes = (h, name) => list(h.get('access-control-expose-headers')).includes(name.toLowerCase()) || h.get('access-control-expose-headers') === '*';

// 1. Preflights, as a browser sends them before each of the SDK's requests.
for (const [method, requested] of [
  ['POST', 'authorization, content-type, mcp-protocol-version, mcp-session-id'],
  ['GET', 'authorization, mcp-protocol-version, mcp-session-id, last-event-id'],
  ['DELETE', 'authorization, mcp-protocol-version, mcp-session-id'],
]) {
  console.log(`-- OPTIONS /mcp  (Access-Control-Request-Method: ${method}, -Headers: ${requested})`);
  const r = await fetch(RESOURCE, {
    method: 'OPTIONS',
    headers: { Origin: ORIGIN, 'Access-Control-Request-Method': method, 'Access-Control-Request-Headers': requested },
    signal: AbortSignal.timeout(5000),
  });
  await r.body?.cancel();
  const h = r.headers;
  c.equal(`preflight ${method}: 204 at the edge, no token needed`, r.status, 204);
  c.check(`preflight ${method}: origin allowed`, allowsOrigin(h), `Access-Control-Allow-Origin: ${h.get('access-control-allow-origin')}`);
  c.check(`preflight ${method}: method allowed`, list(h.get('access-control-allow-methods')).includes(method.toLowerCase()),
    `Access-Control-Allow-Methods: ${h.get('access-control-allow-methods')}`);
  const allowed = list(h.get('access-control-allow-headers'));
  const missing = list(requested).filter((x) => !allowed.includes(x));
  c.check(`preflight ${method}: every requested header allowed`, missing.length === 0 || allowed.includes('*'),
    `missing ${missing.join(', ')}; Access-Control-Allow-Headers: ${h.get('access-control-allow-headers')}`);
}

// 2. The gate's 401, as the page reads it: the challenge must be exposed.
console.log('-- POST /mcp without a token, Origin set');
const initialize = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: LATEST_PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'gate_cors', version: '1' } },
});
const mcpHeaders = {
  Origin: ORIGIN,
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': LATEST_PROTOCOL_VERSION,
};
let r = await fetch(RESOURCE, { method: 'POST', headers: mcpHeaders, body: initialize, signal: AbortSignal.timeout(5000) });
let body = await r.text();
c.equal('401 without a token', r.status, 401);
c.check('401: origin allowed', allowsOrigin(r.headers), `Access-Control-Allow-Origin: ${r.headers.get('access-control-allow-origin')}`);
c.check('401: WWW-Authenticate exposed', exposes(r.headers, 'WWW-Authenticate'), `Access-Control-Expose-Headers: ${r.headers.get('access-control-expose-headers')}`);
c.equal('401: the challenge', r.headers.get('www-authenticate'), `Bearer resource_metadata="${PRM_URL}", scope="${SCOPES}"`);
c.check('401: JSON body with error invalid_token', (() => {
  try {
    return JSON.parse(body).error === 'invalid_token';
  } catch {
    return false;
  }
})(), body);

// 3. A malformed Authorization header: 400 invalid_request, readable too.
console.log('-- POST /mcp with `Authorization: Bearer` (no token)');
r = await fetch(RESOURCE, { method: 'POST', headers: { ...mcpHeaders, authorization: 'Bearer ' }, body: initialize, signal: AbortSignal.timeout(5000) });
body = await r.text();
c.equal('malformed bearer: 400', r.status, 400);
c.check('malformed bearer: error="invalid_request" in WWW-Authenticate', /error="invalid_request"/.test(r.headers.get('www-authenticate') ?? ''),
  `WWW-Authenticate: ${r.headers.get('www-authenticate')}`);
c.check('malformed bearer: origin allowed', allowsOrigin(r.headers), `Access-Control-Allow-Origin: ${r.headers.get('access-control-allow-origin')}`);

// 4. Forwarded answers. The edge answers the preflight for /mcp itself (the MCP server never sees
//    it), so the browser reads the forwarded response only if it carries CORS headers too: the
//    origin allowed and Mcp-Session-Id exposed (the SDK keeps the session from that header).
const { access_token: token } = await clientCredentialsToken({
  issuer: ISSUER,
  clientId: env('E2E_CLIENT_ID'),
  clientSecret: env('E2E_CLIENT_SECRET'),
  resource: RESOURCE,
  scope: SCOPES,
});
console.log('-- POST /mcp initialize with a valid token, Origin set (forwarded to the MCP server)');
r = await fetch(RESOURCE, { method: 'POST', headers: { ...mcpHeaders, authorization: `Bearer ${token}` }, body: initialize, signal: AbortSignal.timeout(5000) });
await r.text();
c.equal('forwarded initialize: 200 from the MCP server', r.status, 200);
c.check('forwarded initialize: carries Mcp-Session-Id', Boolean(r.headers.get('mcp-session-id')));
c.check('forwarded initialize: origin allowed (else a browser cannot read the response)', allowsOrigin(r.headers),
  `Access-Control-Allow-Origin: ${r.headers.get('access-control-allow-origin')}; response headers: ${[...r.headers.keys()].join(', ')}`);
c.check('forwarded initialize: Mcp-Session-Id exposed (else the SDK in a browser loses the session)', exposes(r.headers, 'Mcp-Session-Id'),
  `Access-Control-Expose-Headers: ${r.headers.get('access-control-expose-headers')}`);
const sid = r.headers.get('mcp-session-id');
if (sid) {
  const d = await fetch(RESOURCE, {
    method: 'DELETE',
    headers: { Origin: ORIGIN, authorization: `Bearer ${token}`, 'mcp-session-id': sid, 'mcp-protocol-version': LATEST_PROTOCOL_VERSION },
    signal: AbortSignal.timeout(5000),
  });
  await d.body?.cancel();
  c.equal('forwarded DELETE of the session: 200', d.status, 200);
}

console.log('-- POST /mcp with a token the MCP server rejects (presence passes it), Origin set');
r = await fetch(RESOURCE, { method: 'POST', headers: { ...mcpHeaders, authorization: 'Bearer not-a-jwt' }, body: initialize, signal: AbortSignal.timeout(5000) });
await r.text();
c.equal("the MCP server's own 401 comes through", r.status, 401);
c.check("the MCP server's 401: origin allowed", allowsOrigin(r.headers), `Access-Control-Allow-Origin: ${r.headers.get('access-control-allow-origin')}`);
c.check("the MCP server's 401: WWW-Authenticate exposed", exposes(r.headers, 'WWW-Authenticate'),
  `Access-Control-Expose-Headers: ${r.headers.get('access-control-expose-headers')}`);

c.finish();
