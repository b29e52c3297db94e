// Discovery through mcp-auth-edge with the MCP TypeScript SDK's own client functions
// (@modelcontextprotocol/sdk/client/auth.js), the way its `auth()` orchestrator uses them.
//
// Env (set by run.sh): EDGE_URL (http://127.0.0.1:PORT), RESOURCE_URL (EDGE_URL/mcp),
// ISSUER (the oidc-provider issuer), SCOPES (space-separated, as given to --scope),
// RESOURCE_NAME and RESOURCE_DOC (as given to --resource-name / --resource-documentation).

import {
  auth,
  buildDiscoveryUrls,
  discoverAuthorizationServerMetadata,
  discoverOAuthMetadata,
  discoverOAuthProtectedResourceMetadata,
  discoverOAuthServerInfo,
  selectResourceURL,
} from '@modelcontextprotocol/sdk/client/auth.js';
import { OpenIdProviderDiscoveryMetadataSchema } from '@modelcontextprotocol/sdk/shared/auth.js';
import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';

import { Checks, env, fieldDiff, recordingFetch, trail } from './checks.mjs';

// (a) comes from the SDK's OIDC schema when the issuer answers only at openid-configuration
// (a z.object, which drops fields it does not list), while the edge answers at
// oauth-authorization-server and the SDK parses that with its OAuth schema (a looseObject,
// which keeps every field). So the comparison is over the fields the SDK kept in (a); the
// byte-for-byte check below covers the rest of the document.
function sameAs(c, title, a, b, labelB) {
  const kept = Object.fromEntries(Object.keys(a).map((k) => [k, b?.[k]]));
  const diff = fieldDiff(a, kept, '(a)', labelB);
  return c.check(`${title} (${Object.keys(a).length} fields)`, diff.length === 0, diff.join('\n'));
}

const EDGE = env('EDGE_URL');
const RESOURCE = env('RESOURCE_URL');
const ISSUER = env('ISSUER');
const SCOPES = env('SCOPES').split(' ');
const RESOURCE_NAME = env('RESOURCE_NAME');
const RESOURCE_DOC = env('RESOURCE_DOC');
const PRM_PATH = `/.well-known/oauth-protected-resource${new URL(RESOURCE).pathname}`;

const c = new Checks('ts_client');
console.log(`ts_client: MCP TypeScript SDK, protocol version ${LATEST_PROTOCOL_VERSION}`);

// 1. RFC 9728 protected resource metadata for the MCP server URL, as auth() asks for it.
console.log(`-- discoverOAuthProtectedResourceMetadata(${RESOURCE})`);
let log = [];
const prm = await c.step('PRM discovery', () =>
  discoverOAuthProtectedResourceMetadata(RESOURCE, undefined, recordingFetch(log)),
);
if (prm) {
  c.equal('PRM fetched at the path-inserted URL first, with 200', trail(log, EDGE), [`${PRM_PATH} 200`]);
  c.equal('PRM request carried MCP-Protocol-Version', log[0].mcpProtocolVersion, LATEST_PROTOCOL_VERSION);
  c.equal('PRM resource is the configured resource', prm.resource, RESOURCE);
  c.equal('PRM authorization_servers names the oidc-provider issuer', prm.authorization_servers, [ISSUER]);
  c.equal('PRM scopes_supported', prm.scopes_supported, SCOPES);
  c.equal('PRM bearer_methods_supported', prm.bearer_methods_supported, ['header']);
  c.equal('PRM resource_name', prm.resource_name, RESOURCE_NAME);
  c.equal('PRM resource_documentation', prm.resource_documentation, RESOURCE_DOC);
  const selected = await c.step('selectResourceURL', () => selectResourceURL(RESOURCE, {}, prm));
  c.equal('selectResourceURL accepts the PRM resource for the server URL', selected?.href, RESOURCE);
}

