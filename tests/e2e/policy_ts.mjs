// A TypeScript SDK client against the MCP policy (policy rounds of run.sh). E2E_CLIENT_SDK picks
// the SDK: v1 (`@modelcontextprotocol/sdk` 1.32.2, revision 2025-11-25) or v2
// (`@modelcontextprotocol/client` 2.4.0); for v2, E2E_NEGOTIATION is `legacy` (its default:
// initialize at 2025-11-25) or `auto` (versionNegotiation: 2026-07-28 where the server speaks it).
// Tokens come from the SDK's own ClientCredentialsProvider, asking for the base scope mcp:tools.
//
//   a. the "forbidden" edge: connect (the edge's 401, the PRM, a token), tools/list, read_notes;
//      then admin_reset: the edge answers 403 insufficient_scope naming mcp:admin, and either the
//      SDK gets a token with the larger scope and retries by itself, or (SDKs that do not) the
//      call fails and this script gets the token and calls again. Which of the two happens is
//      checked against what the README records for the SDK. The MCP server never saw admin_reset
//      with the base scope.
//   b. the "tool_error" edge: the same base token; admin_reset comes back as a tool result with
//      isError true naming mcp:admin (HTTP 200), and the client carries on.
//   c. a person (the SDK's OAuthClientProvider interface, authorization code with PKCE, as the
//      provider's pre-registered public client; this script plays the browser at the provider's
//      login and consent): signed in with the base
//      scope the 401 names, then admin_reset: whether the SDK starts a new authorization for the
//      challenge's scope by itself, and the call after the second login.
//
// Env (set by run.sh): RESOURCE_URL, TOOL_ERROR_RESOURCE, ISSUER, MCP_URL (its /_seen side door),
// E2E_CLIENT_ID, E2E_CLIENT_SECRET, POLICY_SERVER (ts1, ts2 or py), POLICY_LISTS_FILTERED.

import { Checks, clientCredentialsToken, env, exchangeLog, loginAtProvider, within } from './checks.mjs';

const SDK = process.env.E2E_CLIENT_SDK || 'v1';
const NEGOTIATION = SDK === 'v2' ? process.env.E2E_NEGOTIATION || 'legacy' : 'legacy';
const NAME = SDK === 'v1' ? 'policy_ts1' : NEGOTIATION === 'auto' ? 'policy_ts2_auto' : 'policy_ts2';
const RESOURCE = env('RESOURCE_URL');
const TOOL_ERROR_RESOURCE = env('TOOL_ERROR_RESOURCE');
const ISSUER = env('ISSUER');
const MCP = env('MCP_URL');
const CLIENT_ID = env('E2E_CLIENT_ID');
const CLIENT_SECRET = env('E2E_CLIENT_SECRET');
const SERVER = env('POLICY_SERVER');
const LISTS_FILTERED = process.env.POLICY_LISTS_FILTERED === '1';
const BASE = 'mcp:tools';
const STEP_MS = 15000;
// What the README's table records: does the SDK step up by itself on the edge's 403?
const STEPS_UP_BY_ITSELF = SDK === 'v2';
// For a person (authorization code): every SDK sends them back to the provider for the larger scope.
const STEPS_UP_BY_ITSELF_PERSON = true;
// Servers that speak 2026-07-28; against the others an `auto` client falls back to 2025-11-25.
const MODERN = SDK === 'v2' && NEGOTIATION === 'auto' && SERVER !== 'ts1';
const WANT_VERSION = MODERN ? '2026-07-28' : '2025-11-25';
// read_notes' argument, mirrored into Mcp-Param-Topic at 2026-07-28 (not ASCII: sent encoded).
const TOPIC = 'plans ✓';

const sdk = SDK === 'v1'
  ? {
    ...(await import('@modelcontextprotocol/sdk/client/index.js')),
    ...(await import('@modelcontextprotocol/sdk/client/streamableHttp.js')),
    ...(await import('@modelcontextprotocol/sdk/client/auth-extensions.js')),
  }
  : await import('@modelcontextprotocol/client');

