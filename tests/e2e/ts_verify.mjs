// The MCP TypeScript SDK's client through an edge that checks tokens itself (TOKEN_CHECK = jwt:
// against the provider's JWKS; introspect: at its introspection endpoint), started with
// `--required-scope mcp:tools --strip-authorization`, to the MCP server, which trusts the edge:
//   a. the SDK's ClientCredentialsProvider, unaided: the edge's 401, the PRM, a token, then
//      initialize, tools/list and tool calls (an SSE response streamed) through the edge; the MCP
//      server got X-Auth-Subject / X-Auth-Scopes and no Authorization; in introspect mode the
//      whole session cost one introspection request (the edge remembers the verdict);
//   b. a person, with an OAuthClientProvider: the edge's 401 leads to the provider's login, a
//      real login and consent, the code exchanged by the SDK, then a tool call as that person
//      (X-Auth-Subject is the login);
//   c. step-up: a client holding a token without the required scope gets the edge's 403
//      insufficient_scope, gets a new token and retries on its own. (The SDK's client_credentials
//      grant asks for the provider's configured scopes, not the challenge's: a ClientCredentials-
//      Provider configured with too narrow a scope cannot step up, whatever the edge says.)
//
// Env (set by run.sh): TOKEN_CHECK, EDGE_URL, RESOURCE_URL, ISSUER, SCOPES, MCP_URL (only its
// /_seen side door is read), E2E_CLIENT_ID, E2E_CLIENT_SECRET.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError, discoverAuthorizationServerMetadata } from '@modelcontextprotocol/sdk/client/auth.js';
import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';
import { LATEST_PROTOCOL_VERSION, LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';

import { Checks, clientCredentialsToken, env, exchangeLog, loginAtProvider, within } from './checks.mjs';

const MODE = env('TOKEN_CHECK');
const EDGE = env('EDGE_URL');
const RESOURCE = env('RESOURCE_URL');
const ISSUER = env('ISSUER');
const SCOPES = env('SCOPES');
const MCP = env('MCP_URL');
const CLIENT_ID = env('E2E_CLIENT_ID');
const CLIENT_SECRET = env('E2E_CLIENT_SECRET');
const PRM_PATH = `/.well-known/oauth-protected-resource${new URL(RESOURCE).pathname}`;
const ISSUER_ORIGIN = new URL(ISSUER).origin;
const STEP_MS = 15000;
const LOGIN = 'alice@e2e.example';

const c = new Checks('ts_verify');
console.log(`ts_verify: MCP TypeScript SDK client, protocol version ${LATEST_PROTOCOL_VERSION}, through ${RESOURCE} (--token-check ${MODE})`);

const seen = async () => (await fetch(`${MCP}/_seen`, { signal: AbortSignal.timeout(5000) })).json();
const introspections = async () =>
  (await (await fetch(`${ISSUER_ORIGIN}/_e2e/stats`, { signal: AbortSignal.timeout(5000) })).json()).introspections;
const short = (url) => (url.startsWith(EDGE) ? url.slice(EDGE.length) : url.startsWith(ISSUER_ORIGIN) ? `[AS]${url.slice(ISSUER_ORIGIN.length)}` : url);
const trailOf = (log) => log.map((e) => `${e.method} ${short(e.url)} ${e.status}`);
const asMeta = await discoverAuthorizationServerMetadata(ISSUER);
const whoami = async (client) => (await within(STEP_MS, 'whoami', client.callTool({ name: 'whoami', arguments: {} })))?.structuredContent ?? {};

// a. ClientCredentialsProvider, from the edge's 401 to tool calls.
console.log('-- a. the SDK\'s ClientCredentialsProvider, from the edge\'s 401 to tool calls');
{
  const log = [];
  const before = (await seen()).length;
  const asked = await introspections();
  const provider = new ClientCredentialsProvider({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, expectedIssuer: ISSUER, scope: SCOPES });
  const transport = new StreamableHTTPClientTransport(new URL(RESOURCE), { authProvider: provider, fetch: exchangeLog(log) });
  const client = new Client({ name: 'e2e-ts-verify', version: '1.0.0' });
  const notes = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => notes.push(n.params.logger));
  const connected = await c.step('connect', () => within(STEP_MS, 'connect', client.connect(transport)).then(() => true));
  if (connected) {
    c.equal('initialize: the MCP server answered through the edge', client.getServerVersion()?.name, 'e2e-upstream');
    const tools = await c.step('listTools', () => within(STEP_MS, 'listTools', client.listTools()));
    c.equal('listTools: the MCP server\'s tools', tools?.tools.map((t) => t.name).sort(), ['broadcast', 'countdown', 'whoami']);
    const report = (await c.step('callTool whoami', () => whoami(client))) ?? {};
    c.equal('whoami: no Authorization reached the MCP server (--strip-authorization)', report.authorization, null);
    c.equal('whoami: X-Auth-Scopes is the token\'s scopes', report.x_auth_scopes, SCOPES);
    if (MODE === 'jwt') {
      c.equal('whoami: X-Auth-Subject is the JWT\'s sub (oidc-provider puts the client id there)', report.x_auth_subject, CLIENT_ID);
    } else {
      // RFC 7662 makes `sub` optional; oidc-provider has none for a client_credentials token.
      c.equal('whoami: no X-Auth-Subject (the introspection answer has no sub for a client_credentials token)', report.x_auth_subject, null);
    }
    const count = await c.step('callTool countdown (an SSE response through the verifying edge)', () =>
      within(STEP_MS, 'countdown', client.callTool({ name: 'countdown', arguments: { steps: 2, gap_ms: 200 } })),
    );
    c.check('countdown: result and both notifications arrived', /^done after 2 steps/.test(count?.content?.[0]?.text ?? '') &&
      notes.filter((n) => n === 'countdown').length === 2, JSON.stringify({ count, notes }));
    await c.step('terminateSession', () => within(STEP_MS, 'DELETE', transport.terminateSession()));
  }
  await client.close().catch(() => {});
  const trail = trailOf(log);
  console.log(`   requests: ${trail.join(', ')}`);
  c.equal('first: 401 from the edge', trail[0], 'POST /mcp 401');
  c.equal('then: the PRM the challenge named', trail[1], `GET ${PRM_PATH} 200`);
  c.check('then: a token from the provider\'s token endpoint', trail.includes(`POST ${short(asMeta.token_endpoint)} 200`), trail.join(', '));
  const upstream = (await seen()).slice(before);
  console.log(`   the MCP server saw: ${upstream.map((e) => `${e.method} ${e.path}`).join(', ')}`);
  c.check('every request past the 401 reached the MCP server, none with Authorization',
    upstream.length === log.filter((e) => e.url === RESOURCE && e.status !== 401).length &&
      upstream.every((e) => !('authorization' in e.headers) && e.headers['x-auth-scopes'] === SCOPES), JSON.stringify(upstream.map((e) => e.headers)));
  if (MODE === 'introspect') {
    c.equal(`the edge introspected the token once for ${upstream.length} requests (its verdict cache)`, (await introspections()) - asked, 1);
  }
}