// 2. The SDK's path fallbacks for PRM: trailing slash, query, deeper path (404, then root).
for (const [serverUrl, expectTrail] of [
  [`${RESOURCE}/`, [`${PRM_PATH} 200`]],
  [`${RESOURCE}?tenant=a`, [`${PRM_PATH}?tenant=a 200`]],
  [`${RESOURCE}/sub/path`, [`${PRM_PATH}/sub/path 404`, '/.well-known/oauth-protected-resource 200']],
]) {
  log = [];
  const doc = await c.step(`PRM discovery from ${serverUrl}`, () =>
    discoverOAuthProtectedResourceMetadata(serverUrl, undefined, recordingFetch(log)),
  );
  if (!doc) continue;
  c.equal(`PRM from ${serverUrl}: URLs tried`, trail(log, EDGE), expectTrail);
  const diff = fieldDiff(prm, doc, 'path', 'fallback');
  c.check(`PRM from ${serverUrl}: same document`, diff.length === 0, diff.join('\n'));
  const selected = await c.step(`selectResourceURL(${serverUrl})`, () => selectResourceURL(serverUrl, {}, doc));
  c.equal(`selectResourceURL(${serverUrl}) gives the configured resource`, selected?.href, RESOURCE);
}

// 2b. A client whose server URL is the bare origin gets the root PRM, which names /mcp as the
//     resource: the SDK must refuse it (RFC 9728 §3.3; the resource is not a prefix of its URL).
log = [];
const rootDoc = await c.step(`PRM discovery from ${EDGE}/`, () =>
  discoverOAuthProtectedResourceMetadata(`${EDGE}/`, undefined, recordingFetch(log)),
);
c.equal(`PRM from ${EDGE}/: URLs tried`, trail(log, EDGE), ['/.well-known/oauth-protected-resource 200']);
if (rootDoc) {
  const refused = await selectResourceURL(`${EDGE}/`, {}, rootDoc).then(() => false, () => true);
  c.check(`selectResourceURL(${EDGE}/) refuses the /mcp resource (not the URL asked for)`, refused);
}

// 3. Authorization server metadata (a) from the issuer the PRM names, (b) from the edge's origin.
const asUrl = prm?.authorization_servers?.[0] ?? ISSUER;
console.log(`-- discoverAuthorizationServerMetadata(${asUrl})  [issuer named in the PRM]`);
log = [];
const direct = await c.step('AS discovery at the issuer', () =>
  discoverAuthorizationServerMetadata(asUrl, { fetchFn: recordingFetch(log) }),
);
console.log(`   tried: ${trail(log, new URL(ISSUER).origin).join(', ')}`);
c.equal('(a) issuer from oidc-provider', direct?.issuer, ISSUER);

const edgeRoot = new URL('/', RESOURCE);
console.log(`-- discoverAuthorizationServerMetadata(${edgeRoot})  [the edge's origin, legacy]`);
c.equal(
  'buildDiscoveryUrls(edge origin)',
  buildDiscoveryUrls(edgeRoot).map((u) => `${u.type} ${u.url.pathname}`),
  ['oauth /.well-known/oauth-authorization-server', 'oidc /.well-known/openid-configuration'],
);
log = [];
const relayed = await c.step('AS discovery at the edge', () =>
  discoverAuthorizationServerMetadata(edgeRoot, { fetchFn: recordingFetch(log) }),
);
c.equal('(b) served by the edge at the first URL', trail(log, EDGE), ['/.well-known/oauth-authorization-server 200']);
c.equal('(b) request carried MCP-Protocol-Version', log[0]?.mcpProtocolVersion, LATEST_PROTOCOL_VERSION);
if (direct && relayed) {
  sameAs(c, '(b) equals (a) field by field', direct, relayed, '(b) edge');
}