const c = new Checks(NAME);
console.log(`${NAME}: TypeScript SDK ${SDK}${SDK === 'v2' ? `, versionNegotiation ${NEGOTIATION}` : ''}, MCP server ${SERVER}`);

const seen = async () => (await fetch(`${MCP}/_seen`, { signal: AbortSignal.timeout(5000) })).json();
const adminCalls = (entries) => entries.filter((e) => e.ops.some((o) => o.method === 'tools/call' && o.name === 'admin_reset'));
const textOf = (result) => result?.content?.map((p) => p.text ?? '').join(' ') ?? '';
const scopesOf = (result) => result?.structuredContent?.scopes ?? '';
const short = (url) => {
  const u = new URL(url);
  return u.origin === new URL(ISSUER).origin ? `[AS]${u.pathname}` : `${u.port}${u.pathname}`;
};
const trailOf = (log) => log.map((e) => `${e.method} ${short(e.url)} ${e.status}`);

/** A client on `resource` whose ClientCredentialsProvider asks for the base scope. */
async function connect(resource, log) {
  const provider = new sdk.ClientCredentialsProvider({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, expectedIssuer: ISSUER, scope: BASE });
  const transport = new sdk.StreamableHTTPClientTransport(new URL(resource), { authProvider: provider, fetch: exchangeLog(log) });
  const options = SDK === 'v2' && NEGOTIATION === 'auto' ? { versionNegotiation: { mode: 'auto' } } : {};
  const client = new sdk.Client({ name: `e2e-${NAME}`, version: '1.0.0' }, options);
  await within(STEP_MS, 'connect', client.connect(transport));
  const version = client.getNegotiatedProtocolVersion?.() ?? transport.protocolVersion;
  return { client, transport, provider, version };
}

async function close({ client, transport }) {
  await transport.terminateSession?.().catch(() => {});
  await client.close().catch(() => {});
}

const call = (client, name) => within(STEP_MS, name, client.callTool({ name, arguments: name === 'read_notes' ? { topic: TOPIC } : {} }));
const readCalls = (entries) => entries.filter((e) => e.ops.some((o) => o.method === 'tools/call' && o.name === 'read_notes'));

