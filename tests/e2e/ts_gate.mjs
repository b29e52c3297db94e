// The MCP TypeScript SDK's client (Client + StreamableHTTPClientTransport) through the edge's gate
// to a real MCP server (mcp_server.mjs), the way people run it:
//   a. no credentials: the edge's 401 fails the connection, and the SDK's own parser finds
//      resource_metadata and scope in the challenge;
//   b. an OAuthClientProvider for a person (authorization code + PKCE): the edge's real 401 starts
//      the SDK's auth(), which discovers through the edge's PRM, registers at the provider and
//      stops at the redirect to the provider's authorization endpoint (resource, S256), which the
//      provider accepts;
//   c. a real access token (client_credentials, JWT for the resource) in requestInit headers:
//      initialize, tools/list, tools/call through the edge; notifications stream back on the
//      POST's SSE response as they are sent, and on the standalone GET stream; the MCP server
//      verified the token; the session survives the edge both ways; DELETE ends it;
//   d. the SDK's ClientCredentialsProvider: from the edge's 401 to a token and a tool call with no
//      help at all;
//   e. a token the MCP server rejects: presence lets it through, the server's own 401 comes back.
//
// Env (set by run.sh): EDGE_URL, RESOURCE_URL, ISSUER, SCOPES, MCP_URL (the MCP server, direct:
// only its /_seen side door is read), E2E_CLIENT_ID, E2E_CLIENT_SECRET.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  UnauthorizedError,
  discoverAuthorizationServerMetadata,
  extractResourceMetadataUrl,
  extractWWWAuthenticateParams,
} from '@modelcontextprotocol/sdk/client/auth.js';
import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';
import { LATEST_PROTOCOL_VERSION, LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';

import { Checks, clientCredentialsToken, env, exchangeLog, exchanges, within } from './checks.mjs';

const EDGE = env('EDGE_URL');
const RESOURCE = env('RESOURCE_URL');
const ISSUER = env('ISSUER');
const SCOPES = env('SCOPES');
const MCP = env('MCP_URL');
const CLIENT_ID = env('E2E_CLIENT_ID');
const CLIENT_SECRET = env('E2E_CLIENT_SECRET');
const PRM_PATH = `/.well-known/oauth-protected-resource${new URL(RESOURCE).pathname}`;
const PRM_URL = `${EDGE}${PRM_PATH}`;
const ISSUER_ORIGIN = new URL(ISSUER).origin;
const STEP_MS = 15000;

const c = new Checks('ts_gate');
console.log(`ts_gate: MCP TypeScript SDK client, protocol version ${LATEST_PROTOCOL_VERSION}, through ${RESOURCE}`);

const seen = async () => (await fetch(`${MCP}/_seen`, { signal: AbortSignal.timeout(5000) })).json();
const short = (url) => (url.startsWith(EDGE) ? url.slice(EDGE.length) : url.startsWith(ISSUER_ORIGIN) ? `[AS]${url.slice(ISSUER_ORIGIN.length)}` : url);
const asMeta = await discoverAuthorizationServerMetadata(ISSUER);

// a. No credentials.
console.log('-- a. connect without credentials');
{
  const log = [];
  const before = (await seen()).length;
  const transport = new StreamableHTTPClientTransport(new URL(RESOURCE), { fetch: exchangeLog(log) });
  const client = new Client({ name: 'e2e-ts-gate', version: '1.0.0' });
  const err = await within(STEP_MS, 'connect', client.connect(transport)).then(() => null, (e) => e);
  await transport.close().catch(() => {});
  console.log(`   requests: ${exchanges(log, EDGE).join(', ')}`);
  c.check('connect fails', err !== null);
  c.check('with the SDK\'s StreamableHTTPError, code 401', err instanceof StreamableHTTPError && err.code === 401, String(err));
  const r401 = log.find((e) => e.status === 401)?.response;
  c.check('the edge answered the initialize POST with 401', log[0]?.method === 'POST' && log[0]?.status === 401, exchanges(log, EDGE).join(', '));
  if (r401) {
    const params = extractWWWAuthenticateParams(r401);
    c.equal('extractWWWAuthenticateParams: resourceMetadataUrl', params.resourceMetadataUrl?.href, PRM_URL);
    c.equal('extractWWWAuthenticateParams: scope', params.scope, SCOPES);
    c.equal('extractWWWAuthenticateParams: no error for a missing token (RFC 6750 §3.1)', params.error, undefined);
    c.equal('extractResourceMetadataUrl', extractResourceMetadataUrl(r401)?.href, PRM_URL);
  }
  c.equal('nothing reached the MCP server', (await seen()).length, before);
}

// b. A person's OAuthClientProvider: the edge's real 401 drives auth() up to the redirect.
console.log('-- b. connect with an OAuthClientProvider (authorization code + PKCE) up to the redirect');
{
  const REDIRECT = 'http://127.0.0.1:33418/callback';
  const store = {};
  const provider = {
    get redirectUrl() {
      return REDIRECT;
    },
    get clientMetadata() {
      return {
        client_name: 'mcp-auth-edge e2e gate (TypeScript SDK)',
        redirect_uris: [REDIRECT],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
        application_type: 'native',
      };
    },
    clientInformation: () => store.client,
    saveClientInformation: (info) => {
      store.client = info;
    },
    tokens: () => undefined,
    saveTokens: (tokens) => {
      store.tokens = tokens;
    },
    redirectToAuthorization: (url) => {
      store.authorizationUrl = url;
    },
    saveCodeVerifier: (v) => {
      store.verifier = v;
    },
    codeVerifier: () => store.verifier,
  };
  const log = [];
  const transport = new StreamableHTTPClientTransport(new URL(RESOURCE), { authProvider: provider, fetch: exchangeLog(log) });
  const client = new Client({ name: 'e2e-ts-gate', version: '1.0.0' });
  const err = await within(STEP_MS, 'connect', client.connect(transport)).then(() => null, (e) => e);
  await transport.close().catch(() => {});
  const trail = log.map((e) => `${e.method} ${short(e.url)} ${e.status}`);
  console.log(`   requests: ${trail.join(', ')}`);
  c.check('connect ends in UnauthorizedError (a person must log in)', err instanceof UnauthorizedError, String(err?.stack ?? err));
  c.equal('first: the initialize POST, 401 from the edge', trail[0], 'POST /mcp 401');
  c.equal('then: the PRM at the URL the challenge named', trail[1], `GET ${PRM_PATH} 200`);
  c.check('then: the provider\'s metadata, found at the issuer the PRM names', trail.slice(2).some((t) => /^GET \[AS\]\/\.well-known\/(oauth-authorization-server|openid-configuration) 200$/.test(t)), trail.join(', '));
  c.check('then: dynamic registration at the provider', Boolean(store.client?.client_id) && trail.some((t) => t.startsWith('POST [AS]') && t.endsWith(' 201')), trail.join(', '));
  const u = store.authorizationUrl;
  c.equal('redirect to the provider\'s authorization_endpoint', u && `${u.origin}${u.pathname}`, asMeta?.authorization_endpoint);
  c.equal('authorization URL: resource = the edge\'s resource', u?.searchParams.get('resource'), RESOURCE);
  c.equal('authorization URL: scope = the challenge\'s scope', u?.searchParams.get('scope'), SCOPES);
  c.equal('authorization URL: code_challenge_method S256', u?.searchParams.get('code_challenge_method'), 'S256');
  c.check('authorization URL: a code_challenge', /^[A-Za-z0-9_-]{43}$/.test(u?.searchParams.get('code_challenge') ?? ''), u?.href);
  if (u) {
    const r = await fetch(u, { redirect: 'manual', signal: AbortSignal.timeout(5000) });
    const location = r.headers.get('location') ?? '';
    await r.body?.cancel();
    c.check('oidc-provider accepts the authorization request (redirects to its login interaction)',
      r.status === 303 && location.includes('/interaction/'), `status ${r.status}, location ${location}`);
  }
}

// c. A real access token in requestInit headers.
console.log('-- c. connect with a real access token (client_credentials, JWT for the resource)');
const tokenResponse = await c.step('client_credentials token from the provider', () =>
  clientCredentialsToken({ issuer: ISSUER, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, resource: RESOURCE, scope: SCOPES }),
);
const token = tokenResponse?.access_token;
if (token) {
  c.check('the token is a JWT', token.split('.').length === 3);
  const log = [];
  const before = (await seen()).length;
  const transport = new StreamableHTTPClientTransport(new URL(RESOURCE), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
    fetch: exchangeLog(log),
  });
  const client = new Client({ name: 'e2e-ts-gate', version: '1.0.0' });
  const notes = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
    notes.push({ at: Date.now(), logger: n.params.logger, data: n.params.data });
  });
  const connected = await c.step('connect through the edge', () => within(STEP_MS, 'connect', client.connect(transport)).then(() => true));
  if (connected) {
    c.equal('initialize: the MCP server answered', client.getServerVersion()?.name, 'e2e-upstream');
    const sessionId = transport.sessionId;
    c.check('the session id came back through the edge', Boolean(sessionId));
    const tools = await c.step('listTools', () => within(STEP_MS, 'listTools', client.listTools()));
    c.equal('listTools: the MCP server\'s tools', tools?.tools.map((t) => t.name).sort(), ['broadcast', 'countdown', 'whoami']);

    const who = await c.step('callTool whoami', () => within(STEP_MS, 'whoami', client.callTool({ name: 'whoami', arguments: {} })));
    const report = who?.structuredContent ?? {};
    c.equal('whoami: the MCP server verified the token (signature, iss, aud)', report.token_verified, true);
    c.equal('whoami: the token it saw is the one sent', report.token_prefix, token.slice(0, 12));
    c.equal('whoami: aud is the edge\'s resource', report.aud, RESOURCE);
    c.equal('whoami: iss is the provider', report.iss, ISSUER);
    c.equal('whoami: client_id', report.client_id, CLIENT_ID);
    c.equal('whoami: scopes', report.scopes, SCOPES.split(' '));
    c.equal('whoami: the session it saw is the client\'s', report.session_id, sessionId);
    c.equal('whoami: X-Forwarded-Proto', report.x_forwarded_proto, 'http');
    c.equal('whoami: X-Forwarded-Host is the edge\'s host', report.x_forwarded_host, new URL(EDGE).host);
    c.equal('whoami: X-Forwarded-For is the client', report.x_forwarded_for, '127.0.0.1');

    // Notifications on the POST's SSE response, spaced in time: each must arrive as it is sent.
    const steps = 3;
    const gap = 400;
    const progress = [];
    const start = Date.now();
    const count = await c.step('callTool countdown (SSE response)', () =>
      within(STEP_MS, 'countdown', client.callTool({ name: 'countdown', arguments: { steps, gap_ms: gap } }, undefined, {
        onprogress: (p) => progress.push({ at: Date.now(), ...p }),
      })),
    );
    const done = Date.now();
    const post = log.filter((e) => e.method === 'POST').at(-1);
    c.check('countdown: answered as text/event-stream through the edge', (post?.contentType ?? '').startsWith('text/event-stream'), `content-type ${post?.contentType}`);
    c.check('countdown: result arrived', /^done after 3 steps/.test(count?.content?.[0]?.text ?? ''), JSON.stringify(count));
    const steps_ = notes.filter((n) => n.logger === 'countdown');
    c.equal('countdown: every logging notification arrived', steps_.length, steps);
    c.equal('countdown: every progress notification arrived', progress.map((p) => p.progress), [1, 2, 3]);
    if (steps_.length === steps) {
      const lead = done - steps_[0].at;
      c.check(`countdown: the first notification arrived as sent, ${lead} ms before the result (streamed, not buffered)`,
        lead >= gap * (steps - 1), `first after ${steps_[0].at - start} ms, result after ${done - start} ms`);
      const spread = steps_.at(-1).at - steps_[0].at;
      c.check(`countdown: notifications spread over ${spread} ms, as sent`, spread >= gap * (steps - 1) * 0.75);
    }

    // The standalone GET stream the SDK opened after initialize, held open through the edge.
    const get = log.find((e) => e.method === 'GET');
    c.check('the SDK\'s standalone GET stream is open through the edge (200, text/event-stream)',
      get?.status === 200 && (get?.contentType ?? '').startsWith('text/event-stream'), get ? `${get.status} ${get.contentType}` : 'no GET');
    const text = `hello ${Date.now()}`;
    await c.step('callTool broadcast', () => within(STEP_MS, 'broadcast', client.callTool({ name: 'broadcast', arguments: { text } })));
    const arrived = await within(5000, 'broadcast notification', (async () => {
      while (!notes.some((n) => n.logger === 'broadcast' && n.data === text)) await new Promise((r) => setTimeout(r, 20));
      return true;
    })()).catch(() => false);
    c.check('broadcast: the notification arrived on the GET stream', arrived);

    const gets = log.filter((e) => e.method === 'GET');
    c.check('every request carried the token', log.every((e) => e.authorization), exchanges(log, EDGE).join(', '));
    c.check('every request after initialize carried the session id', log.slice(1).every((e) => e.sessionId === sessionId));
    await c.step('terminateSession (DELETE through the edge)', () => within(STEP_MS, 'DELETE', transport.terminateSession()));
    c.equal('DELETE answered 200', log.filter((e) => e.method === 'DELETE').map((e) => e.status), [200]);
    await client.close();

    const upstream = (await seen()).slice(before);
    console.log(`   the MCP server saw: ${upstream.map((e) => `${e.method} ${e.path}${e.query} ${e.token}`).join(', ')}`);
    c.check('the MCP server saw the token on every request', upstream.length > 0 && upstream.every((e) => e.token === 'valid'));
    c.check('the MCP server saw the session id on every request after initialize',
      upstream.slice(1).every((e) => e.headers['mcp-session-id'] === sessionId));
    c.check('the MCP server saw the negotiated MCP-Protocol-Version on every request after initialize',
      upstream.slice(1).every((e) => e.headers['mcp-protocol-version'] === transport.protocolVersion), `negotiated ${transport.protocolVersion}`);
    c.equal('the MCP server saw the GET stream', upstream.filter((e) => e.method === 'GET').length, gets.length);
    c.check('no hop-by-hop header reached the MCP server',
      upstream.every((e) => !['keep-alive', 'te', 'upgrade', 'proxy-authorization'].some((h) => h in e.headers)));
  }
}