// 3a. With an issuer path, the edge also serves the path-inserted forms (RFC 8414 §3.1, OIDC
//     Discovery §4); the SDK tries them when given the edge's origin plus the issuer's path.
const issuerPath = new URL(ISSUER).pathname.replace(/\/$/, '');
if (issuerPath) {
  const pathful = new URL(issuerPath, EDGE);
  console.log(`-- discoverAuthorizationServerMetadata(${pathful})  [path-inserted forms on the edge]`);
  c.equal(
    `buildDiscoveryUrls(${pathful})`,
    buildDiscoveryUrls(pathful).map((u) => `${u.type} ${u.url.pathname}`),
    [
      `oauth /.well-known/oauth-authorization-server${issuerPath}`,
      `oidc /.well-known/openid-configuration${issuerPath}`,
      `oidc ${issuerPath}/.well-known/openid-configuration`,
    ],
  );
  log = [];
  const inserted = await c.step('AS discovery at the edge, path-inserted', () =>
    discoverAuthorizationServerMetadata(pathful, { fetchFn: recordingFetch(log) }),
  );
  c.equal('(c) served at the first path-inserted URL', trail(log, EDGE), [`/.well-known/oauth-authorization-server${issuerPath} 200`]);
  if (direct && inserted) {
    sameAs(c, '(c) equals (a) field by field', direct, inserted, '(c) edge');
  }
  for (const form of [`/.well-known/openid-configuration${issuerPath}`, `${issuerPath}/.well-known/openid-configuration`]) {
    const r = await fetch(`${EDGE}${form}`, { signal: AbortSignal.timeout(5000) });
    const parsed = OpenIdProviderDiscoveryMetadataSchema.safeParse(await r.json().catch(() => null));
    c.check(`edge ${form}: 200 and an OpenID provider document naming the issuer`,
      r.status === 200 && parsed.success && parsed.data.issuer === ISSUER, `status ${r.status}`);
  }
}

// 3b. The edge's openid-configuration path, parsed with the SDK's OIDC schema, against the issuer's.
const getJson = async (url) => {
  const r = await fetch(url, {
    headers: { 'MCP-Protocol-Version': LATEST_PROTOCOL_VERSION, Accept: 'application/json' },
    signal: AbortSignal.timeout(5000),
  });
  return { status: r.status, text: await r.text(), headers: r.headers };
};
await c.step('OIDC discovery documents', async () => {
  const a = await getJson(`${ISSUER}/.well-known/openid-configuration`);
  const b = await getJson(`${EDGE}/.well-known/openid-configuration`);
  c.equal('edge /.well-known/openid-configuration status', b.status, 200);
  const pa = OpenIdProviderDiscoveryMetadataSchema.safeParse(JSON.parse(a.text));
  const pb = OpenIdProviderDiscoveryMetadataSchema.safeParse(JSON.parse(b.text));
  c.check('edge openid-configuration passes OpenIdProviderDiscoveryMetadataSchema', pb.success, pb.error?.message);
  if (pa.success && pb.success) {
    const diff = fieldDiff(pa.data, pb.data, 'issuer', 'edge');
    c.check('edge openid-configuration equals the issuer\'s, parsed', diff.length === 0, diff.join('\n'));
  }
  // The relay keeps the upstream bytes verbatim.
  // oidc-provider serves its metadata under the issuer (path appended), in both spellings.
  const ra = await getJson(`${ISSUER}/.well-known/oauth-authorization-server`);
  const rb = await getJson(`${EDGE}/.well-known/oauth-authorization-server`);
  c.check('edge AS metadata is byte-for-byte the upstream document', ra.text === rb.text,
    `upstream ${ra.text.length} bytes, edge ${rb.text.length} bytes`);
  c.check('edge AS metadata has a strong ETag', /^"[^"]+"$/.test(rb.headers.get('etag') ?? ''), `etag ${rb.headers.get('etag')}`);
});