// a. The step-up 403.
console.log('-- a. the forbidden edge: base scope, then admin_reset and the step-up');
{
  const log = [];
  const before = (await seen()).length;
  const session = await c.step('connect with a base-scope token from the SDK', () => connect(RESOURCE, log));
  if (session) {
    const { client, provider, version } = session;
    c.equal(`protocol revision ${WANT_VERSION}`, version, WANT_VERSION);
    c.equal('the SDK asked for the base scope only', provider.tokens()?.scope, BASE);
    const tools = await c.step('tools/list', () => within(STEP_MS, 'listTools', client.listTools()));
    const names = (tools?.tools ?? []).map((t) => t.name).sort();
    if (LISTS_FILTERED) c.equal('tools/list: only read_notes for the base scope', names, ['read_notes']);
    else c.check('tools/list: read_notes listed', names.includes('read_notes'), JSON.stringify(names));
    const read = await c.step('call read_notes', () => call(client, 'read_notes'));
    c.check('read_notes answers, with the base token', textOf(read).includes(`the notes: nothing secret here on ${TOPIC}`) && scopesOf(read) === BASE, textOf(read));
    if (MODERN) {
      const sent = readCalls((await seen()).slice(before));
      c.check('at 2026-07-28 its Mcp-Param-Topic crossed the edge (encoded), and the server took it',
        sent.length === 1 && /^=\?base64\?[A-Za-z0-9+/=]+\?=$/.test(sent[0].mcp_param_topic ?? '') && sent[0].mcp_name === 'read_notes', JSON.stringify(sent));
    }

    const from = log.length;
    let admin;
    let failure;
    try {
      admin = await call(client, 'admin_reset');
    } catch (e) {
      failure = e;
    }
    const trail = trailOf(log.slice(from));
    console.log(`   admin_reset: ${trail.join(', ')}${failure ? ` -> ${failure.constructor.name}: ${failure.message}` : ''}`);
    const denied = log.slice(from).find((e) => e.status === 403);
    const challenge = denied?.response.headers.get('www-authenticate') ?? '';
    console.log(`   challenge: ${challenge}`);
    c.check('admin_reset with the base token: 403 from the edge', trail[0] === `POST ${short(RESOURCE)} 403`, trail.join(', '));
    c.check('the challenge: error="insufficient_scope", scope naming mcp:admin (and the held mcp:tools), resource_metadata',
      /^Bearer error="insufficient_scope", scope="mcp:admin mcp:tools", resource_metadata="[^"]+"$/.test(challenge), challenge);
    const stepped = !failure && scopesOf(admin).split(' ').includes('mcp:admin');
    c.equal(`the SDK ${STEPS_UP_BY_ITSELF ? 'steps up by itself (a token with the challenge\'s scope, the call retried)' : 'does not step up by itself'}`,
      stepped, STEPS_UP_BY_ITSELF);
    if (stepped) {
      c.check('it asked the provider for a new token, then retried', trail.includes('POST [AS]/token 200') && trail.at(-1) === `POST ${short(RESOURCE)} 200`, trail.join(', '));
      c.check('admin_reset answers, with a token holding mcp:admin and mcp:tools',
        textOf(admin).includes('reset done') && scopesOf(admin).split(' ').includes(BASE), textOf(admin));
    } else if (!STEPS_UP_BY_ITSELF) {
      // The harness steps up for the SDK: a token with the challenge's scope, then the call again.
      const scope = /scope="([^"]*)"/.exec(challenge)?.[1] ?? 'mcp:admin mcp:tools';
      const bigger = await c.step('a token with the challenge\'s scope, from the provider (by this script)', () =>
        clientCredentialsToken({ issuer: ISSUER, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, resource: RESOURCE, scope }));
      if (bigger) {
        provider.saveTokens({ access_token: bigger.access_token, token_type: 'Bearer', scope: bigger.scope });
        const again = await c.step('call admin_reset again', () => call(client, 'admin_reset'));
        c.check('admin_reset answers, with the larger token', textOf(again).includes('reset done') && scopesOf(again).split(' ').includes('mcp:admin'), textOf(again));
      }
    }
    const reached = adminCalls((await seen()).slice(before));
    c.check('admin_reset reached the MCP server only with mcp:admin', reached.length >= 1 && reached.every((e) => (e.scopes ?? '').split(' ').includes('mcp:admin')),
      JSON.stringify(reached));
    if (MODERN) {
      const modern = reached.filter((e) => e.version === '2026-07-28');
      c.check('at 2026-07-28 the call carried Mcp-Method: tools/call and Mcp-Name: admin_reset through the edge',
        modern.length >= 1 && modern.every((e) => e.mcp_method === 'tools/call' && e.mcp_name === 'admin_reset'), JSON.stringify(reached));
    }
    await close(session);
  }
}

// b. The tool-error mode.
console.log('-- b. the tool_error edge: the denied call is a tool result with isError');
{
  const log = [];
  const before = (await seen()).length;
  const session = await c.step('connect with a base-scope token from the SDK', () => connect(TOOL_ERROR_RESOURCE, log));
  if (session) {
    const { client } = session;
    const from = log.length;
    const denied = await c.step('call admin_reset: answered, not thrown', () => call(client, 'admin_reset'));
    console.log(`   admin_reset: ${trailOf(log.slice(from)).join(', ')}: ${JSON.stringify(denied)}`);
    c.check('isError true, naming the missing scope mcp:admin', denied?.isError === true && textOf(denied).includes('mcp:admin'), JSON.stringify(denied));
    const trail = trailOf(log.slice(from));
    c.check('HTTP 200 and no new token asked for', trail.includes(`POST ${short(TOOL_ERROR_RESOURCE)} 200`) &&
      !trail.some((t) => t.includes('[AS]') || / 40[13]$/.test(t)), trail.join(', '));
    const read = await c.step('call read_notes after the denial', () => call(client, 'read_notes'));
    c.check('the client carries on: read_notes answers', /the notes/.test(textOf(read)), textOf(read));
    c.equal('admin_reset never reached the MCP server', adminCalls((await seen()).slice(before)).length, 0);
    await close(session);
  }
}