// b. A person: the edge's 401, a real login and consent at the provider, the code exchanged.
console.log('-- b. a person with an OAuthClientProvider: login and consent at the provider, then tool calls');
{
  const REDIRECT = 'http://127.0.0.1:33418/callback';
  const store = {};
  const provider = {
    get redirectUrl() {
      return REDIRECT;
    },
    get clientMetadata() {
      return {
        client_name: `mcp-auth-edge e2e ${MODE} (TypeScript SDK)`,
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
    tokens: () => store.tokens,
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
  const first = new StreamableHTTPClientTransport(new URL(RESOURCE), { authProvider: provider, fetch: exchangeLog(log) });
  const err = await within(STEP_MS, 'connect', new Client({ name: 'e2e-ts-verify', version: '1.0.0' }).connect(first)).then(() => null, (e) => e);
  c.check('connect ends in UnauthorizedError with a redirect to the provider', err instanceof UnauthorizedError && Boolean(store.authorizationUrl),
    String(err?.stack ?? err));
  const callback = store.authorizationUrl && (await c.step('login and consent at the provider', () => loginAtProvider(store.authorizationUrl, LOGIN)));
  if (callback) {
    c.equal('the provider redirects back to the client', `${callback.origin}${callback.pathname}`, REDIRECT);
    c.equal('with iss = the issuer (RFC 9207)', callback.searchParams.get('iss'), ISSUER);
    const code = callback.searchParams.get('code');
    await c.step('finishAuth: the SDK exchanges the code (PKCE, resource)', () => within(STEP_MS, 'finishAuth', first.finishAuth(code)));
    const token = store.tokens?.access_token ?? '';
    c.check(`the SDK holds an access token (${MODE === 'jwt' ? 'a JWT' : 'opaque'})`,
      MODE === 'jwt' ? token.split('.').length === 3 : token.length > 0 && !token.includes('.'), token.slice(0, 20));
    await first.close().catch(() => {});
    const transport = new StreamableHTTPClientTransport(new URL(RESOURCE), { authProvider: provider, fetch: exchangeLog(log) });
    const client = new Client({ name: 'e2e-ts-verify', version: '1.0.0' });
    const connected = await c.step('connect again, as the person', () => within(STEP_MS, 'connect', client.connect(transport)).then(() => true));
    if (connected) {
      const report = (await c.step('callTool whoami', () => whoami(client))) ?? {};
      c.equal('whoami: X-Auth-Subject is the person who logged in', report.x_auth_subject, LOGIN);
      c.equal('whoami: X-Auth-Scopes is what they consented to', report.x_auth_scopes, SCOPES);
      c.equal('whoami: no Authorization reached the MCP server', report.authorization, null);
      await transport.terminateSession().catch(() => {});
    }
    await client.close().catch(() => {});
  }
  console.log(`   requests: ${trailOf(log).join(', ')}`);
}

// c. Step-up: the edge's 403 insufficient_scope; the SDK gets a new token and retries.
console.log('-- c. step-up: a client holding a token without mcp:tools, the edge\'s 403, the SDK gets a new one');
{
  const narrow = await c.step('a token with mcp:resources only', () =>
    clientCredentialsToken({ issuer: ISSUER, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, resource: RESOURCE, scope: 'mcp:resources' }),
  );
  if (narrow) {
    c.equal('the provider granted mcp:resources only', narrow.scope, 'mcp:resources');
    const log = [];
    const provider = new ClientCredentialsProvider({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, expectedIssuer: ISSUER, scope: SCOPES });
    provider.saveTokens({ access_token: narrow.access_token, token_type: 'Bearer', scope: narrow.scope });
    const transport = new StreamableHTTPClientTransport(new URL(RESOURCE), { authProvider: provider, fetch: exchangeLog(log) });
    const client = new Client({ name: 'e2e-ts-verify', version: '1.0.0' });
    const connected = await c.step('connect', () => within(STEP_MS, 'connect', client.connect(transport)).then(() => true));
    const trail = trailOf(log);
    console.log(`   requests: ${trail.join(', ')}`);
    const denied = log.find((e) => e.status === 403);
    c.check('first: 403 from the edge, with error="insufficient_scope" and scope="mcp:tools"',
      trail[0] === 'POST /mcp 403' && /error="insufficient_scope"/.test(denied?.response.headers.get('www-authenticate') ?? '') &&
        /scope="mcp:tools"/.test(denied?.response.headers.get('www-authenticate') ?? ''), `${trail[0]} ${denied?.response.headers.get('www-authenticate')}`);
    const tokenAt = trail.indexOf(`POST ${short(asMeta.token_endpoint)} 200`);
    c.check('then: a new token from the provider', tokenAt > 0, trail.join(', '));
    c.check('then: the initialize POST again, 200 with the new token', tokenAt > 0 && trail.indexOf('POST /mcp 200', tokenAt) > tokenAt, trail.join(', '));
    if (connected) {
      const report = (await c.step('callTool whoami', () => whoami(client))) ?? {};
      c.check('whoami: the new token carries mcp:tools', (report.x_auth_scopes ?? '').split(' ').includes('mcp:tools'), report.x_auth_scopes);
      await transport.terminateSession().catch(() => {});
    }
    await client.close().catch(() => {});
  }
}

c.finish();