// 4. discoverOAuthServerInfo: what auth() runs, end to end, and its legacy fallback.
console.log(`-- discoverOAuthServerInfo(${RESOURCE})`);
log = [];
const info = await c.step('discoverOAuthServerInfo', () => discoverOAuthServerInfo(RESOURCE, { fetchFn: recordingFetch(log) }));
if (info) {
  console.log(`   tried: ${log.map((e) => `${e.url} ${e.status}`).join(', ')}`);
  c.equal('authorizationServerUrl is the issuer from the PRM', info.authorizationServerUrl, ISSUER);
  sameAs(c, 'its AS metadata equals (a)', direct, info.authorizationServerMetadata, 'serverInfo');
}
console.log('-- discoverOAuthServerInfo with no usable PRM (legacy fallback to the edge origin)');
log = [];
const legacy = await c.step('discoverOAuthServerInfo legacy', () =>
  discoverOAuthServerInfo(RESOURCE, {
    resourceMetadataUrl: new URL('/.well-known/oauth-protected-resource/not-here', EDGE),
    fetchFn: recordingFetch(log),
  }),
);
if (legacy) {
  c.equal('legacy: URLs tried', trail(log, EDGE), [
    '/.well-known/oauth-protected-resource/not-here 404',
    '/.well-known/oauth-authorization-server 200',
  ]);
  c.equal('legacy: authorizationServerUrl is the edge origin', legacy.authorizationServerUrl, `${EDGE}/`);
  sameAs(c, 'legacy: relayed AS metadata equals (a)', direct, legacy.authorizationServerMetadata, 'legacy');
}

// 5. The deprecated discoverOAuthMetadata with a path-ful URL tries the path-aware URL first;
// the edge serves the resource's relayed document there, so the first try is the answer (with
// several resources behind one edge, that is how each finds its own).
console.log(`-- discoverOAuthMetadata(${RESOURCE})  [deprecated, path-aware then root]`);
log = [];
const old = await c.step('discoverOAuthMetadata', () => discoverOAuthMetadata(RESOURCE, {}, recordingFetch(log)));
c.equal('discoverOAuthMetadata: URLs tried', trail(log, EDGE), [
  `/.well-known/oauth-authorization-server${new URL(RESOURCE).pathname} 200`,
]);
if (old) {
  sameAs(c, 'discoverOAuthMetadata result equals (a)', direct, old, 'deprecated');
}

// 6. auth() itself, up to the redirect: discovery through the edge, dynamic registration at the
//    provider, then the authorization URL, which the real provider must accept.
console.log(`-- auth({ serverUrl: ${RESOURCE} }) up to the redirect`);
const REDIRECT = 'http://127.0.0.1:33418/callback';
const store = {};
const provider = {
  get redirectUrl() {
    return REDIRECT;
  },
  get clientMetadata() {
    return {
      client_name: 'mcp-auth-edge e2e (TypeScript SDK)',
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
log = [];
const outcome = await c.step('auth()', () => auth(provider, { serverUrl: RESOURCE, fetchFn: recordingFetch(log) }));
if (outcome) {
  console.log(`   requests: ${log.map((e) => `${e.url} ${e.status}`).join(', ')}`);
  c.equal('auth() returns REDIRECT', outcome, 'REDIRECT');
  c.check('auth() registered a client at the provider', Boolean(store.client?.client_id));
  const u = store.authorizationUrl;
  c.equal('authorization URL is the provider\'s authorization_endpoint', u && `${u.origin}${u.pathname}`, direct?.authorization_endpoint);
  c.equal('authorization URL resource = PRM resource', u?.searchParams.get('resource'), RESOURCE);
  c.equal('authorization URL scope = PRM scopes_supported', u?.searchParams.get('scope'), SCOPES.join(' '));
  c.equal('authorization URL code_challenge_method', u?.searchParams.get('code_challenge_method'), 'S256');
  if (u) {
    const r = await fetch(u, { redirect: 'manual', signal: AbortSignal.timeout(5000) });
    const location = r.headers.get('location') ?? '';
    await r.body?.cancel();
    c.check(
      'oidc-provider accepts the authorization request (redirects to its login interaction)',
      r.status === 303 && location.includes('/interaction/'),
      `status ${r.status}, location ${location}`,
    );
  }
}

c.finish();