// c. A person: authorization code, the step-up as a new authorization.
console.log('-- c. a person (authorization code): base scope, then admin_reset and a new authorization');
{
  const REDIRECT = 'http://127.0.0.1:33418/callback';
  // oidc.mjs's pre-registered public client. Registered dynamically, the SDK would register the
  // first challenge's scope (mcp:tools) as the client's, and oidc-provider refuses any larger
  // authorization for it (invalid_scope): the step-up needs a client allowed the larger scope.
  const store = { client: { client_id: 'e2e-public', token_endpoint_auth_method: 'none', redirect_uris: [REDIRECT], issuer: ISSUER } };
  const provider = {
    get redirectUrl() {
      return REDIRECT;
    },
    get clientMetadata() {
      return {
        client_name: `mcp-auth-edge e2e ${NAME}`,
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
  const options = SDK === 'v2' && NEGOTIATION === 'auto' ? { versionNegotiation: { mode: 'auto' } } : {};
  const transportFor = () => new sdk.StreamableHTTPClientTransport(new URL(RESOURCE), { authProvider: provider, fetch: exchangeLog(log) });
  /** Plays the browser for the authorization the SDK asked for, then hands the code to the SDK. */
  const signIn = async (transport) => {
    const url = new URL(store.authorizationUrl);
    store.authorizationUrl = undefined;
    const back = await loginAtProvider(url, 'carol@e2e.example');
    if (!back.searchParams.get('code')) throw new Error(`the provider sent the browser back without a code: ${back.search}`);
    await within(STEP_MS, 'finishAuth', transport.finishAuth(back.searchParams.get('code'), back.searchParams.get('iss')));
    return url.searchParams.get('scope') ?? '';
  };
  const first = transportFor();
  const err = await within(STEP_MS, 'connect', new sdk.Client({ name: `e2e-${NAME}`, version: '1.0.0' }, options).connect(first))
    .then(() => null, (e) => e);
  c.check('connect: the SDK sends the person to the provider', Boolean(store.authorizationUrl), String(err?.stack ?? err));
  const asked = store.authorizationUrl ? await c.step('login and consent, base scope', () => signIn(first)) : undefined;
  c.check('the first authorization asked for the base scope (the 401\'s)', (asked ?? '').split(' ').includes(BASE) && !(asked ?? '').includes('mcp:admin'), asked);
  await first.close().catch(() => {});
  const transport = transportFor();
  const client = new sdk.Client({ name: `e2e-${NAME}`, version: '1.0.0' }, options);
  const connected = asked !== undefined && await c.step('connect as the person', () => within(STEP_MS, 'connect', client.connect(transport)).then(() => true));
  if (connected) {
    const read = await c.step('call read_notes', () => call(client, 'read_notes'));
    c.check('read_notes answers, with the base scope', /the notes/.test(textOf(read)) && !scopesOf(read).includes('mcp:admin'), textOf(read));
    const from = log.length;
    const failure = await call(client, 'admin_reset').then(() => null, (e) => e);
    console.log(`   admin_reset: ${trailOf(log.slice(from)).join(', ')} -> ${failure ? `${failure.constructor.name}: ${failure.message}` : 'answered'}`);
    const again = store.authorizationUrl;
    const wanted = again ? new URL(again).searchParams.get('scope') ?? '' : '';
    c.equal(`the SDK ${STEPS_UP_BY_ITSELF_PERSON ? 'starts' : 'does not start'} a new authorization for the challenge's scope by itself`,
      Boolean(again) && wanted.split(' ').includes('mcp:admin') && wanted.split(' ').includes(BASE), STEPS_UP_BY_ITSELF_PERSON);
    if (again) {
      console.log(`   asked for: ${wanted}`);
      await c.step('login and consent, larger scope', () => signIn(transport));
      const admin = await c.step('call admin_reset again', () => call(client, 'admin_reset'));
      c.check('admin_reset answers, with mcp:admin and mcp:tools', textOf(admin).includes('reset done') &&
        scopesOf(admin).split(' ').includes('mcp:admin') && scopesOf(admin).split(' ').includes(BASE), textOf(admin));
    }
    await close({ client, transport });
  }
}

c.finish();