// d. ClientCredentialsProvider: from the edge's 401 to a tool call, all by the SDK.
console.log('-- d. connect with the SDK\'s ClientCredentialsProvider');
{
  const log = [];
  const provider = new ClientCredentialsProvider({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, expectedIssuer: ISSUER, scope: SCOPES });
  const transport = new StreamableHTTPClientTransport(new URL(RESOURCE), { authProvider: provider, fetch: exchangeLog(log) });
  const client = new Client({ name: 'e2e-ts-gate', version: '1.0.0' });
  const connected = await c.step('connect', () => within(STEP_MS, 'connect', client.connect(transport)).then(() => true));
  const trail = log.map((e) => `${e.method} ${short(e.url)} ${e.status}`);
  console.log(`   requests: ${trail.join(', ')}`);
  c.equal('first: 401 from the edge', trail[0], 'POST /mcp 401');
  c.equal('then: the PRM the challenge named', trail[1], `GET ${PRM_PATH} 200`);
  c.check('then: a token from the provider\'s token endpoint', trail.includes(`POST ${short(asMeta.token_endpoint)} 200`), trail.join(', '));
  c.check('then: the initialize POST again, 200 through the edge', trail.filter((t) => t === 'POST /mcp 200').length >= 1, trail.join(', '));
  if (connected) {
    const who = await c.step('callTool whoami', () => within(STEP_MS, 'whoami', client.callTool({ name: 'whoami', arguments: {} })));
    c.equal('whoami: the MCP server verified the SDK-obtained token', who?.structuredContent?.token_verified, true);
    c.equal('whoami: token audience is the edge\'s resource (the SDK sent resource=)', who?.structuredContent?.aud, RESOURCE);
    await transport.terminateSession().catch(() => {});
  }
  await client.close().catch(() => {});
}

// e. A token the MCP server rejects: presence forwards it; the server's own 401 comes back.
console.log('-- e. connect with a well-formed token the MCP server rejects');
{
  const log = [];
  const before = (await seen()).length;
  const transport = new StreamableHTTPClientTransport(new URL(RESOURCE), {
    requestInit: { headers: { Authorization: 'Bearer not.a.valid-token' } },
    fetch: exchangeLog(log),
  });
  const client = new Client({ name: 'e2e-ts-gate', version: '1.0.0' });
  const err = await within(STEP_MS, 'connect', client.connect(transport)).then(() => null, (e) => e);
  await transport.close().catch(() => {});
  c.check('connect fails with 401', err instanceof StreamableHTTPError && err.code === 401, String(err));
  const upstream = (await seen()).slice(before);
  c.check('the presence gate forwarded it and the MCP server refused it', upstream.length === 1 && upstream[0].token !== 'valid',
    JSON.stringify(upstream));
  const r = log[0]?.response;
  c.check('the challenge the client got is the MCP server\'s (error="invalid_token")',
    r && extractWWWAuthenticateParams(r).error === 'invalid_token', r?.headers.get('www-authenticate'));
}

c.finish();
